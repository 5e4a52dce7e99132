"""`layerforge validate`: everything that can be checked from the spec, without allocating weights."""
from __future__ import annotations

from typing import Annotated

import typer

from .options import ConfigArg, JsonOpt, PluginsOpt, SetOpt, TrustPluginsOpt


def validate(
    config: ConfigArg,
    set_: SetOpt = None,
    plugins: PluginsOpt = None,
    no_data: Annotated[bool, typer.Option("--no-data", help="Do not read the data (files, columns, the first "
                                          "samples against input_shape and the output).")] = False,
    json_: JsonOpt = False,
    trust_plugins: TrustPluginsOpt = False,
) -> None:
    """Check a spec: YAML, schema, layer parameters, references, shapes, size, the train section against the
    model (loss, metrics, monitor), the first samples of the data and model.init_from's run. Exit 0 if valid,
    2 if not."""
    import warnings

    from .. import validate as check
    from ..errors import LayerforgeWarning
    from .render import console, print_json, print_warning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayerforgeWarning)
        spec, graph = check(config, set_ or [], plugins or [], data=not no_data, trust_plugins=trust_plugins)
    found = [w.message for w in caught if isinstance(w.message, LayerforgeWarning)]
    outs = ", ".join(f"{o} {tuple(graph.shape_of(o))}" for o in graph.outputs)
    data = "not read (--no-data)" if no_data else ("checked" if spec.data is not None else "none")
    from ..analysis.estimate import estimated_peaks

    peaks = estimated_peaks(graph)
    if json_:
        print_json({"valid": True, "file": str(config), "layers": len(graph.nodes), "outputs": graph.outputs,
                    "data": data, "memory": {"peaks": peaks}, "warnings": [w.issue.to_dict() if hasattr(w, "issue") else {"message": str(w)}
                                               for w in found]})
        return
    console.print(f"[green]✓[/] {config}: valid — {len(graph.nodes)} layers, output {outs}"
                  + (f"; data {data}" if spec.data is not None else ""))
    from ..text import human_bytes

    console.print("  estimated training peak (Adam, fp32): "
                  + " · ".join(f"batch {p['batch_size']}: {human_bytes(p['train'])}" for p in peaks))
    for w in found:
        print_warning(w)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
