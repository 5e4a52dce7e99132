"""Metrics, accumulated on the device with no per-sample Python and no ``.item()`` per step.

Each step stores the least it must into preallocated buffers (the loss, the predicted classes and the
targets, or the outputs for real targets: one or two tensor copies); everything else (confusion
matrix, precision/recall/F1, R², perplexity) is computed once at the end of the epoch, with a single
transfer to the host. That keeps the training loop within a few percent of a bare PyTorch loop.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .losses import IGNORE
from .rules import CLASS_METRICS, Head

if TYPE_CHECKING:
    import torch

KEEP_OUTPUTS_BYTES = 256 << 20  # keep whole detached outputs per epoch up to this size, else only argmax/top-k hits


class EpochStats:
    """Per-epoch accumulator. ``update`` is called once per batch; ``compute`` once per epoch.

    ``update`` only keeps references: the detached loss, the detached outputs and the targets of each
    batch (no copy, no reduction). When an epoch's outputs would exceed ``KEEP_OUTPUTS_BYTES`` (a large
    vocabulary), it keeps the predicted class (and top-k hits) instead.
    """

    def __init__(self, head: Head, metrics: list[str], samples: int, device: "torch.device", loss_is_nll: bool) -> None:
        self.head = head
        self.metrics = list(metrics)
        self.device = device
        self.top_ks = sorted({int(m[4:]) for m in metrics if m.startswith("top_")})
        self.need_nll = "perplexity" in metrics and not loss_is_nll
        kind = head.kind
        self.store_class = kind != "real" and any(m in CLASS_METRICS or m.startswith("top_") for m in metrics)
        self.store_real = kind == "real" and bool(metrics)
        rows = samples * head.positions
        self.keep_logits = kind == "class" and rows * (head.num_classes or 1) * 4 <= KEEP_OUTPUTS_BYTES
        self.losses: list["torch.Tensor"] = []
        self.sizes: list[int] = []
        self.outs: list["torch.Tensor"] = []  # detached outputs (or predicted classes), one per batch
        self.targets: list["torch.Tensor"] = []
        self.hits: list["torch.Tensor"] = []  # (len(top_ks), rows) bool per batch, when logits are not kept
        self.nll: list["torch.Tensor"] = []
        self.regs: list["torch.Tensor"] = []  # per step: the weight regularizers' term inside the loss (if any)
        self.update = self._make_update()

    def reset(self) -> None:
        for buf in (self.losses, self.sizes, self.outs, self.targets, self.hits, self.nll, self.regs):
            buf.clear()

    def add_reg(self, reg: "torch.Tensor") -> None:
        """Record the step's regularization term (already inside its loss); ``compute`` reports its mean as
        ``reg_loss``, so the log shows how much of the loss the penalties are."""
        self.regs.append(reg.detach())

    # --- per step -------------------------------------------------------------------------
    def _make_update(self):
        """A closure specialised for this head and metric set (the hot path has no branching)."""
        import torch
        import torch.nn.functional as F

        losses, sizes, outs, targets, hits, nll = self.losses, self.sizes, self.outs, self.targets, self.hits, self.nll
        c, top_ks = self.head.num_classes, self.top_ks

        if not (self.store_class or self.store_real):
            def update(out: "torch.Tensor", y: "torch.Tensor", loss: "torch.Tensor") -> None:
                sizes.append(y.shape[0])
                losses.append(loss.detach())
            return update

        if self.store_real or self.keep_logits:
            def update(out: "torch.Tensor", y: "torch.Tensor", loss: "torch.Tensor") -> None:
                sizes.append(y.shape[0])
                losses.append(loss.detach())
                outs.append(out.detach())
                targets.append(y)
            return update

        binary = self.head.kind == "binary"
        keep = self.keep_logits

        def update(out: "torch.Tensor", y: "torch.Tensor", loss: "torch.Tensor") -> None:
            sizes.append(y.shape[0])
            losses.append(loss.detach())
            out = out.detach()
            targets.append(y)
            if binary:
                outs.append(out > 0)
                return
            if need_nll and not keep:
                nll.append(F.cross_entropy(out.reshape(-1, c).float(), y.reshape(-1)))
            if keep:
                outs.append(out)
                return
            outs.append(out.argmax(-1))
            if top_ks:
                flat, yy = out.reshape(-1, c), y.reshape(-1, 1)
                hits.append(torch.stack([(flat.topk(k, -1).indices == yy).any(-1) for k in top_ks]))

        need_nll = self.need_nll
        return update

    # --- per epoch ------------------------------------------------------------------------
    def gather(self, world: int) -> None:
        """Data-parallel: replace this rank's lists with every rank's, interleaved step by step in rank
        order, which is the row order a single process would have seen."""
        from .distributed import gather_lists

        names = ("sizes", "losses", "outs", "targets", "hits", "nll", "regs")
        parts = gather_lists({k: getattr(self, k) for k in names}, world)
        self.reset()
        dev = self.device
        for i in range(len(parts[0]["sizes"])):
            for part in parts:
                self.sizes.append(part["sizes"][i])
                for k in names[1:]:
                    if part[k]:
                        getattr(self, k).append(part[k][i].to(dev))

    def steps(self) -> int:
        return len(self.sizes)

    def losses_since(self, start: int) -> "torch.Tensor":
        """The per-step losses from step ``start`` (0-based) on, as one tensor (for the non-finite check)."""
        import torch

        return torch.stack(self.losses[start:]).float() if len(self.losses) > start else torch.zeros(0)

    def state_dict(self) -> dict[str, Any]:
        """The partial epoch (for an exact mid-epoch resume after Ctrl-C)."""
        import torch

        def cat(xs: list) -> Any:
            return torch.cat(xs).cpu() if xs else None

        return {"sizes": list(self.sizes), "losses": torch.stack(self.losses).cpu() if self.losses else None,
                "outs": cat(self.outs), "targets": cat(self.targets), "nll": torch.stack(self.nll).cpu() if self.nll else None,
                "hits": torch.cat(self.hits, 1).cpu() if self.hits else None,
                "regs": torch.stack(self.regs).cpu() if self.regs else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reset()
        self.sizes.extend(int(s) for s in state["sizes"])
        dev = self.device
        if state.get("losses") is not None:
            self.losses.extend(state["losses"].to(dev).unbind())
        if state.get("nll") is not None:
            self.nll.extend(state["nll"].to(dev).unbind())
        if state.get("regs") is not None:
            self.regs.extend(state["regs"].to(dev).unbind())
        for name in ("outs", "targets"):
            if state.get(name) is not None:
                getattr(self, name).append(state[name].to(dev))
        if state.get("hits") is not None:
            self.hits.append(state["hits"].to(dev))

    def _class_rows(self) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor | None"]:
        """(predicted class, true class, logits or None), flattened over positions."""
        import torch

        y = _cat_rows(self.targets, 1).reshape(-1)
        # Padded steps of variable-length sequences are not scored; only per-step targets can have them, and a
        # boolean selection costs more than the rest of the epoch's metrics, so it runs only where one is padded.
        keep = _valid(y) if self.head.positions > 1 else None
        if keep is not None and bool(keep.all()):
            keep = None
        y = y.nan_to_num(IGNORE).long() if y.is_floating_point() else y.long()
        if self.keep_logits and self.head.kind == "class":
            logits = _cat_rows(self.outs, self.head.num_classes)
            if keep is not None:
                logits, y = logits[keep], y[keep]
            return logits.argmax(-1), y, logits
        pred = _cat_rows(self.outs, 1).reshape(-1).long()
        return (pred, y, None) if keep is None else (pred[keep], y[keep], None)

    def _batch_mean(self, per_batch: list["torch.Tensor"]) -> "torch.Tensor":
        """The mean over samples of per-batch means (weighted by batch size where the sizes differ), in float64."""
        import torch

        stacked = torch.stack(per_batch).double()
        sizes = self.sizes
        if min(sizes) == max(sizes):
            return stacked.mean()
        w = torch.tensor(sizes, dtype=torch.float64, device=stacked.device)
        return (stacked * w).sum() / w.sum()

    def compute(self) -> dict[str, float]:
        """Mean loss and every metric over the epoch so far (one host transfer)."""
        import torch

        if not self.sizes:
            return {}
        mean = self._batch_mean
        vals: dict[str, torch.Tensor] = {"loss": mean(self.losses)}
        if self.regs:
            vals["reg_loss"] = mean(self.regs)
        if self.need_nll and self.nll:
            vals["_nll"] = mean(self.nll)
        if self.store_class:
            pred, y, logits = self._class_rows()
            c = self.head.num_classes
            if self.need_nll and logits is not None:
                import torch.nn.functional as F

                vals["_nll"] = F.cross_entropy(logits.float(), y).double()
            if {"precision", "recall", "f1"} & set(self.metrics):
                cm = torch.bincount(y * c + pred, minlength=c * c).reshape(c, c).double()
                vals.update(_class_metrics(cm))
            else:  # accuracy alone needs no confusion matrix (the same number, a third of the time)
                vals["accuracy"] = (pred == y).double().mean()
            for j, k in enumerate(self.top_ks):
                if logits is not None:
                    hit = (logits.topk(k, -1).indices == y.reshape(-1, 1)).any(-1)
                else:
                    every = _valid(torch.cat([t.reshape(-1) for t in self.targets]))
                    hit = torch.cat(self.hits, 1)[j][every]
                vals[f"top_{k}"] = hit.double().mean()
        if self.store_real:
            wd = self.head.width
            out = _cat_rows(self.outs, wd).double()
            y = _cat_rows(self.targets, wd).double()
            if self.head.positions > 1:  # padded steps of variable-length sequences (NaN targets)
                keep = ~torch.isnan(y).any(-1)
                if not bool(keep.all()):
                    out, y = out[keep], y[keep]
            vals.update(_real_metrics(out, y))
        keys = list(vals)
        host = torch.stack([vals[k].reshape(()) for k in keys]).tolist()
        got = dict(zip(keys, host))
        result = {"loss": got["loss"]}
        if "reg_loss" in got:
            result["reg_loss"] = got["reg_loss"]
        for m in self.metrics:
            if m == "perplexity":
                nll = got["_nll"] if self.need_nll else got["loss"] - got.get("reg_loss", 0.0)
                result[m] = math.exp(min(nll, 700.0))
            elif m in got:
                result[m] = got[m]
        return result

    def confusion(self) -> "torch.Tensor | None":
        """The confusion matrix (rows: true class, columns: predicted) over the epoch, on the CPU."""
        import torch

        if not self.store_class or not self.outs:
            return None
        pred, y, _ = self._class_rows()
        c = self.head.num_classes
        return torch.bincount(y * c + pred, minlength=c * c).reshape(c, c).cpu()


def _valid(y: "torch.Tensor") -> "torch.Tensor":
    """Which targets are scored: not -100 (integer) and not NaN (bce targets of padded steps)."""
    import torch

    return ~torch.isnan(y) if torch.is_floating_point(y) else y != IGNORE


def _class_metrics(cm: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    """Accuracy and macro precision/recall/F1 from a confusion matrix (zero division counts as 0, over the
    classes present in the targets or the predictions, like scikit-learn's macro average)."""
    tp = cm.diagonal()
    true = cm.sum(1)
    pred = cm.sum(0)
    present = (true + pred) > 0
    k = present.sum().clamp(min=1)
    precision = torch_where_div(tp, pred)
    recall = torch_where_div(tp, true)
    f1 = torch_where_div(2 * precision * recall, precision + recall)
    return {
        "accuracy": tp.sum() / cm.sum().clamp(min=1),
        "precision": (precision * present).sum() / k,
        "recall": (recall * present).sum() / k,
        "f1": (f1 * present).sum() / k,
    }


def torch_where_div(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    return a / b.clamp(min=1e-300) * (b > 0)


def _real_metrics(out: "torch.Tensor", y: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    err = out - y  # (N, D)
    sst = ((y - y.mean(0)) ** 2).sum(0)  # (D,)
    sse = (err**2).sum(0)
    r2 = torch_where_div(sse, sst)
    r2 = (1 - r2) * (sst > 0)  # a constant target column has no defined R²: count 0 (as scikit-learn's force_finite)
    return {"mae": err.abs().mean(), "rmse": (err**2).mean().sqrt(), "r2": r2.mean()}


def _cat_rows(parts: list["torch.Tensor"], width: int) -> "torch.Tensor":
    """The batches' tensors as one (rows, width) tensor: one ``cat`` when their shapes after the batch agree
    (the common case), else each flattened first (ragged batches are cut to different lengths)."""
    import torch

    try:
        return torch.cat(parts).reshape(-1, width)
    except RuntimeError:  # "sizes of tensors must match": cheaper to let cat find out than to compare shapes
        return torch.cat([p.reshape(-1, width) for p in parts])
