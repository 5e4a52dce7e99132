"""How much the training loop costs beyond the model's own compute: layerforge vs plain PyTorch and others.

The same MLP (64-256-256-10 on the digits), CNN (two 3×3 convs on the 1×8×8 digits) and LSTM (LSTM(8→64)
over 50 steps: the adding problem plus 6 noise channels) are trained on the same tensors, batch 64, Adam
lr 1e-3, shuffled every epoch, by

    (a) layerforge      ``layerforge.train(spec, data=bundle, save=False)``: the real engine with its defaults
                        (``train.fast`` auto, ``compile: auto``), default metrics (a′: the same trials, timed
                        by the engine's own per-epoch ``time_s``: the step loop only, without the end-of-epoch
                        metrics)
    (a0) layerforge     the same with ``fast: false, compile: false``: what layerforge did before its defaults
    (b) plain loop      as users write it: index batches of pre-built tensors; zero_grad / forward / loss /
                        backward / step, ``torch.optim.Adam(params, lr)`` as constructed by default
    (b′) plain loop     the same loop with the settings layerforge's defaults chose for this model and machine
                        (``layerforge.runtime.resolve_speedups``: fused Adam; channels-last for the CNN)
    (bf), (bl)          the plain loop with one of those settings only (fused Adam; channels-last), where
                        (b′) has more than one: what each setting buys alone
    (c) DataLoader      the same loop over ``DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)``
    (d) Keras 3         ``model.fit`` on the torch backend, an equivalent model (skipped when not installed)
    (e) Lightning       a LightningModule around the same torch model (skipped when not installed)

(a)–(c) and (e) use the very module ``layerforge.build_model`` makes, so the compute is identical. Each trial
builds a fresh model and optimizer and trains a few epochs; the first epoch of a trial is warm-up and dropped;
an epoch is timed from its start to its end (for layerforge: ``on_epoch_start`` → ``on_epoch_end``, which
includes the end-of-epoch metrics). Variants are interleaved round by round so the noise of a shared machine
falls on all of them alike. Printed: the median ms/step and its ratio to (b), (a) ÷ (b′), and a table of
what each default buys; the load average before and after goes into the conditions line.

It also measures start-up: the wall time of ``layerforge train`` on a tiny config minus its training time
(Σ time_s of metrics.jsonl), beside ``python -c "import torch"`` and a minimal hand-written torch script
doing the same training (minus its own step time); the difference to the latter is layerforge's own.

    nice python benchmarks/train_overhead.py              # the full benchmark (≈ 2 minutes on 2 cores)
    python benchmarks/train_overhead.py --smoke           # a few steps of everything, no meaningful figures
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ["KERAS_BACKEND"] = "torch"  # variant (d) is Keras on the torch backend; set before keras is imported

ROOT = Path(__file__).resolve().parents[1]
BATCH, LR, SEED = 64, 1e-3, 0
VARIANTS = {"a": "layerforge defaults", "a'": "layerforge, steps only", "a0": "layerforge, fast: false",
            "b": "plain loop as users write it", "b'": "plain loop, same settings", "c": "DataLoader",
            "d": "Keras 3 (torch)", "e": "Lightning"}
SAME = "b'"  # the column key of (b′)
ABLATIONS = {"bf": "plain loop + fused Adam", "bl": "plain loop + channels-last"}
# Letters of --variants → the runner that produces those columns.
LETTERS = {"a": ("a", "a'"), "0": ("a0",), "b": ("b",), "p": ("b'",), "f": ("bf",), "l": ("bl",), "c": ("c",),
           "d": ("d",), "e": ("e",)}

MODELS: dict[str, dict[str, Any]] = {
    "mlp": {"input_shape": [64], "layers": [{"type": "dense", "units": 256, "activation": "relu"},
                                            {"type": "dense", "units": 256, "activation": "relu"},
                                            {"type": "dense", "units": 10}]},
    "cnn": {"input_shape": [1, 8, 8], "layers": [
        {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "maxpool2d", "pool_size": 2}, {"type": "flatten"}, {"type": "dense", "units": 10}]},
    "lstm": {"input_shape": [50, 8], "layers": [{"type": "lstm", "units": 64}, {"type": "dense", "units": 1}]},
}
LABELS = {"mlp": "MLP 64-256-256-10", "cnn": "CNN conv32-conv64-pool-dense", "lstm": "LSTM(8→64) T=50"}


# --- data --------------------------------------------------------------------------------------
def make_data(model: str, n: int) -> tuple[Any, Any, str]:
    """(x, y, task) as CPU tensors: digits scaled to [0, 1] (flat for the MLP), or the adding problem."""
    import numpy as np
    import torch

    if model == "lstm":
        from layerforge.data.synthetic import adding

        rng = np.random.default_rng(SEED)
        x2, y = adding(n, 50, rng)  # (N, 50, 2), (N,)
        noise = rng.random((n, 50, 6), dtype=np.float32)  # 6 distractor channels → 8 inputs per step
        x = np.concatenate([x2, noise], axis=-1)  # (N, 50, 8)
        return torch.from_numpy(x), torch.from_numpy(y).reshape(n, 1), "regression"
    d = np.load(ROOT / "data" / "digits.npz")
    x = torch.from_numpy(d["x"][:n].astype(np.float32) / 16.0)  # (N, 1, 8, 8)
    if model == "mlp":
        x = x.reshape(len(x), 64)
    return x, torch.from_numpy(d["y"][:n].astype(np.int64)), "classification"


def spec_for(model: str, epochs: int, threads: int, fast: bool = True) -> dict[str, Any]:
    train = {"epochs": epochs, "batch_size": BATCH, "optimizer": {"name": "adam", "lr": LR}, "device": "cpu",
             "threads": threads, "checkpoint_every": 0, "plots": False}
    if not fast:
        train.update(fast=False, compile=False)
    return {"name": f"bench_{model}", "seed": SEED, "model": MODELS[model], "train": train}


@functools.lru_cache(maxsize=None)
def same_settings(model: str, threads: int) -> tuple[dict[str, bool], bool]:
    """(optimizer kwargs, channels-last) as layerforge's defaults resolve them for this model on the CPU."""
    import torch

    import layerforge as lf
    from layerforge.engine.schema import TrainSpec
    from layerforge.runtime import resolve_speedups

    t = TrainSpec()
    speed = resolve_speedups(t.fast, t.compile, False, torch.device("cpu"), "adam", lf.build_model(spec_for(model, 1, threads)))
    return speed.optimizer_kwargs(), speed.channels_last


def loss_fn(task: str) -> Callable:
    import torch.nn.functional as F

    return F.cross_entropy if task == "classification" else F.mse_loss


# --- the variants: each trains `epochs` epochs of a fresh model and returns each epoch's seconds --------
def run_layerforge(model: str, x, y, task: str, epochs: int, threads: int, fast: bool = True) -> dict[str, list[float]]:
    import layerforge as lf
    from layerforge.data.bundle import DataBundle, Split
    from layerforge.engine.events import Callback

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.t0 = 0.0

        def on_epoch_start(self, epoch: int, steps: int) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, record: dict, improved: bool) -> None:
            self.times.append(time.perf_counter() - self.t0)

    bundle = DataBundle(task, Split(x, y), num_classes=10 if task == "classification" else None)
    timer = EpochTimer()
    result = lf.train(spec_for(model, epochs, threads, fast), data=bundle, save=False, callbacks=[timer])
    if not fast:
        return {"a0": timer.times}
    return {"a": timer.times, "a'": [r["time_s"] for r in result.history]}


def _torch_loop(model: str, epochs: int, threads: int, task: str, batches: Callable[[], Any],
                opt_kwargs: dict[str, bool] | None = None, channels_last: bool = False) -> list[float]:
    import torch

    import layerforge as lf

    net = lf.build_model(spec_for(model, epochs, threads))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=LR, **(opt_kwargs or {}))
    lossf = loss_fn(task)
    net.train()
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for xb, yb in batches():
            opt.zero_grad(set_to_none=True)
            loss = lossf(net(xb), yb)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def run_plain(model: str, x, y, task: str, epochs: int, threads: int, settings: str = "users") -> list[float]:
    """The plain loop; ``settings``: users (default Adam), same (as layerforge's defaults chose), fused or
    channels_last (one of them only)."""
    import torch

    gen = torch.Generator().manual_seed(SEED)
    n = len(y)
    opt_kwargs, channels_last = same_settings(model, threads) if settings != "users" else ({}, False)
    if settings == "fused":
        channels_last = False
    elif settings == "channels_last":
        opt_kwargs = {}
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def batches():
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            yield x[idx], y[idx]

    return _torch_loop(model, epochs, threads, task, batches, opt_kwargs, channels_last)


def run_dataloader(model: str, x, y, task: str, epochs: int, threads: int) -> list[float]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(SEED))
    return _torch_loop(model, epochs, threads, task, lambda: loader)


def keras_model(model: str):
    import keras
    from keras import layers

    if model == "mlp":
        body = [keras.Input((64,)), layers.Dense(256, activation="relu"), layers.Dense(256, activation="relu"),
                layers.Dense(10)]
    elif model == "cnn":  # channels_first, as torch: no transposes
        cf = {"data_format": "channels_first"}
        body = [keras.Input((1, 8, 8)), layers.Conv2D(32, 3, padding="same", activation="relu", **cf),
                layers.Conv2D(64, 3, padding="same", activation="relu", **cf), layers.MaxPooling2D(2, **cf),
                layers.Flatten(), layers.Dense(10)]
    else:
        body = [keras.Input((50, 8)), layers.LSTM(64), layers.Dense(1)]
    return keras.Sequential(body)


def run_keras(model: str, x, y, task: str, epochs: int, threads: int) -> list[float]:
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self.t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    keras.utils.set_random_seed(SEED)
    net = keras_model(model)
    if task == "classification":  # the metric layerforge computes by default, too
        loss, metrics = keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    else:
        loss, metrics = "mse", ["mae"]
    net.compile(optimizer=keras.optimizers.Adam(LR), loss=loss, metrics=metrics, jit_compile=False)
    timer = EpochTimer()
    net.fit(x.numpy(), y.numpy(), batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    return timer.times


def run_lightning(model: str, x, y, task: str, epochs: int, threads: int) -> list[float]:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import layerforge as lf

    quiet_frameworks()  # after the import: lightning sets its loggers to INFO when imported

    class Lit(L.LightningModule):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net, self.lossf = net, loss_fn(task)

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return self.lossf(self.net(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    class EpochTimer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.t0 = 0.0

        def on_train_epoch_start(self, trainer, module) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            self.times.append(time.perf_counter() - self.t0)

    timer = EpochTimer()
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(SEED))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[timer])
    trainer.fit(Lit(lf.build_model(spec_for(model, epochs, threads))), loader)
    return timer.times


RUNNERS: dict[str, Callable[..., Any]] = {
    "a": run_layerforge, "0": lambda *a: run_layerforge(*a, fast=False), "b": run_plain,
    "p": lambda *a: run_plain(*a, settings="same"), "f": lambda *a: run_plain(*a, settings="fused"),
    "l": lambda *a: run_plain(*a, settings="channels_last"), "c": run_dataloader, "d": run_keras,
    "e": run_lightning}


def needed(letter: str, model: str, threads: int) -> bool:
    """An ablation runs only where (b′) has more than one setting (else it equals (b) or (b′))."""
    if letter not in "fl":
        return True
    opt_kwargs, channels_last = same_settings(model, threads)
    return bool(opt_kwargs.get("fused")) and channels_last


def available() -> tuple[list[str], dict[str, str]]:
    """The variants that can run here, and a note for each one skipped."""
    import importlib.util

    ok, notes = [k for k in LETTERS if k not in "de"], {}
    for key, mod, pkg in (("d", "keras", "keras"), ("e", "lightning", "lightning")):
        if importlib.util.find_spec(mod) is None:
            notes[key] = f"skipped: {pkg} is not installed (pip install {pkg}; not a layerforge dependency)"
        else:
            ok.append(key)
    return ok, notes


def quiet_frameworks() -> None:
    import logging

    warnings.filterwarnings("ignore")
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("lightning", "pytorch_lightning")):
            logging.getLogger(name).setLevel(logging.ERROR)


# --- the benchmark ------------------------------------------------------------------------------
def bench(models: list[str], variants: list[str], rounds: int, epochs: int, n: int, threads: int) -> dict:
    """{model: {variant: [seconds per step of each kept epoch]}}, interleaved round by round."""
    import torch

    data = {m: make_data(m, n) for m in models}
    steps = -(-n // BATCH)
    per_step: dict[str, dict[str, list[float]]] = {m: {} for m in models}
    for r in range(rounds):
        for m in models:
            x, y, task = data[m]
            order = variants[r % len(variants):] + variants[:r % len(variants)]  # rotate who goes first
            for v in order:
                if not needed(v, m, threads):
                    continue
                torch.set_num_threads(threads)
                times = RUNNERS[v](m, x, y, task, epochs, threads)
                if torch.get_num_threads() != threads:
                    print(f"note: variant {v} changed torch's threads to {torch.get_num_threads()}", file=sys.stderr)
                for key, ts in (times if isinstance(times, dict) else {LETTERS[v][0]: times}).items():
                    per_step[m].setdefault(key, []).extend(t / steps for t in ts[1:])  # epoch 1 of a trial: warm-up
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return per_step


BASELINE = """
import time, numpy as np, torch
d = np.load({digits!r})
x = torch.from_numpy(d["x"].reshape(len(d["x"]), 64).astype(np.float32) / 16.0)
y = torch.from_numpy(d["y"].astype(np.int64))
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
t0 = time.perf_counter()
order = torch.randperm(len(y))
for i in range(0, len(y), 64):
    idx = order[i:i + 64]
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
    opt.step()
print(time.perf_counter() - t0)
"""


def startup(repeats: int) -> dict[str, float]:
    """Median wall seconds of `import torch`, of a minimal torch script and of `layerforge train` (tiny config).

    Both training runs do one epoch of a 64-32-10 MLP on the 1,797 digits; each one's own step time is
    subtracted, so what remains is start-up: interpreter, imports, data, model, optimizer, run directory.
    """
    import yaml

    exe = Path(sys.executable).with_name("layerforge")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "layerforge"]
    cfg = {"name": "startup", "seed": 0,
           "model": {"input_shape": [64], "layers": [{"type": "dense", "units": 32, "activation": "relu"},
                                                     {"type": "dense", "units": 10}]},
           "data": {"dataset": "digits", "val": 0.0},
           "train": {"epochs": 1, "batch_size": 64, "plots": False}}
    script = BASELINE.format(digits=str(ROOT / "data" / "digits.npz"))
    rows: dict[str, list[float]] = {k: [] for k in ("import", "torch_wall", "torch_steps", "lf_wall", "lf_steps")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.yaml"
        path.write_text(yaml.safe_dump(cfg))
        for i in range(repeats):  # interleaved
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import torch"], check=True)
            rows["import"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
            rows["torch_wall"].append(time.perf_counter() - t0)
            rows["torch_steps"].append(float(done.stdout.strip()))
            out = Path(tmp) / f"run{i}"
            t0 = time.perf_counter()
            subprocess.run([*cli, "train", str(path), "--out", str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL)
            rows["lf_wall"].append(time.perf_counter() - t0)
            lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines() if s.strip()]
            rows["lf_steps"].append(sum(r.get("time_s", 0.0) for r in lines if not r.get("final")))
    med = statistics.median
    res = {k: med(v) for k, v in rows.items()}
    res["torch_start"] = med([w - s for w, s in zip(rows["torch_wall"], rows["torch_steps"])])
    res["lf_start"] = med([w - s for w, s in zip(rows["lf_wall"], rows["lf_steps"])])
    res["lf_own"] = med([(lw - ls) - (tw - ts) for lw, ls, tw, ts in
                         zip(rows["lf_wall"], rows["lf_steps"], rows["torch_wall"], rows["torch_steps"])])
    res["repeats"] = repeats
    return res


def startup_table(s: dict[str, float]) -> str:
    return "\n".join([
        f"| start-up (median of {s['repeats']}) | wall s | of which 1 epoch of steps | start-up s |",
        "|---|---:|---:|---:|",
        f"| `python -c \"import torch\"` | {s['import']:.3f} | – | {s['import']:.3f} |",
        f"| minimal torch script (load digits, build, Adam, 1 epoch) | {s['torch_wall']:.3f} | {s['torch_steps']:.3f} | "
        f"{s['torch_start']:.3f} |",
        f"| `layerforge train tiny.yaml --quiet` (1 epoch) | {s['lf_wall']:.3f} | {s['lf_steps']:.3f} | {s['lf_start']:.3f} |",
        f"| **layerforge's own** (its start-up − the minimal script's) | | | **{s['lf_own']:.3f}** |",
    ])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> str:
    import torch

    versions = [f"torch {torch.__version__}"]
    for mod in ("keras", "lightning"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return ", ".join(versions)


def report(per_step: dict, notes: dict[str, str], args: argparse.Namespace, load: tuple[float, float]) -> str:
    """The markdown for docs/benchmarks.md: the main table, what each default buys, and the conditions."""
    med = statistics.median
    cols = [k for k in VARIANTS if all(per_step[m].get(k) for m in per_step)]
    ratios = ["(a) ÷ (b′)", "(a′) ÷ (b′)"] if "a" in cols and SAME in cols else []
    head = [f"({k}) {VARIANTS[k]}" for k in cols]
    at = cols.index(SAME) + 1 if ratios else len(cols)  # the ratios to (b′) right after it
    lines = ["| model | steps/epoch | " + " | ".join(head[:at] + ratios + head[at:]) + " |",
             "|---|---:|" + "---:|" * (len(cols) + len(ratios))]
    for m, res in per_step.items():
        base = med(res["b"])
        cells = [f"{med(res[k]) * 1e3:.2f} ({med(res[k]) / base:.2f}×)" for k in cols]
        same = [f"{med(res[k]) / med(res[SAME]):.3f}" for k in ("a", "a'")] if ratios else []
        lines.append(f"| {LABELS[m]} | {-(-args.n // BATCH)} | " + " | ".join(cells[:at] + same + cells[at:]) + " |")
    lines.append("")
    lines.append(f"median ms/step over {args.rounds} rounds × {args.epochs - 1} timed epochs (ratio to (b)); "
                 "fastest epoch, ms/step: " + "; ".join(
                     f"{m} " + " ".join(f"{k}={min(per_step[m][k]) * 1e3:.2f}" for k in cols) for m in per_step))
    for v, note in notes.items():
        lines.append(f"({v}) {VARIANTS[v]}: {note}")
    if "b'" in cols:
        lines += ["", buys_table(per_step, args.threads)]
    lines.append("")
    lines.append(f"conditions: {_versions()}, python {platform.python_version()}, torch threads {args.threads} "
                 f"(all variants), CPU {cpu_name()} ({os.cpu_count()} logical), batch {BATCH}, Adam lr {LR}, "
                 f"{args.n} samples, load average (1 min) {load[0]:.1f} before and {load[1]:.1f} after")
    return "\n".join(lines)


def buys_table(per_step: dict, threads: int) -> str:
    """What each default buys: the plain loop's median step time without ÷ with each setting (> 1: faster)."""
    med = statistics.median

    def gain(res: dict, before: str, after: str) -> str:
        return f"{med(res[before]) / med(res[after]):.2f}×" if res.get(before) and res.get(after) else "–"

    lines = ["| model | (b′) uses | fused Adam: (b) ÷ (bf) | channels-last: (b) ÷ (bl) | both: (b) ÷ (b′) | "
             "layerforge: (a0) ÷ (a) |", "|---|---|---:|---:|---:|---:|"]
    for m, res in per_step.items():
        opt_kwargs, channels_last = same_settings(m, threads)
        uses = [name for name, on in (("fused Adam", opt_kwargs.get("fused")), ("channels-last", channels_last)) if on]
        fused = gain(res, "b", "bf") if "bf" in res else (gain(res, "b", SAME) if not channels_last else "–")
        cl = gain(res, "b", "bl") if "bl" in res else (gain(res, "b", SAME) if channels_last and not opt_kwargs.get("fused") else "–")
        lines.append(f"| {LABELS[m]} | {', '.join(uses) or 'nothing'} | {fused} | {cl} | {gain(res, 'b', SAME)} | "
                     f"{gain(res, 'a0', 'a')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--variants", default="a0bpflcde",
                   help="letters of the variants to run: a (layerforge defaults), 0 (fast: false), b (plain loop), "
                        "p (b′: plain, same settings), f / l (plain + fused / channels-last only), c (DataLoader), "
                        "d (Keras 3), e (Lightning); default: all available")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (each trains every variant once)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per trial (the first is warm-up)")
    p.add_argument("--n", type=int, default=1792, help="training samples (1792 = 28 full batches of 64)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads, all variants")
    p.add_argument("--startup-repeats", type=int, default=5, help="repeats of the start-up measurement (0: skip)")
    p.add_argument("--smoke", action="store_true", help="a few steps of everything (checks the script runs)")
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.epochs, args.n, args.startup_repeats = 1, 2, 2 * BATCH, min(args.startup_repeats, 1)
    import torch

    torch.set_num_threads(args.threads)
    quiet_frameworks()
    ok, notes = available()
    variants = [v for v in LETTERS if v in args.variants and v in ok]
    if "b" not in variants:
        variants.insert(0, "b")  # the baseline of every ratio
    load_before = os.getloadavg()[0]
    per_step = bench(args.models, variants, args.rounds, args.epochs, args.n, args.threads)
    print(report(per_step, {k: n for k, n in notes.items() if k in args.variants}, args,
                 (load_before, os.getloadavg()[0])))
    if args.startup_repeats:
        print()
        print(startup_table(startup(args.startup_repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
