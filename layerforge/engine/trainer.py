"""The fit loop: a model, a DataBundle and a TrainSpec in; a TrainResult (and a run directory) out.

The hot loop does what a hand-written PyTorch loop does — index a batch, forward, loss, backward,
step — plus one or two tensor copies for the metrics; nothing per step goes through ``.item()``.
Everything optional (autocast, gradient scaling, clipping, accumulation, per-step schedules,
callbacks) is decided before the loop so the plain path stays plain.

Data-parallel training shards each global batch by rank (see :meth:`Trainer._batches`) and lets only
rank 0 write; the rest of the loop is the same.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..data.bundle import DataBundle, Split
from ..errors import CheckpointError, Issue, KeyPath, SpecError, TrainingError
from ..runtime import (autocast_factory, environment, laid_out, make_scaler, resolve_device, resolve_speedups,
                       run_flags)
from .autocompile import CompileProbe
from .events import Callback, RunInfo, TrainResult, overrides
from .losses import Head, build_loss, check_finite_or_raise, prepare_targets, resolve_head
from .metrics import EpochStats
from .optim import Schedule, build_optimizer, set_lr
from .rules import Problem, default_metrics, loss_problems, metric_problems, mode_of, monitor_problems
from .rundir import ENV, RunDir
from .state import TrainerState
from .schema import TrainSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

NAN_CHECK_EVERY = 32  # steps between non-finite-loss checks (one tiny host sync each)


class Trainer(TrainerState):
    """One training run. Build it, then call :meth:`fit` (optionally after :meth:`load` to resume)."""

    def __init__(self, model: "nn.Module", bundle: DataBundle, spec: TrainSpec, *, seed: int = 0, name: str = "model",
                 out_shape: tuple[int, ...] | None = None, run: RunDir | None = None,
                 callbacks: Iterable[Callback] = (), source: str | None = None, rank: int = 0, world: int = 1,
                 device: str | None = None, locate: Callable[..., Issue] | None = None) -> None:
        import torch

        self.spec, self.name, self.run, self.source = spec, name, run, source
        self.rank, self.world = rank, world
        self.callbacks = list(callbacks)
        self.device = resolve_device(device or spec.device)
        self.autocast = autocast_factory(spec.precision, self.device)
        self.amp = spec.precision != "fp32"
        self.scaler = make_scaler(spec.precision, self.device)

        self.model = model.to(self.device)
        self.speed = resolve_speedups(spec.fast, spec.compile, spec.deterministic, self.device, spec.optimizer.name,
                                      model)
        if self.speed.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.input_names = list(getattr(model, "input_names", ["input"]))
        self.multi_input = isinstance(bundle.train.x, dict)
        if out_shape is None:
            out_shape = self._probe_output_shape(bundle.train)
        self.head: Head = resolve_head(bundle.task, tuple(out_shape), bundle.train.y, bundle.num_classes, spec.loss, source)
        self.task = bundle.task
        self.bundle = bundle
        self.train_split = self._prepare(bundle.train)
        self.val_split = self._prepare(bundle.val) if bundle.val is not None and len(bundle.val) else None
        self.metrics = list(spec.metrics) if spec.metrics is not None else default_metrics(bundle.task, self.head.kind)
        # The spec's rules again, now with the head the data decided (validate could only guess it).
        h = self.head
        self._refuse(loss_problems(spec.loss, h.kind, h.out_shape, ("model", "outputs"))
                     + metric_problems(self.metrics, h.kind, h.num_classes, h.loss)
                     + monitor_problems(spec, self.metrics, self.val_split is not None), locate, source)
        self.loss_fn = build_loss(self.head, spec.loss, self.device, masked=bundle.train.lengths is not None)
        loss_is_nll = self.head.loss == "cross_entropy" and not (spec.loss and (spec.loss.label_smoothing or spec.loss.class_weights))

        es = spec.early_stopping
        self.monitor = es.monitor if es.monitor != "auto" else ("val_loss" if self.val_split is not None else "loss")
        self.mode = es.mode if es.mode != "auto" else mode_of(self.monitor)

        self.forward = self.model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.eager_forward = self.forward
        if self.speed.compile == "on":
            self.forward = torch.compile(self.forward)
        if not any(p.requires_grad for p in self.model.parameters()):
            self._refuse([Problem(("model", "layers"), "the model has no trainable weights, so training would change "
                                  "nothing (every layer with weights has trainable: false, or none has weights)",
                                  "set trainable: true on at least one layer with weights, e.g. the head")],
                         locate, source)
        self.optimizer = build_optimizer(spec.optimizer, self.model.parameters(), self.speed.optimizer_kwargs())
        self.batch_size = spec.batch_size
        self.eval_batch_size = spec.eval_batch_size or 4 * spec.batch_size
        n_train = len(self.train_split)
        self.steps_per_epoch = self._num_batches(n_train, spec.drop_last)
        # the last global batch's size; data-parallel runs drop a last batch too small to give every rank a row
        self.last_batch = n_train - (self.steps_per_epoch - 1) * spec.batch_size if not spec.drop_last else spec.batch_size
        if world > 1 and self.last_batch < world:
            self.steps_per_epoch -= 1
            self.last_batch = spec.batch_size
        if self.steps_per_epoch == 0:
            raise TrainingError(f"the training split has {len(self.train_split)} samples, fewer than one batch of "
                                f"{spec.batch_size} with drop_last", hint="lower batch_size or set drop_last: false")
        self.accum = spec.grad_accumulation
        opt_steps = math.ceil(self.steps_per_epoch / self.accum)
        self.schedule = Schedule(spec.schedule, spec.optimizer.lr, opt_steps, spec.epochs, self.monitor)
        self.seed = seed  # also seeds the randomness of validation (see evaluate_split)
        self.shuffle_gen = torch.Generator().manual_seed(seed)
        self.stats = EpochStats(self.head, self.metrics, len(self.train_split), self.device, loss_is_nll)
        self.val_stats = (EpochStats(self.head, self.metrics, len(self.val_split), self.device, loss_is_nll)
                          if self.val_split is not None else None)

        # Counters and state that a checkpoint carries.
        self.epoch = 0  # completed epochs
        self.global_step = 0  # batches done
        self.opt_step = 0  # optimizer steps done
        self.history: list[dict[str, Any]] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.elapsed = 0.0
        self._resume_step = 0  # batches of the current epoch already done (mid-epoch resume)
        self._epoch_shuffle_state: "torch.Tensor | None" = None
        self._best_weights: dict[str, "torch.Tensor"] | None = None
        self._stop = False
        self.resumed = False
        self.notes: list[str] = []  # shown when training starts (RunInfo.notes), e.g. what init_from loaded
        self._probe = CompileProbe(self) if self.speed.compile == "auto" else None

    # --- setup helpers --------------------------------------------------------------------------
    def _probe_output_shape(self, split: Split) -> tuple[int, ...]:
        import torch

        x = split.x
        one = {k: v[:1].to(self.device) for k, v in x.items()} if isinstance(x, dict) else x[:1].to(self.device)
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            out = self.model(**one) if isinstance(one, dict) else self.model(one)
        self.model.train(was)
        if isinstance(out, (tuple, list)):
            raise TrainingError("the model has several outputs; training needs exactly one",
                                hint="set model.outputs to the layer whose output is compared with the targets")
        return tuple(out.shape[1:])

    def _prepare(self, split: Split | None) -> Split | None:
        import torch

        if split is None:
            return None

        def as_float32(t: "torch.Tensor") -> "torch.Tensor":  # float64 user tensors would not meet fp32 weights
            return laid_out(t.to(torch.float32), self.speed) if torch.is_floating_point(t) else t

        x = {k: as_float32(v) for k, v in split.x.items()} if isinstance(split.x, dict) else as_float32(split.x)
        y = prepare_targets(self.head, split.y, torch.float32, padded=split.lengths is not None)
        return Split(x, y, split.lengths, split.bucket, split.padding).to(self.device)

    @staticmethod
    def _refuse(problems: list[Problem], locate: Callable[..., Issue] | None, source: str | None) -> None:
        errors = [p for p in problems if not p.warning]
        if errors:
            at: Callable[[KeyPath, str, str | None], Issue] = (
                (lambda path, msg, hint: locate(path, msg, hint)) if locate is not None
                else (lambda path, msg, hint: Issue(msg, path, hint, source)))
            raise SpecError([at(p.path, p.message, p.hint) for p in errors])

    def _num_batches(self, n: int, drop_last: bool) -> int:
        per = self.batch_size
        return n // per if drop_last else -(-n // per)

    def _batches(self, split: Split, size: int, shuffle: bool, drop_last: bool) -> Iterator[tuple[Any, "torch.Tensor"]]:
        """The epoch's batches by index. (Data-parallel: each rank takes its slice of every global batch.)"""
        it = split.batches(size, shuffle=shuffle, generator=self.shuffle_gen if shuffle else None, drop_last=drop_last)
        if self.world == 1:
            return it
        return _shard(it, self.rank, self.world, self.steps_per_epoch)

    # --- the loop -------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        spec = self.spec
        previous_handler = self._install_sigint()
        try:
            with run_flags(self.speed, spec.threads, spec.deterministic):
                return self._fit()
        finally:
            self._restore_sigint(previous_handler)

    def _fit(self) -> TrainResult:
        spec = self.spec
        start_epoch = self.epoch + 1
        info = RunInfo(
            name=self.name, run_dir=self.run.path if self.run else None, device=str(self.device),
            precision=spec.precision, epochs=spec.epochs, start_epoch=start_epoch, steps_per_epoch=self.steps_per_epoch,
            batch_size=spec.batch_size, train_samples=len(self.train_split),
            val_samples=len(self.val_split) if self.val_split is not None else 0,
            params=sum(p.numel() for p in self.model.parameters()), task=self.task,
            trainable_params=sum(p.numel() for p in self.model.parameters() if p.requires_grad), loss=self.head.loss,
            metrics=self.metrics, monitor=self.monitor, resumed=self.resumed,
            notes=[*(str(n) for n in (self.bundle.meta or {}).get("notes", [])), *self.notes],
            request_stop=self.request_stop,
            speed=self.speed.summary(spec.optimizer.name), speedups=self.speed.to_dict())
        if self.run is not None and self.rank == 0:
            if not self.resumed:
                self._write_environment()
            self.run.rewrite_metrics(self.history)
            h = self.head
            self.run.update_run(status="running", head={"kind": h.kind, "out_shape": list(h.out_shape),
                                                        "num_classes": h.num_classes, "loss": h.loss})
        for cb in self.callbacks:
            cb.on_start(info)

        status, message = "completed", None
        t_start = time.perf_counter() - self.elapsed
        try:
            for epoch in range(start_epoch, spec.epochs + 1):
                record = self._run_epoch(epoch)
                self.elapsed = time.perf_counter() - t_start
                if record is None:
                    status, message = "interrupted", f"interrupted during epoch {epoch}; checkpoints/last holds the state"
                    break
                stop_early = self._end_epoch(record)
                if stop_early:
                    status = "early_stopped"
                    message = (f"no improvement of {self.monitor} for {self.bad_epochs} epochs "
                               f"(best {self.best_value:.6g} at epoch {self.best_epoch})")
                    break
                if self.world > 1:
                    from .distributed import any_rank

                    self._stop = any_rank(self._stop)  # all ranks stop after the same epoch
                if self._stop:
                    status, message = "interrupted", f"stopped after epoch {epoch}"
                    if not self._saved_this_epoch():
                        self._save_last()
                    break
        except (TrainingError, CheckpointError) as e:  # a NaN loss, a checkpoint that could not be written
            self.elapsed = time.perf_counter() - t_start
            self._finish("failed", e.message)
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: leave at once, the last saved checkpoint stays
            self.elapsed = time.perf_counter() - t_start
            self._finish("interrupted", "stopped at once by a second Ctrl-C; checkpoints/last holds the last saved state")
            raise
        self.elapsed = time.perf_counter() - t_start
        if status in ("completed", "early_stopped") and not self._saved_this_epoch():
            self._save_last()
        if spec.early_stopping.restore_best and status != "interrupted":
            self._restore_best()
        return self._finish(status, message)

    def _run_epoch(self, epoch: int) -> dict[str, Any] | None:
        """Train one epoch (and validate). Returns its record, or None when interrupted mid-epoch."""
        model, opt, fwd, loss_fn = self.model, self.optimizer, self.forward, self.loss_fn
        stats = self.stats
        update = stats.update
        losses = stats.losses
        step_cbs = [cb for cb in self.callbacks if overrides(cb, "on_step")]
        amp, autocast, scaler = self.amp, self.autocast, self.scaler
        accum = self.accum
        schedule, per_step_lr = self.schedule, self.schedule.per_step
        clip = self.spec.grad_clip
        world = self.world
        reg_of = model.regularization_loss if getattr(model, "regularized", False) else None  # weight penalties
        plain = (accum == 1 and not amp and scaler is None and clip is None and not per_step_lr and world == 1
                 and reg_of is None)
        bs, last_bs = self.batch_size, self.last_batch
        multi = self.multi_input
        spe = self.steps_per_epoch

        skip = self._resume_step
        self._resume_step = 0
        if skip:
            shuffle_now = self.shuffle_gen.get_state()
            self.shuffle_gen.set_state(self._epoch_shuffle_state)
        else:
            self.stats.reset()
            self._epoch_shuffle_state = self.shuffle_gen.get_state()
        if not per_step_lr:
            set_lr(opt, schedule.lr(self.opt_step, epoch - 1))
        for cb in self.callbacks:
            cb.on_epoch_start(epoch, spe)
        model.train()
        batches = self._batches(self.train_split, self.batch_size, self.spec.shuffle, self.spec.drop_last)
        for _ in range(skip):
            next(batches)
        if skip:
            self.shuffle_gen.set_state(shuffle_now)
        t0 = time.perf_counter()
        step = skip
        checked = skip
        probe = self._probe
        next_mark = probe.begin_epoch(spe - skip) if probe is not None else -1
        for xb, yb in batches:
            if plain:
                out = fwd(**xb) if multi else fwd(xb)
                loss = loss_fn(out, yb)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                self.opt_step += 1
            else:
                if amp:
                    with autocast():
                        out = fwd(**xb) if multi else fwd(xb)
                        loss = loss_fn(out, yb)
                else:
                    out = fwd(**xb) if multi else fwd(xb)
                    loss = loss_fn(out, yb)
                if reg_of is not None:  # Keras: the penalties are part of the loss (computed in fp32, no autocast)
                    reg = reg_of()
                    loss = loss + reg
                    stats.add_reg(reg)
                scaled = loss / accum if accum > 1 else loss
                if world > 1:  # DDP averages rank means: weigh each by its share of the global batch
                    scaled = scaled * (yb.shape[0] * world / (bs if step < spe - 1 else last_bs))
                if scaler is not None:
                    scaler.scale(scaled).backward()
                else:
                    scaled.backward()
                if (step + 1) % accum == 0 or step + 1 == spe:
                    self._optimizer_step(epoch)
            update(out, yb, loss)
            step += 1
            self.global_step += 1
            for cb in step_cbs:
                cb.on_step(epoch, step, losses[-1])
            if self.global_step == next_mark:  # compile: auto times a few eager steps, then decides
                next_mark = probe.mark(epoch)
                fwd = self.forward
            if step - checked >= NAN_CHECK_EVERY:
                self._check_finite(stats.losses_since(checked), epoch, checked, spe)
                checked = step
            if self._stop and (step % accum == 0) and step < spe and world == 1:
                self._check_finite(stats.losses_since(checked), epoch, checked, spe)
                self._save_last(mid_epoch=step)
                return None
        self._check_finite(stats.losses_since(checked), epoch, checked, spe)
        if world > 1:
            stats.gather(world)
        train_time = time.perf_counter() - t0
        record: dict[str, Any] = {"epoch": epoch, "step": self.global_step}
        record.update(self.stats.compute())
        val_time = None
        if self.val_split is not None:
            t_val = time.perf_counter()
            record.update({f"val_{k}": v for k, v in self.validate().items()})
            val_time = time.perf_counter() - t_val
        record["lr"] = opt.param_groups[0]["lr"]
        record["time_s"] = round(train_time, 4)
        if val_time is not None:
            record["val_time_s"] = round(val_time, 4)  # validation, apart from time_s (the steps)
        if probe is not None and probe.unreported_compile_s is not None:
            record["compile_s"] = round(probe.unreported_compile_s, 3)  # the first compiled step's extra time, in time_s
            probe.unreported_compile_s = None
        record["samples_per_s"] = round(sum(self.stats.sizes[skip:]) / max(train_time, 1e-9), 1)
        self.epoch = epoch
        return record

    def _check_finite(self, losses: "torch.Tensor", epoch: int, first: int, spe: int) -> None:
        if self.world == 1:
            check_finite_or_raise(losses, epoch, first, spe)
            return
        import torch

        from .distributed import any_rank

        bad = not bool(torch.isfinite(losses).all())
        if any_rank(bad):  # every rank stops together (or the others would wait forever)
            if bad:
                check_finite_or_raise(losses, epoch, first, spe)
            raise TrainingError(f"the loss became non-finite on another rank during epoch {epoch}",
                                hint="lower optimizer.lr or add grad_clip; checkpoints/last holds the last good epoch")

    def _saved_this_epoch(self) -> bool:
        every = self.spec.checkpoint_every
        return bool(every) and self.epoch % every == 0

    def _optimizer_step(self, epoch: int) -> None:
        """The non-plain optimizer step: per-step rate, unscale + clip, scaler-aware step."""
        import torch

        opt, scaler, clip = self.optimizer, self.scaler, self.spec.grad_clip
        if self.schedule.per_step:
            set_lr(opt, self.schedule.lr(self.opt_step, epoch - 1))
        if clip is not None:
            if scaler is not None:
                scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"]]
            if clip.value is not None:
                torch.nn.utils.clip_grad_value_(params, clip.value)
            if clip.max_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, clip.max_norm, norm_type=clip.norm_type)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        self.opt_step += 1

    def compile_now(self) -> None:
        """Wrap the model in torch.compile from the next step on (compile: auto decided it pays)."""
        import torch

        self.forward = torch.compile(self.eager_forward)

    def _resume_compile(self, saved: str | None) -> None:
        """A resumed run keeps what compile: auto decided before (the same program, so the same numbers)."""
        if self.speed.compile != "auto" or saved not in ("on", "off"):
            return
        self._probe = None
        self.speed.compile = saved
        self.speed.why["compile"] = "compile: auto, as decided before the resume"
        if saved == "on":
            self.compile_now()

    def compile_decided(self, message: str) -> None:
        """Tell the callbacks and environment.json what compile: auto decided (or measured)."""
        if self.rank != 0:
            return
        if self.run is not None:
            self._write_environment()
        for cb in self.callbacks:
            cb.on_note(message)

    def _write_environment(self) -> None:
        self.run.write_json(ENV, environment(self.device, self.spec.precision, self.speed))

    def validate(self) -> dict[str, float]:
        """Loss and metrics over the validation split (eval mode, no gradients)."""
        from .evaluate import evaluate_split

        # The eager module, on every rank (each validates the whole split itself): compiling the eval-mode
        # graph would cost a second compile for a few percent of the epoch.
        return evaluate_split(self.model, self.val_split, self.val_stats, self.loss_fn, self.eval_batch_size,
                              self.autocast if self.amp else None, self.speed.inference_mode, seed=self.seed)

    def _end_epoch(self, record: dict[str, Any]) -> bool:
        """Best/early-stopping bookkeeping, schedule, metrics line, checkpoints. True: stop early."""
        es = self.spec.early_stopping
        value = record.get(self.monitor)
        improved = False
        if isinstance(value, float) and math.isfinite(value):
            best = self.best_value
            improved = best is None or (value < best - es.min_delta if self.mode == "min" else value > best + es.min_delta)
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
            self._save_best(record)
        else:
            self.bad_epochs += 1
        self.schedule.epoch_end(record)
        self.history.append(record)
        if self.run is not None and self.rank == 0:
            self.run.append_metrics(record)
        every = self.spec.checkpoint_every
        if every and self.epoch % every == 0:
            self._save_last()
        for cb in self.callbacks:
            cb.on_epoch_end(record, improved)
        return es.patience is not None and self.bad_epochs >= es.patience

    def _finish(self, status: str, message: str | None) -> TrainResult:
        best = next((r for r in self.history if r["epoch"] == self.best_epoch), None)
        result = TrainResult(status=status, run_dir=self.run.path if self.run else None, epochs_run=self.epoch,
                             best_epoch=self.best_epoch, monitor=self.monitor, best=best,
                             last=self.history[-1] if self.history else None, history=list(self.history),
                             time_s=self.elapsed, message=message, model=self.model)
        if self.run is not None and self.rank == 0:
            final = {"final": True, **result.to_dict()}
            final.pop("run_dir")
            self.run.append_metrics(final)
            self.run.update_run(status=status, epochs_run=self.epoch, best_epoch=self.best_epoch, monitor=self.monitor,
                                best=best, message=message)
            if self.spec.plots and self.history:
                from .plots import start_plots

                result.plot_process = start_plots(self.run)
        for cb in self.callbacks:
            cb.on_end(result)
        return result

def _shard(batches: Iterator[tuple[Any, "torch.Tensor"]], rank: int, world: int,
           steps: int) -> Iterator[tuple[Any, "torch.Tensor"]]:
    """Each rank's contiguous slice of each of the first ``steps`` global batches (data-parallel training)."""
    for _, (x, y) in zip(range(steps), batches):
        n = y.shape[0]
        per = -(-n // world)
        sl = slice(rank * per, min(n, (rank + 1) * per))
        yield ({k: v[sl] for k, v in x.items()} if isinstance(x, dict) else x[sl]), y[sl]
