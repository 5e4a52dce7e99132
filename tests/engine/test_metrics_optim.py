"""Metrics against hand computations; schedules' rates; accumulation, clipping and early stopping."""
from __future__ import annotations

import math

import pytest

import layerforge as lf
from layerforge.engine.losses import Head
from layerforge.engine.metrics import EpochStats
from layerforge.engine.optim import Schedule
from layerforge.engine.schema import ScheduleSpec
from tests.engine.engine_helpers import class_bundle, mlp_spec


def _stats(kind="class", metrics=("accuracy", "precision", "recall", "f1", "top_2", "perplexity"), out_shape=(3,), c=3,
           loss="cross_entropy", nll=True, samples=8):
    import torch

    return EpochStats(Head(kind, out_shape, c, loss), list(metrics), samples, torch.device("cpu"), nll)


def test_class_metrics_match_a_hand_count():
    import torch
    import torch.nn.functional as F

    # true: 0 0 1 1 1 2 2 2   pred: 0 1 1 1 2 2 2 0
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 2, 2, 0])
    logits = F.one_hot(pred, 3).float() * 3.0
    logits[:, 1] += 0.5  # class 1 is everyone's second choice (or first)
    st = _stats()
    loss = F.cross_entropy(logits, y)
    for i in range(0, 8, 3):  # three uneven batches
        st.update(logits[i:i + 3], y[i:i + 3], F.cross_entropy(logits[i:i + 3], y[i:i + 3]))
    m = st.compute()
    # per class: precision 1/2, 2/3, 2/3; recall 1/2, 2/3, 2/3
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["precision"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert m["recall"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert m["f1"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    top2 = (logits.topk(2).indices == y[:, None]).any(1).float().mean()
    assert m["top_2"] == pytest.approx(float(top2))
    assert m["loss"] == pytest.approx(float(loss), rel=1e-6)
    assert m["perplexity"] == pytest.approx(math.exp(float(loss)), rel=1e-6)
    assert st.confusion().tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]


@pytest.mark.parametrize("keep_logits", [True, False])
def test_per_step_accuracy_skips_padded_steps_of_ragged_batches(monkeypatch, keep_logits):
    import torch

    import layerforge.engine.metrics as metrics

    if not keep_logits:
        monkeypatch.setattr(metrics, "KEEP_OUTPUTS_BYTES", 0)
    # two batches cut to different lengths (3 and 5 steps); -100 marks a padded step
    y1 = torch.tensor([[0, 1, 2], [1, -100, -100]])
    p1 = torch.tensor([[0, 1, 0], [1, 2, 2]])  # 3 of 4 valid steps right
    y2 = torch.tensor([[2, 2, 0, 1, -100]])
    p2 = torch.tensor([[2, 0, 0, 1, 1]])  # 3 of 4 valid steps right
    st = _stats(metrics=("accuracy",), out_shape=(5, 3), samples=3)
    for p, y in ((p1, y1), (p2, y2)):
        st.update(torch.nn.functional.one_hot(p, 3).float(), y, torch.tensor(0.5))
    assert st.compute()["accuracy"] == pytest.approx(6 / 8)
    full = _stats(metrics=("accuracy",), out_shape=(3, 3), samples=2)  # nothing padded: every step counts
    full.update(torch.nn.functional.one_hot(p1, 3).float(), y1.clamp(min=0), torch.tensor(0.5))
    assert full.compute()["accuracy"] == pytest.approx(3 / 6)


def test_macro_average_skips_classes_absent_from_targets_and_predictions():
    import torch
    import torch.nn.functional as F

    y = torch.tensor([0, 0, 1, 1])
    logits = F.one_hot(torch.tensor([0, 0, 1, 0]), 4).float()  # classes 2, 3 never appear
    st = _stats(metrics=("precision", "recall", "f1"), c=4, out_shape=(4,), samples=4)
    st.update(logits, y, F.cross_entropy(logits, y))
    m = st.compute()
    assert m["precision"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["recall"] == pytest.approx((1 + 1 / 2) / 2)


def test_metrics_without_kept_logits_equal_those_with_them(monkeypatch):
    """Large vocabularies keep only argmax/top-k hits per step; the numbers must not change."""
    import torch
    import torch.nn.functional as F

    from layerforge.engine import metrics

    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(4, 6, 5, generator=g), torch.randint(0, 5, (4, 6), generator=g)
    results = []
    for budget in (metrics.KEEP_OUTPUTS_BYTES, 0):
        monkeypatch.setattr(metrics, "KEEP_OUTPUTS_BYTES", budget)
        st = _stats(metrics=("accuracy", "f1", "top_3", "perplexity"), out_shape=(6, 5), c=5, nll=False, samples=4)
        assert st.keep_logits == bool(budget)
        for i in (0, 2):
            st.update(out[i:i + 2], y[i:i + 2], F.cross_entropy(out[i:i + 2].reshape(-1, 5), y[i:i + 2].reshape(-1),
                                                                   label_smoothing=0.1))
        results.append(st.compute())
    assert results[0] == pytest.approx(results[1])
    nll = F.cross_entropy(out.reshape(-1, 5), y.reshape(-1))
    assert results[0]["perplexity"] == pytest.approx(math.exp(float(nll)), rel=1e-5)


def test_regression_metrics_match_numpy():
    import numpy as np
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(3)
    y = torch.randn(10, 2, generator=g)
    out = y + 0.3 * torch.randn(10, 2, generator=g)
    st = _stats("real", ("mae", "rmse", "r2"), out_shape=(2,), c=None, loss="mse", samples=10)
    st.update(out[:6], y[:6], F.mse_loss(out[:6], y[:6]))
    st.update(out[6:], y[6:], F.mse_loss(out[6:], y[6:]))
    m = st.compute()
    o, t = out.double().numpy(), y.double().numpy()
    assert m["mae"] == pytest.approx(np.abs(o - t).mean())
    assert m["rmse"] == pytest.approx(np.sqrt(((o - t) ** 2).mean()))
    r2 = np.mean([1 - ((o[:, j] - t[:, j]) ** 2).sum() / ((t[:, j] - t[:, j].mean()) ** 2).sum() for j in range(2)])
    assert m["r2"] == pytest.approx(r2)
    assert m["loss"] == pytest.approx(((o - t) ** 2).mean(), rel=1e-6)


def test_stats_state_round_trip_gives_the_same_epoch_metrics():
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g)
    a = _stats()
    a.update(out[:4], y[:4], F.cross_entropy(out[:4], y[:4]))
    b = _stats()
    b.load_state_dict(a.state_dict())
    for st in (a, b):
        st.update(out[4:], y[4:], F.cross_entropy(out[4:], y[4:]))
    assert a.compute() == b.compute()


def _sched(name: str, epochs=10, spe=10, **kw) -> Schedule:
    return Schedule(ScheduleSpec(name=name, **kw), 0.1, spe, epochs, "val_loss")


def test_cosine_falls_from_lr_to_min_lr_after_warmup():
    s = _sched("cosine", warmup_steps=10, min_lr=0.001)
    assert s.per_step
    assert [round(s.lr(i, 0), 6) for i in (0, 4, 9)] == [0.01, 0.05, 0.1]
    assert s.lr(10, 1) == pytest.approx(0.1)
    assert s.lr(55, 5) == pytest.approx(0.001 + 0.099 * 0.5)
    assert s.lr(99, 9) == pytest.approx(0.001, abs=1e-4)


def test_one_cycle_rises_to_max_then_anneals_far_below_start():
    s = _sched("one_cycle", max_lr=1.0, pct_start=0.3)
    assert s.lr(0, 0) == pytest.approx(1.0 / 25)
    assert max(s.lr(i, 0) for i in range(100)) == pytest.approx(1.0)
    assert s.lr(99, 9) == pytest.approx(1.0 / 25 / 1e4)


def test_step_and_warmup_linear_and_constant():
    step = _sched("step", step_size=3, gamma=0.5)
    assert not step.per_step
    assert [step.lr(0, e) for e in (0, 2, 3, 6)] == [0.1, 0.1, 0.05, 0.025]
    lin = _sched("warmup_linear", warmup_epochs=1)
    assert lin.lr(9, 0) == pytest.approx(0.1) and lin.lr(99, 9) == pytest.approx(0.1 / 90, rel=1e-6)
    assert _sched("none").lr(57, 5) == 0.1


def test_reduce_on_plateau_cuts_the_rate_after_patience():
    s = _sched("reduce_on_plateau", patience=1, factor=0.5)
    for v in (1.0, 0.9, 0.95, 0.95):
        s.epoch_end({"val_loss": v})
    assert s.lr(0, 4) == pytest.approx(0.05)
    s2 = _sched("reduce_on_plateau", patience=1, factor=0.5)
    s2.load_state_dict(s.state_dict())
    assert s2.lr(0, 4) == s.lr(0, 4)


def test_gradient_accumulation_equals_one_big_batch():
    import torch

    bundle = class_bundle(n=32, val=0)
    spec = mlp_spec(epochs=3, batch_size=32, shuffle=False, optimizer={"name": "sgd", "lr": 0.1})
    spec["model"]["layers"][1]["rate"] = 0.0  # dropout masks would differ per micro-batch
    big = lf.train(spec, data=bundle, save=False).model
    spec["train"].update(batch_size=16, grad_accumulation=2)
    acc = lf.train(spec, data=bundle, save=False).model
    for (n, p), q in zip(big.named_parameters(), acc.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_grad_clipping_bounds_each_sgd_update():
    import torch

    spec = mlp_spec(epochs=1, batch_size=120, grad_clip={"max_norm": 1e-3}, optimizer={"name": "sgd", "lr": 1.0})
    spec["model"]["layers"][1]["rate"] = 0.0
    before = lf.build_model(spec)
    after = lf.train(spec, data=class_bundle(val=0), save=False).model
    with torch.no_grad():
        moved = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after.parameters(), before.parameters())))
    assert float(moved) <= 1e-3 + 1e-7


def test_early_stopping_stops_after_patience_and_restores_the_best_weights(tmp_path):
    import torch
    from safetensors.torch import load_file

    # a rate so high that validation stops improving quickly
    spec = mlp_spec(epochs=40, optimizer={"name": "sgd", "lr": 3.0},
                    early_stopping={"monitor": "val_loss", "patience": 2, "restore_best": True})
    res = lf.train(spec, data=class_bundle(), out=tmp_path / "run")
    assert res.status == "early_stopped" and res.epochs_run == res.best_epoch + 2
    best = load_file(str(tmp_path / "run" / "checkpoints" / "best" / "model.safetensors"))
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, best[k]), k
    assert res.best["val_loss"] == min(r["val_loss"] for r in res.history)


def test_label_smoothing_and_class_weights_change_the_loss_but_not_accuracy_semantics():
    plain = lf.train(mlp_spec(epochs=1, shuffle=False), data=class_bundle(), save=False).history[0]
    smooth = lf.train(mlp_spec(epochs=1, shuffle=False, loss={"name": "cross_entropy", "label_smoothing": 0.2,
                                                               "class_weights": [1.0, 2.0, 1.0]},
                               metrics=["accuracy", "perplexity"]), data=class_bundle(), save=False).history[0]
    assert smooth["loss"] != plain["loss"]
    assert math.log(smooth["perplexity"]) != pytest.approx(smooth["loss"])


def test_class_weights_need_one_weight_per_class():
    with pytest.raises(lf.SpecError, match="class_weights has 2 entries but the model outputs 3 classes"):
        lf.train(mlp_spec(loss={"name": "cross_entropy", "class_weights": [1, 2]}), data=class_bundle(), save=False)
