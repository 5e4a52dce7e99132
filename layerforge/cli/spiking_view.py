"""The spiking section of ``inspect`` and ``profile``: firing rates, SOPs beside MACs, and the energy
estimate of a :class:`layerforge.analysis.spiking.SpikeReport` (given as its ``to_dict()``)."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


def _n(v: float | None) -> str:
    from ..text import human_count

    return "—" if v is None else human_count(round(v))


def _uj(pj: float | None) -> str:
    return "—" if pj is None else f"{pj * 1e-6:.3g} µJ"


def render_spiking(rep: dict[str, Any], console: Console) -> None:
    """Print the section on ``console``, or on a wide one when output is piped (tables keep their columns)."""
    from .render import simple_table, wide_console

    if not console.is_terminal:
        console = wide_console()

    measured = rep["measured"]
    split = rep["split"] if rep["split"] not in ("val", "test", "train") else f"the {rep['split']} split"
    where = f"measured on {rep['samples']:,} samples of {split}" if measured else "not measured (no data)"
    console.print()
    console.print(f"[bold]Spiking layers[/] ({where}; weights: {escape(rep['weights'])})")
    rows = [[f"{r['layer']} ({r['type']})", r["steps"], f"{r['neurons']:,}",
             "—" if r["firing_rate"] is None else f"{r['firing_rate']:.3f}", _n(r["spikes"]),
             ", ".join(r["feeds"]) or "—", _n(r["sops"]), _n(r["ann_macs"])] for r in rep["layers"]]
    console.print(simple_table(None, ["Layer (type)", "T", "Neurons", "Firing rate", "Spikes/sample", "Feeds",
                                      "SOPs/sample", "ANN MACs/sample"], rows, right={1, 2, 3, 4, 6, 7}))
    wrows = []
    for w in rep["weight_layers"]:
        if w["spike_input"] is None:
            reads = f"spikes of {w['source']}" if w["source"] else "real values"
            ops = "—"
        elif w["spike_input"]:
            reads, ops = f"spikes of {w['source'] or '?'}", f"{_n(w['sops'])} SOPs"
        else:
            reads, ops = "real values", f"{_n(w['snn_macs'])} MACs"
        name = w["layer"] + (f".{w['module']}" if w["module"] else "")
        wrows.append([name, reads, w["steps"], _n(w["ann_macs"]), ops, _uj(w["ann_energy_pj"]), _uj(w["snn_energy_pj"])])
    console.print(simple_table(None, ["Weight layer", "Reads", "T", "ANN MACs", "SNN ops (all steps)", "ANN energy",
                                      "SNN energy"], wrows, right={2, 3, 4, 5, 6}))
    c = rep["constants_pj"]
    console.print(f"Per sample — equivalent ANN: {_n(rep['ann_macs'])} MACs → {rep['ann_energy_uj']:.3g} µJ")
    if measured:
        console.print(f"             SNN: {_n(rep['sops'])} SOPs × {c['accumulate']} pJ + {_n(rep['snn_macs'])} MACs "
                      f"on real values + {_n(rep['neuron_updates'])} neuron updates, × {c['mac']} pJ → "
                      f"{rep['snn_energy_uj']:.3g} µJ"
                      + (f" (ANN/SNN = {rep['energy_ratio']:.2f}×)" if rep["energy_ratio"] else ""))
    console.print(f"[dim]Energy: {escape(rep['convention'])}.[/]")
    for note in rep["notes"]:
        console.print(f"[yellow]note[/]: {escape(note)}")
