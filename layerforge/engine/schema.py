"""Schema of the spec's ``train:`` section (torch-free).

Every field has a description (it feeds ``layerforge schema`` and docs/training.md). Names of
optimizers, schedules, losses and metrics are checked here with a did-you-mean hint, so a typo is a
located SpecError before any weight exists.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, \
    field_validator, model_validator

from ..runtime import FUSED_OPTIMIZERS
from ..text import close_matches, suggest

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "step", "cosine", "one_cycle", "warmup_linear", "reduce_on_plateau")
LOSSES = ("cross_entropy", "bce", "mse", "mae", "huber")
METRICS = ("accuracy", "top_k", "precision", "recall", "f1", "mae", "rmse", "r2", "perplexity")
PRECISIONS = ("fp32", "bf16", "fp16")
LOGGERS = ("tensorboard", "csv")


def _name_check(kind: str, choices: tuple[str, ...], aliases: dict[str, str] | None = None):
    """A BeforeValidator: lower-case the name, map aliases, refuse unknown names with did-you-mean."""

    def check(v: Any) -> Any:
        if not isinstance(v, str):
            return v  # let pydantic's own type error speak
        name = v.strip().lower().replace("-", "_")
        name = (aliases or {}).get(name, name)
        if name not in choices:
            close = close_matches(name, list(choices) + list(aliases or {}), n=5)
            names = list(dict.fromkeys((aliases or {}).get(c, c) for c in close))[:3]
            hint = ("did you mean " + " or ".join(f"'{c}'" for c in names) + "?") if names else None
            raise ValueError(f"unknown {kind} '{v}'" + (f"; {hint}" if hint else "") + f" (known: {', '.join(choices)})")
        return name

    return BeforeValidator(check)


OptimizerName = Annotated[str, _name_check("optimizer", OPTIMIZERS)]
ScheduleName = Annotated[str, _name_check("schedule", SCHEDULES, {"constant": "none", "cosine_annealing": "cosine",
                                                                     "onecycle": "one_cycle", "plateau": "reduce_on_plateau",
                                                                     "linear": "warmup_linear"})]
LossName = Annotated[str, _name_check("loss", LOSSES, {"crossentropy": "cross_entropy", "ce": "cross_entropy",
                                                        "categorical_crossentropy": "cross_entropy",
                                                        "sparse_categorical_crossentropy": "cross_entropy",
                                                        "binary_crossentropy": "bce", "mean_squared_error": "mse",
                                                        "l2": "mse", "mean_absolute_error": "mae", "l1": "mae",
                                                        "smooth_l1": "huber"})]

LoggerName = Annotated[str, _name_check("logger", LOGGERS, {"tb": "tensorboard", "tensorboardx": "tensorboard"})]


def _metric_check(v: Any) -> Any:
    """Metric names: ``accuracy``, ``top_5`` / ``top_k`` (k = 5 by default), ``f1`` ... (did-you-mean on typos)."""
    if not isinstance(v, str):
        return v
    name = v.strip().lower().replace("-", "_")
    name = {"acc": "accuracy", "f1_macro": "f1", "precision_macro": "precision", "recall_macro": "recall",
            "ppl": "perplexity", "top_k_accuracy": "top_k"}.get(name, name)
    if name.startswith("top_") and name[4:].isdigit() and int(name[4:]) >= 1:
        return name
    if name not in METRICS:
        hint = suggest(name, METRICS)
        raise ValueError(f"unknown metric '{v}'" + (f"; {hint}" if hint else "") + f" (known: {', '.join(METRICS)}, top_<k>)")
    return "top_5" if name == "top_k" else name


MetricName = Annotated[str, BeforeValidator(_metric_check)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimizerSpec(_Section):
    """The optimizer and its hyper-parameters (PyTorch's defaults where not given)."""

    name: OptimizerName = Field(default="adam", description="sgd, adam, adamw or rmsprop.")
    lr: PositiveFloat = Field(default=1e-3, description="Learning rate (the peak rate when a schedule varies it).")
    weight_decay: NonNegativeFloat = Field(
        default=0.0, description="L2 penalty (decoupled for adamw, whose default is 0.01 when not given).")
    momentum: NonNegativeFloat = Field(default=0.0, description="Momentum (sgd, rmsprop).")
    nesterov: bool = Field(default=False, description="Nesterov momentum (sgd; needs momentum > 0).")
    betas: tuple[float, float] = Field(default=(0.9, 0.999), description="Adam/AdamW coefficients for the running averages.")
    eps: PositiveFloat = Field(default=1e-8, description="Term added to the denominator for numerical stability (adam, adamw, rmsprop).")
    alpha: float = Field(default=0.99, gt=0, lt=1, description="RMSprop smoothing constant.")
    amsgrad: bool = Field(default=False, description="Use the AMSGrad variant (adam, adamw).")

    @model_validator(mode="before")
    @classmethod
    def _adamw_default_decay(cls, data: Any) -> Any:
        if isinstance(data, dict) and str(data.get("name", "")).lower() == "adamw" and "weight_decay" not in data:
            data = {**data, "weight_decay": 0.01}
        return data

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "OptimizerSpec":
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs name: sgd and momentum > 0 (e.g. momentum: 0.9)")
        for b in self.betas:
            if not 0 <= b < 1:
                raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")
        return self


class ScheduleSpec(_Section):
    """How the learning rate changes during training; ``warmup_*`` ramps it linearly from 0 first."""

    name: ScheduleName = Field(default="none", description="none, step, cosine, one_cycle, warmup_linear or reduce_on_plateau.")
    warmup_epochs: NonNegativeFloat = Field(default=0, description="Linear warm-up length in epochs (may be fractional).")
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up length in optimizer steps (added to warmup_epochs).")
    step_size: PositiveInt = Field(default=10, description="step: multiply the rate by gamma every step_size epochs.")
    gamma: float = Field(default=0.1, gt=0, description="step: the factor applied every step_size epochs.")
    min_lr: NonNegativeFloat = Field(default=0.0, description="cosine / reduce_on_plateau: the lowest rate.")
    max_lr: PositiveFloat | None = Field(default=None, description="one_cycle: the peak rate (default: optimizer.lr).")
    pct_start: float = Field(default=0.3, gt=0, lt=1, description="one_cycle: fraction of training spent increasing the rate.")
    div_factor: PositiveFloat = Field(default=25.0, description="one_cycle: initial rate = max_lr / div_factor.")
    final_div_factor: PositiveFloat = Field(default=1e4, description="one_cycle: final rate = initial rate / final_div_factor.")
    factor: float = Field(default=0.1, gt=0, lt=1, description="reduce_on_plateau: multiply the rate by this on a plateau.")
    patience: int = Field(default=5, ge=0, description="reduce_on_plateau: epochs without improvement before reducing.")
    threshold: NonNegativeFloat = Field(default=1e-4, description="reduce_on_plateau: relative change that counts as an improvement.")
    monitor: str | None = Field(default=None, description="reduce_on_plateau: metric to watch (default: early_stopping.monitor).")
    mode: Literal["auto", "min", "max"] = Field(default="auto", description="reduce_on_plateau: whether lower or higher is better.")


class LossSpec(_Section):
    """The loss; by default chosen from the task (cross_entropy for classes, mse for real targets)."""

    name: LossName = Field(description="cross_entropy, bce, mse, mae or huber.")
    label_smoothing: float = Field(default=0.0, ge=0, lt=1, description="cross_entropy: mix the one-hot target with the uniform distribution.")
    class_weights: list[NonNegativeFloat] | None = Field(default=None, description="cross_entropy: a weight per class (rarer classes weigh more).")
    pos_weight: PositiveFloat | None = Field(default=None, description="bce: weight of positive examples.")
    delta: PositiveFloat = Field(default=1.0, description="huber: where the loss turns from quadratic to linear.")


def _also(schema: dict[str, Any], alternative: dict[str, Any]) -> None:
    """JSON Schema: also accept the short form (a loss name, a clipping norm) that a validator expands."""
    schema.setdefault("anyOf", []).insert(0, alternative)


def _one_or_list(schema: dict[str, Any], item: dict[str, Any]) -> None:
    """JSON Schema: one item, or a list of them (``log: csv`` or ``log: [csv, tensorboard]``)."""
    schema.pop("type", None)
    schema.pop("items", None)
    schema["anyOf"] = [item, {"type": "array", "items": item}]


def _loss_from_name(v: Any) -> Any:
    return {"name": v} if isinstance(v, str) else v


class GradClipSpec(_Section):
    """Gradient clipping: a global norm limit, or an elementwise value limit."""

    max_norm: PositiveFloat | None = Field(default=None, description="Rescale gradients whose global norm exceeds this.")
    norm_type: PositiveFloat = Field(default=2.0, description="The p of the p-norm used by max_norm.")
    value: PositiveFloat | None = Field(default=None, description="Clamp every gradient element to [-value, value].")

    @model_validator(mode="after")
    def _one(self) -> "GradClipSpec":
        if self.max_norm is None and self.value is None:
            raise ValueError("give max_norm or value (or write grad_clip: 1.0 for a norm limit)")
        return self


class EarlyStoppingSpec(_Section):
    """What "best" means (the best checkpoint, early stopping, restoring the best weights)."""

    monitor: str = Field(default="auto", description="Metric to watch, e.g. val_loss, val_accuracy, loss (auto: val_loss, or loss without a validation split).")
    mode: Literal["auto", "min", "max"] = Field(default="auto", description="Whether lower or higher is better (auto: from the metric's name).")
    patience: int | None = Field(default=None, ge=1, description="Stop after this many epochs without improvement (none: never stop early).")
    min_delta: NonNegativeFloat = Field(default=0.0, description="The smallest change that counts as an improvement.")
    restore_best: bool = Field(default=False, description="At the end, put the best epoch's weights back into the model.")


def _auto_bool(v: Any) -> Any:
    """``auto``, ``true`` or ``false`` (also ``on``/``off``)."""
    if isinstance(v, bool):
        return v
    value = {"auto": "auto", "true": True, "on": True, "false": False, "off": False}.get(str(v).strip().lower())
    if value is None:
        raise ValueError(f"expected auto, true or false, got {v!r}")
    return value


AutoBool = Annotated[Literal["auto"] | bool, BeforeValidator(_auto_bool)]
FAST_SWITCHES = ("fused_optimizer", "channels_last", "tf32", "cudnn_benchmark", "pin_memory")


class FastSpec(_Section):
    """Speed-ups chosen per device (docs/benchmarks.md measures each). ``auto``: used where it is measured
    to pay, on the device it pays on; ``true``: used wherever it applies; ``false``: off. ``fast: false``
    turns every one off. None changes results beyond floating-point rounding; ``deterministic: true`` turns
    off those that make a run unrepeatable (tf32, cudnn_benchmark, compile: auto)."""

    fused_optimizer: AutoBool = Field(
        default="auto", description="One fused kernel per optimizer step (adam, adamw, sgd; CPU and CUDA); "
                                    "auto also uses the multi-tensor (foreach) step for rmsprop on CUDA.")
    channels_last: AutoBool = Field(
        default="auto", description="Channels-last memory format for models with 2-D convolutions "
                                    "(auto: on for them on CPU and CUDA; measured in docs/benchmarks.md).")
    tf32: AutoBool = Field(
        default="auto", description="CUDA: fp32 matmuls and convolutions on TF32 tensor cores "
                                    "(auto: on, unless deterministic).")
    cudnn_benchmark: AutoBool = Field(
        default="auto", description="CUDA: let cuDNN time its algorithms for each input shape "
                                    "(auto: on, unless deterministic).")
    pin_memory: AutoBool = Field(
        default="auto", description="CUDA: copy data to the GPU from page-locked memory, without waiting "
                                    "(non_blocking).")
    inference_mode: bool = Field(
        default=True, description="Validation, evaluate and predict run under torch.inference_mode "
                                  "(false: torch.no_grad, for a layer that keeps tensors made there for training).")


def _fast_shorthand(v: Any) -> Any:
    """``fast: false`` (or ``true``): every switch off (or on)."""
    if isinstance(v, bool):
        return {**{k: v for k in FAST_SWITCHES}, "inference_mode": v}
    return v


class TrainSpec(_Section):
    """How the model is trained (see docs/training.md)."""

    epochs: PositiveInt = Field(default=10, description="Number of passes over the training split.")
    batch_size: PositiveInt = Field(default=32, description="Samples per batch (per optimizer step, before accumulation).")
    eval_batch_size: PositiveInt | None = Field(default=None, description="Batch size for validation/evaluation (default: 4 × batch_size).")
    shuffle: bool = Field(default=True, description="Reshuffle the training split every epoch (by the spec's seed).")
    drop_last: bool = Field(default=False, description="Drop the last incomplete training batch of each epoch.")
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec, description="Optimizer and its hyper-parameters.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="Learning-rate schedule.")
    loss: Annotated[LossSpec | None, BeforeValidator(_loss_from_name)] = Field(
        default=None, description="Loss name or mapping (default: from the task: cross_entropy or mse).",
        json_schema_extra=lambda s: _also(s, {"type": "string", "enum": list(LOSSES)}))
    metrics: list[MetricName] | None = Field(default=None, description="Metrics to report (default: from the task).")
    grad_clip: Annotated[GradClipSpec | None, BeforeValidator(lambda v: {"max_norm": v} if isinstance(v, (int, float)) and not isinstance(v, bool) else v)] = Field(
        default=None, description="Gradient clipping: a number (max global norm) or {max_norm, norm_type} / {value}.",
        json_schema_extra=lambda s: _also(s, {"type": "number", "exclusiveMinimum": 0}))
    grad_accumulation: PositiveInt = Field(default=1, description="Accumulate gradients over this many batches per optimizer step.")
    early_stopping: EarlyStoppingSpec = Field(default_factory=EarlyStoppingSpec, description="Monitor, best checkpoint and early stopping.")
    device: str = Field(default="auto", description="auto (cuda if available, else cpu), cpu, cuda or cuda:N.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(default="fp32", description="fp32; bf16 autocast (CPU or CUDA); fp16 autocast with a gradient scaler (CUDA only).")
    compile: AutoBool = Field(
        default="auto", description="torch.compile the model. auto: only when the run is long enough for the "
                                    "compile time to pay back (decided from its first timed steps; never under "
                                    "deterministic).")
    fast: Annotated[FastSpec, BeforeValidator(_fast_shorthand)] = Field(
        default_factory=FastSpec, description="Speed-ups chosen per device, each switchable (false: all off).",
        json_schema_extra=lambda s: _also(s, {"type": "boolean"}))
    deterministic: bool = Field(
        default=False, description="Repeat bit for bit: deterministic algorithms only, and the speed-ups that vary "
                                   "from run to run off (tf32, cudnn_benchmark, compile: auto).")
    threads: PositiveInt | None = Field(default=None, le=1024, description="CPU threads for torch (default: torch's choice).")
    checkpoint_every: int = Field(default=1, ge=0, description="Write checkpoints/last every N epochs (0: only at the end).")
    out: str = Field(default="runs", description="Root folder of run directories: <out>/<name>/<timestamp>/.")
    plots: bool = Field(default=True, description="Write loss/metric curves as PNG at the end of the run.")
    log: Annotated[list[LoggerName], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = Field(
        default_factory=list, description="Experiment logs in the run directory: tensorboard (event files through "
        "tensorboardX, the logs extra) and/or csv (metrics.csv).",
        json_schema_extra=lambda s: _one_or_list(s, {"type": "string", "enum": list(LOGGERS)}))

    @model_validator(mode="after")
    def _fast_agrees(self) -> "TrainSpec":
        if self.fast.fused_optimizer is True and self.optimizer.name not in FUSED_OPTIMIZERS:
            raise ValueError(f"fast.fused_optimizer: true, but torch has no fused {self.optimizer.name} "
                             f"(fused: {', '.join(FUSED_OPTIMIZERS)}); use auto or false")
        if self.deterministic:
            clash = [k for k in ("tf32", "cudnn_benchmark") if getattr(self.fast, k) is True]
            if clash:
                raise ValueError(f"deterministic: true turns off fast.{clash[0]}, which is set to true; "
                                 "remove one of the two")
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        d = v.strip().lower()
        if d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit()):
            return d
        hint = suggest(d, ["auto", "cpu", "cuda"])
        raise ValueError(f"unknown device '{v}'" + (f"; {hint}" if hint else "") + " (auto, cpu, cuda or cuda:N)")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v: Any) -> Any:
        aliases = {"float32": "fp32", "32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "16": "fp16"}
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            s = str(v).strip().lower()
            s = aliases.get(s, s)
            if s not in PRECISIONS:
                hint = suggest(s, PRECISIONS)
                raise ValueError(f"unknown precision '{v}'" + (f"; {hint}" if hint else "") + " (fp32, bf16 or fp16)")
            return s
        return v
