"""Per-step targets of variable-length sequences: bce and regression losses and metrics average over the
valid steps only (Keras 3's masked mean), predict scores what evaluate scores, and left-padded data
(data.padding: pre) gives the same results as right-padded data."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import layerforge as lf
from layerforge.engine.losses import build_loss, prepare_targets
from layerforge.engine.metrics import EpochStats
from layerforge.engine.rules import Head

os.environ.setdefault("KERAS_BACKEND", "torch")  # the Keras reference runs on its torch backend
LENGTHS = [5, 2, 3, 1]
T = 5
CPU = torch.device("cpu")
TORCH_LOSSES = {
    "mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss, "bce": F.binary_cross_entropy_with_logits,
}


def valid(lengths: list[int], t: int, pre: bool = False) -> torch.Tensor:
    steps = torch.arange(t)[None, :]
    n = torch.tensor(lengths)[:, None]
    return steps >= t - n if pre else steps < n  # (B, T)


def padded_targets(k: int, binary: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Outputs (B, T, k), targets with NaN at the padded steps (as prepare_targets leaves them), the mask."""
    g = torch.Generator().manual_seed(0)
    out = torch.randn(len(LENGTHS), T, k, generator=g)
    y = (torch.rand(len(LENGTHS), T, k, generator=g) > 0.5).float() if binary else torch.randn(len(LENGTHS), T, k, generator=g)
    m = valid(LENGTHS, T)
    y[~m] = float("nan")
    return out, y, m


@pytest.mark.parametrize("name", sorted(TORCH_LOSSES))
@pytest.mark.parametrize("k", [1, 3])
def test_masked_loss_equals_the_loss_over_the_unpadded_steps(name: str, k: int):
    out, y, m = padded_targets(k, binary=name == "bce")
    head = Head("binary" if name == "bce" else "real", (T, k), 2 if name == "bce" else None, name)
    got = build_loss(head, None, CPU, masked=True)(out, y)
    by_hand = TORCH_LOSSES[name](out[m], y[m])  # every valid step of every sequence, no padding at all
    torch.testing.assert_close(got, by_hand, rtol=1e-6, atol=1e-7)


def test_a_batch_of_empty_sequences_has_loss_zero_not_nan():
    head = Head("real", (T, 1), None, "mse")
    got = build_loss(head, None, CPU, masked=True)(torch.randn(2, T, 1), torch.full((2, T, 1), float("nan")))
    assert got.item() == 0.0


def test_masked_losses_match_keras():
    """Keras 3 (torch backend) reduces a masked loss as sum(loss · mask) / sum(mask) over the batch."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs another backend in this process")
    inp = keras.Input((T, 2))
    masked = keras.layers.Masking(0.0)(inp)
    pred = keras.Model(inp, keras.layers.Dense(2, kernel_initializer="glorot_uniform")(masked))
    g = np.random.default_rng(0)
    m = valid(LENGTHS, T).numpy()
    x = g.normal(size=(len(LENGTHS), T, 2)).astype("float32") * m[..., None]
    y = g.normal(size=(len(LENGTHS), T, 2)).astype("float32")
    yb = (y > 0).astype("float32")
    p = pred(x)
    y_nan, yb_nan = np.where(m[..., None], y, np.nan), np.where(m[..., None], yb, np.nan)
    ours = {name: build_loss(Head("binary" if name == "bce" else "real", (T, 2), None, name), None, CPU, masked=True)
            for name in TORCH_LOSSES}
    theirs = {"mse": keras.losses.MeanSquaredError(), "mae": keras.losses.MeanAbsoluteError(),
              "huber": keras.losses.Huber(), "bce": keras.losses.BinaryCrossentropy(from_logits=True)}
    out = torch.as_tensor(p.detach().cpu().numpy())
    for name, loss in theirs.items():
        target = yb if name == "bce" else y
        ours_v = ours[name](out, torch.from_numpy(yb_nan if name == "bce" else y_nan).float())
        assert float(loss(target, p).detach()) == pytest.approx(float(ours_v), rel=1e-5), name


def test_regression_and_binary_metrics_skip_padded_steps():
    out, y, m = padded_targets(2, binary=False)
    stats = EpochStats(Head("real", (T, 2), None, "mse"), ["mae", "rmse", "r2"], len(LENGTHS), CPU, False)
    stats.update(out, y, torch.zeros(()))
    ref = EpochStats(Head("real", (1, 2), None, "mse"), ["mae", "rmse", "r2"], int(m.sum()), CPU, False)
    ref.update(out[m][:, None], y[m][:, None], torch.zeros(()))  # the valid steps alone, as (steps, 1, 2)
    got, want = stats.compute(), ref.compute()
    for key in ("mae", "rmse", "r2"):
        assert got[key] == pytest.approx(want[key], rel=1e-9)
    out, yb, m = padded_targets(1, binary=True)
    stats = EpochStats(Head("binary", (T, 1), 2, "bce"), ["accuracy"], len(LENGTHS), CPU, False)
    stats.update(out, yb, torch.zeros(()))
    assert stats.compute()["accuracy"] == pytest.approx(((out[m] > 0).float() == yb[m]).float().mean().item())


def test_integer_binary_targets_of_padded_steps_become_nan_for_bce():
    y = torch.tensor([[1, 0, -100], [0, -100, -100]])
    got = prepare_targets(Head("binary", (3, 1), 2, "bce"), y, torch.float32, padded=True)
    assert got.shape == (2, 3, 1) and torch.isnan(got[:, :, 0]).tolist() == [[False, False, True], [False, True, True]]


# --- through the data section, training, evaluate and predict -------------------------------------------

SEQ_MODEL = [{"type": "masking"}, {"type": "lstm", "units": 4, "return_sequences": True}]


def write_npz(path, lengths: list[int], pre: bool, kind: str) -> None:
    """x (N, T, 1) with nonzero values at the valid steps, per-step targets: real, 0/1 or 3 classes."""
    g = np.random.default_rng(1)
    n = len(lengths)
    steps = g.uniform(0.5, 1.5, (n, T, 1)).astype("float32")  # sequence i: steps[i, :lengths[i]]
    x = np.zeros_like(steps)
    for i, k in enumerate(lengths):
        x[i, slice(T - k, T) if pre else slice(0, k)] = steps[i, :k]
    if kind == "real":
        y = np.cumsum(x, axis=1).astype("float32")
    else:
        y = (np.cumsum(x[..., 0], axis=1) > 1.5).astype(np.int64) + (kind == "class") * (x[..., 0] > 1.0)
    np.savez(path, x=x, y=y, n=np.array(lengths))


def train_run(tmp_path, kind: str, pre: bool, loss: str | None = None):
    lengths = [int(v) for v in np.random.default_rng(2).integers(1, T + 1, 24)]
    tmp_path.mkdir(exist_ok=True)
    write_npz(tmp_path / "d.npz", lengths, pre, kind)
    units = {"real": 1, "binary": 1, "class": 3}[kind]
    spec = {"seed": 0, "model": {"input_shape": [T, 1], "layers": [*SEQ_MODEL, {"type": "dense", "units": units}]},
            "data": {"path": str(tmp_path / "d.npz"), "lengths": "n", "val": 0.25, "task": "sequence",
                     "padding": "pre" if pre else "post"},
            "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "plots": False,
                      **({"loss": loss} if loss else {})}}
    res = lf.train(spec, out=tmp_path / "run")
    return res, tmp_path / "run", tmp_path / "d.npz"


def each_sequence_alone(run, path, pre: bool) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """The trained model's output for each sequence run alone at its true length, and its true targets."""
    from layerforge.engine.evaluate import load_trained

    _, _, _, model, _, _ = load_trained(run)
    d = np.load(path)
    outs, ys = [], []
    with torch.no_grad():
        for x, y, n in zip(d["x"], d["y"], d["n"]):
            steps = slice(T - n, T) if pre else slice(0, n)
            outs.append(model(torch.from_numpy(x[None, steps]))[0])
            ys.append(y[steps])
    return outs, ys


def test_evaluate_regression_loss_equals_the_mean_over_each_sequence_alone(tmp_path):
    _, run, path = train_run(tmp_path, "real", pre=False)
    res = lf.evaluate(run, data=path)
    outs, ys = each_sequence_alone(run, path, pre=False)
    out, y = torch.cat(outs).reshape(-1), torch.from_numpy(np.concatenate(ys)).reshape(-1)
    # one batch (eval batch 32 > 24 samples): the masked mean over every valid step
    assert res.metrics["loss"] == pytest.approx(F.mse_loss(out, y).item(), rel=1e-5)
    assert res.metrics["mae"] == pytest.approx(F.l1_loss(out, y).item(), rel=1e-5)


@pytest.mark.parametrize("pre", [False, True], ids=["post", "pre"])
def test_predict_accuracy_equals_evaluate_and_counts_valid_steps_only(tmp_path, pre: bool):
    _, run, path = train_run(tmp_path, "class", pre=pre)
    ev = lf.evaluate(run, data=path)
    pr = lf.predict(run, path, output=tmp_path / "p.csv")
    outs, ys = each_sequence_alone(run, path, pre)
    hits = np.concatenate([o.argmax(-1).numpy() == y for o, y in zip(outs, ys)])
    assert pr.accuracy == pytest.approx(ev.metrics["accuracy"]) == pytest.approx(hits.mean())
    assert pr.scored == len(hits)
    d = np.load(path)
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "row,predicted,true"
    for i, (o, y) in enumerate(zip(outs, ys)):  # each sequence written at its true length, in time order
        assert rows[i + 1] == f"sample {i},{' '.join(map(str, o.argmax(-1).tolist()))},{' '.join(map(str, y.tolist()))}"
    pad = ~valid(d["n"].tolist(), T, pre).numpy()
    assert (pr.predictions[pad] == -1).all()


def test_left_padded_data_trains_exactly_like_right_padded_data(tmp_path):
    a, _, _ = train_run(tmp_path / "post", "binary", pre=False, loss="bce")
    b, _, _ = train_run(tmp_path / "pre", "binary", pre=True, loss="bce")
    for key in ("loss", "val_loss", "val_accuracy"):
        assert a.history[-1][key] == pytest.approx(b.history[-1][key], rel=1e-5, abs=1e-6), key
