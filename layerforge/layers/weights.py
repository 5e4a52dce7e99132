"""Weight options of the layers that have weights: Keras' initializers and regularizers.

A layer type with weights mixes in one of the option classes below, which adds the Keras-named fields
(``kernel_initializer``, ``bias_initializer``, ``kernel_regularizer``, ... ; ``embeddings_*`` for an
embedding, ``recurrent_*`` for the recurrent types, ``depthwise_*``/``pointwise_*`` for the depthwise
convolutions, ``gamma_*``/``beta_*`` for the norms, ``alpha_*`` for prelu) and says which of its module's
tensors play which *role*: :meth:`WeightOptions.weight_refs`.
Everything else is generic: :func:`initialize` draws the tensors of the roles that name an initializer
(after torch's own initialisation, so a layer without the option keeps PyTorch's default weights), and
:func:`regularized` lists the tensors a regularizer adds to the training loss.

Fans follow Keras' VarianceScaling on Keras' kernel layout: for a dense or convolution kernel
fan_in = input channels (÷ groups) × receptive field and fan_out = output channels × receptive field,
which is also torch's ``nn.init._calculate_fan_in_and_fan_out`` on torch's weight; two layouts differ and
get Keras' fans explicitly: an embedding table (V, D) (fan_in = V, fan_out = D) and a depthwise kernel
(C, M per input channel: fan_in = C·k, fan_out = M·k). Keras 3.15's multi-head attention kernels
(EinsumDense, shape (D, h, d)) take fan_in = D and fan_out = h·d from the einsum's input/output axes, which is
again torch's Linear weight (h·d, D). A norm's γ/β and a bias are 1-D: fan = length. A PReLU α gets Keras'
``compute_fans`` on its own shape (:func:`keras_fans`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, model_validator

from .registry import LayerSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

InitName = Literal[
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "orthogonal",
    "zeros", "ones", "constant", "random_normal", "random_uniform", "truncated_normal", "identity", "variance_scaling",
]
# The arguments each initializer takes, with Keras 3's defaults.
INIT_ARGS: dict[str, dict[str, object]] = {
    "random_normal": {"mean": 0.0, "stddev": 0.05},
    "truncated_normal": {"mean": 0.0, "stddev": 0.05},
    "random_uniform": {"minval": -0.05, "maxval": 0.05},
    "constant": {"value": 0.0},
    "orthogonal": {"gain": 1.0},
    "identity": {"gain": 1.0},
    "variance_scaling": {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"},
}
# Variance scaling presets: (scale, mode, distribution).
SCALING: dict[str, tuple[float, str, str]] = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"), "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"), "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"), "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}
TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated at ±2 (Keras divides by it)
MAX_ARG = 1e6  # an initializer argument beyond this is a typo, not a weight (and torch's uniform_ overflows)


class Initializer(BaseModel):
    """An initializer with arguments, e.g. ``{name: random_normal, stddev: 0.01}`` (a bare name: Keras' defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: InitName = Field(description="Keras initializer name.")
    mean: float | None = Field(default=None, description="random_normal, truncated_normal: the mean (0).")
    stddev: float | None = Field(default=None, gt=0, description="random_normal, truncated_normal: the standard "
                                 "deviation before truncation (0.05).")
    minval: float | None = Field(default=None, description="random_uniform: the lower bound (-0.05).")
    maxval: float | None = Field(default=None, description="random_uniform: the upper bound (0.05).")
    value: float | None = Field(default=None, description="constant: the value (0).")
    gain: float | None = Field(default=None, description="orthogonal, identity: the multiplier (1).")
    scale: float | None = Field(default=None, gt=0, description="variance_scaling: the scale (1).")
    mode: Literal["fan_in", "fan_out", "fan_avg"] | None = Field(default=None, description="variance_scaling: "
                                                                   "which fan (fan_in).")
    distribution: Literal["truncated_normal", "untruncated_normal", "uniform"] | None = Field(
        default=None, description="variance_scaling: the distribution (truncated_normal).")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "enum": list(get_args(InitName))}, handler(core_schema)]}

    @model_validator(mode="after")
    def _only_its_arguments(self) -> "Initializer":
        takes = INIT_ARGS.get(self.name, {})
        given = [k for k in type(self).model_fields if k != "name" and getattr(self, k) is not None]
        for k in given:
            v = getattr(self, k)
            if isinstance(v, float) and not (math.isfinite(v) and abs(v) <= MAX_ARG):
                raise ValueError(f"{k} must be a finite number within ±{MAX_ARG:g}, got {v}")
        wrong = [k for k in given if k not in takes]
        if wrong:
            allowed = f"takes {', '.join(takes)}" if takes else "takes no arguments"
            raise ValueError(f"{self.name} {allowed}, got {', '.join(wrong)}")
        if self.name == "random_uniform" and self.arg("minval") >= self.arg("maxval"):
            raise ValueError(f"random_uniform needs minval < maxval, got {self.arg('minval')} and {self.arg('maxval')}")
        return self

    def arg(self, key: str) -> object:
        value = getattr(self, key)
        return INIT_ARGS[self.name][key] if value is None else value


class Regularizer(BaseModel):
    """A weight penalty added to the training loss, Keras' semantics: l1·Σ|w| + l2·Σw² (no ½)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    l1: NonNegativeFloat = Field(default=0.0, allow_inf_nan=False, description="Factor of Σ|w|.")
    l2: NonNegativeFloat = Field(default=0.0, allow_inf_nan=False, description="Factor of Σw² (Keras: no ½).")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        """A bare ``l1`` / ``l2`` is Keras' default factor 0.01."""
        if data in ("l1", "l2"):
            return {data: 0.01}
        if isinstance(data, str):
            raise ValueError(f"unknown regularizer '{data}': give l1, l2 or {{l1: a, l2: b}}")
        return data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "enum": ["l1", "l2"]}, handler(core_schema)]}


InitOption = Optional[Initializer]
RegOption = Optional[Regularizer]


def _init_field(role: str, keras_default: str) -> object:
    return Field(default=None, description=f"Initializer of the {role} tensor(s): a Keras name (glorot_uniform, "
                 f"he_normal, orthogonal, zeros, ...) or {{name: ..., args}}; default: PyTorch's initialisation "
                 f"(Keras': {keras_default}). docs/transfer.md#initializers")


def _reg_field(role: str) -> object:
    return Field(default=None, description=f"Penalty on the {role} tensor(s) added to the loss: {{l1: a, l2: b}} "
                 "(a·Σ|w| + b·Σw²) or l1 / l2 (0.01). docs/transfer.md#regularizers")


@dataclass(frozen=True)
class WeightRef:
    """One tensor of a built layer module with its role. ``fans``: Keras' (fan_in, fan_out) where they
    differ from torch's for this layout; ``zero_with_init``: a second bias torch has and Keras not
    (a recurrent b_hh), set to zero when the role's initializer is given so b_ih + b_hh is Keras' bias."""

    role: str
    path: str  # parameter (or buffer: batchnorm's moving statistics) name inside the layer's module
    fans: tuple[int, int] | None = None
    zero_with_init: bool = False


class WeightOptions(LayerSpec):
    """Base of the option mixins: ``roles`` names the roles; each has ``<role>_initializer`` and
    ``<role>_regularizer`` fields."""

    roles: ClassVar[tuple[str, ...]] = ()
    matrix_roles: ClassVar[tuple[str, ...]] = ()  # roles whose tensors are 2-D (where identity applies)

    @model_validator(mode="after")
    def _identity_needs_a_matrix(self) -> "WeightOptions":
        for role in self.roles:
            init = getattr(self, f"{role}_initializer")
            if init is not None and init.name == "identity" and role not in self.matrix_roles:
                raise ValueError(f"{role}_initializer: identity needs a 2-D tensor, and this layer's {role} is not "
                                 "one (Keras refuses it too); use orthogonal or a variance-scaling initializer")
        return self

    def after_init(self, module: "nn.Module") -> None:
        """Adjust after the initializers ran (LSTM's unit_forget_bias over a bias_initializer); default none."""

    def weight_refs(self, module: "nn.Module") -> list[WeightRef]:
        """The module's tensors by role (default: every Linear/conv weight is the kernel, its bias the bias)."""
        from torch import nn

        refs = []
        for prefix, m in module.named_modules():
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
                dot = f"{prefix}." if prefix else ""
                refs.append(WeightRef("kernel", dot + "weight"))
                if m.bias is not None:
                    refs.append(WeightRef("bias", dot + "bias"))
        return refs


class KernelOptions(WeightOptions):
    """kernel + bias (dense, conv1d/2d, transposed convolutions)."""

    roles: ClassVar[tuple[str, ...]] = ("kernel", "bias")
    kernel_initializer: InitOption = _init_field("kernel", "glorot_uniform")
    bias_initializer: InitOption = _init_field("bias", "zeros")
    kernel_regularizer: RegOption = _reg_field("kernel")
    bias_regularizer: RegOption = _reg_field("bias")


class DepthwiseOptions(WeightOptions):
    """depthwise kernel + bias (depthwise_conv2d), Keras' DepthwiseConv2D names and fans."""

    roles: ClassVar[tuple[str, ...]] = ("depthwise", "bias")
    depthwise_initializer: InitOption = _init_field("depthwise kernel", "glorot_uniform")
    bias_initializer: InitOption = _init_field("bias", "zeros")
    depthwise_regularizer: RegOption = _reg_field("depthwise kernel")
    bias_regularizer: RegOption = _reg_field("bias")

    def weight_refs(self, module: "nn.Module") -> list[WeightRef]:
        return [depthwise_ref(r, module) if r.role == "kernel" else r for r in super().weight_refs(module)]


class SeparableOptions(WeightOptions):
    """depthwise + pointwise kernels + bias (separable_conv2d), Keras' SeparableConv2D names."""

    roles: ClassVar[tuple[str, ...]] = ("depthwise", "pointwise", "bias")
    depthwise_initializer: InitOption = _init_field("depthwise kernel", "glorot_uniform")
    pointwise_initializer: InitOption = _init_field("pointwise (1×1) kernel", "glorot_uniform")
    bias_initializer: InitOption = _init_field("bias", "zeros")
    depthwise_regularizer: RegOption = _reg_field("depthwise kernel")
    pointwise_regularizer: RegOption = _reg_field("pointwise (1×1) kernel")
    bias_regularizer: RegOption = _reg_field("bias")

    def weight_refs(self, module: "nn.Module") -> list[WeightRef]:
        refs = super().weight_refs(module)
        first, second = [r for r in refs if r.role == "kernel"]
        return [depthwise_ref(first, module), WeightRef("pointwise", second.path), *(r for r in refs if r.role == "bias")]


def depthwise_ref(ref: WeightRef, module: "nn.Module") -> WeightRef:
    """A depthwise kernel (C·M, 1, k_h, k_w) with Keras' fans: fan_in = C·k_h·k_w, fan_out = M·k_h·k_w."""
    w = module.get_parameter(ref.path)
    conv = module.get_submodule(ref.path.rpartition(".")[0]) if "." in ref.path else module
    k = w[0, 0].numel()
    c = conv.groups
    return WeightRef("depthwise", ref.path, (c * k, w.shape[0] // c * k))


class EmbeddingOptions(WeightOptions):
    """The embedding table (Keras' ``embeddings_*`` names; fans from its (V, D) layout)."""

    roles: ClassVar[tuple[str, ...]] = ("embeddings",)
    matrix_roles: ClassVar[tuple[str, ...]] = ("embeddings",)
    embeddings_initializer: InitOption = _init_field("embedding table", "random_uniform(-0.05, 0.05)")
    embeddings_regularizer: RegOption = _reg_field("embedding table")

    def weight_refs(self, module: "nn.Module") -> list[WeightRef]:
        v, d = module.weight.shape
        return [WeightRef("embeddings", "weight", (v, d))]


class RecurrentOptions(WeightOptions):
    """Input kernels W_ih, recurrent kernels W_hh, biases (simple_rnn, lstm, gru). Keras has one bias per
    cell where torch has b_ih and b_hh (GRU with reset_after: two, as torch): with a bias_initializer b_ih
    takes it and b_hh starts at zero, so their sum is Keras' bias; a regularizer applies to both."""

    roles: ClassVar[tuple[str, ...]] = ("kernel", "recurrent", "bias")
    matrix_roles: ClassVar[tuple[str, ...]] = ("kernel", "recurrent")
    kernel_initializer: InitOption = _init_field("input kernels W_ih", "glorot_uniform")
    recurrent_initializer: InitOption = _init_field("recurrent kernels W_hh", "orthogonal")
    bias_initializer: InitOption = _init_field("bias", "zeros")
    kernel_regularizer: RegOption = _reg_field("input kernels W_ih")
    recurrent_regularizer: RegOption = _reg_field("recurrent kernels W_hh")
    bias_regularizer: RegOption = _reg_field("bias")

    def weight_refs(self, module: "nn.Module") -> list[WeightRef]:
        refs = []
        for name, _ in module.named_parameters():
            last = name.rpartition(".")[2]
            if last.startswith("weight_ih"):
                refs.append(WeightRef("kernel", name))
            elif last.startswith("weight_hh"):
                refs.append(WeightRef("recurrent", name))
            elif last.startswith("bias_"):
                second = last.startswith("bias_hh") and not getattr(self, "reset_after", False)
                refs.append(WeightRef("bias", name, zero_with_init=second))
        return refs


class GammaOptions(WeightOptions):
    """A norm's scale γ (``weight``; rms_norm), Keras' ``gamma_*`` names. γ exists only with ``scale: true``,
    so an option on it without the tensor is refused rather than ignored."""

    roles: ClassVar[tuple[str, ...]] = ("gamma",)
    gamma_initializer: InitOption = _init_field("scale γ", "ones")
    gamma_regularizer: RegOption = _reg_field("scale γ")

    @model_validator(mode="after")
    def _options_need_their_tensor(self) -> "GammaOptions":
        for role, flag in (("gamma", "scale"), ("beta", "center")):
            given = [f"{role}_{k}" for k in ("initializer", "regularizer") if getattr(self, f"{role}_{k}", None)]
            if given and not getattr(self, flag):
                raise ValueError(f"{' and '.join(given)} need{'s' * (len(given) == 1)} {flag}: true (with {flag}: "
                                 f"false the layer has no {role})")
        return self

    def weight_refs(self, module: "nn.Module") -> list[WeightRef]:
        return [WeightRef(role, name) for role, name in (("gamma", "weight"), ("beta", "bias"))
                if role in self.roles and getattr(module, name, None) is not None]


class NormOptions(GammaOptions):
    """γ and the shift β (``bias``): layernorm, group_norm, Keras' LayerNormalization/GroupNormalization names."""

    roles: ClassVar[tuple[str, ...]] = ("gamma", "beta")
    beta_initializer: InitOption = _init_field("shift β", "zeros")
    beta_regularizer: RegOption = _reg_field("shift β")


class BatchNormOptions(NormOptions):
    """γ, β and the moving statistics (buffers: an initializer, no regularizer), Keras' BatchNormalization names."""

    roles: ClassVar[tuple[str, ...]] = ("gamma", "beta", "moving_mean", "moving_variance")
    moving_mean_initializer: InitOption = Field(default=None, description="Initializer of the moving mean (a "
                                                "buffer, not trained); default zeros (PyTorch and Keras). "
                                                "docs/transfer.md#initializers")
    moving_variance_initializer: InitOption = Field(default=None, description="Initializer of the moving variance "
                                                    "(a buffer, not trained); default ones (PyTorch and Keras). "
                                                    "docs/transfer.md#initializers")

    def weight_refs(self, module: "nn.Module") -> list[WeightRef]:
        return [*super().weight_refs(module), WeightRef("moving_mean", "running_mean"),
                WeightRef("moving_variance", "running_var")]


class AlphaOptions(WeightOptions):
    """PReLU's learned slopes α (``weight``), Keras' ``alpha_*`` names and fans on α's shape."""

    roles: ClassVar[tuple[str, ...]] = ("alpha",)
    alpha_initializer: InitOption = Field(default=None, description="Initializer of the slopes α, replacing "
                                          "alpha_init: a Keras name or {name: ..., args} (Keras' default: zeros). "
                                          "docs/transfer.md#initializers")
    alpha_regularizer: RegOption = _reg_field("slopes α")

    def weight_refs(self, module: "nn.Module") -> list[WeightRef]:
        return [WeightRef("alpha", "weight", keras_fans(tuple(module.weight.shape)))]


# --- applying them -------------------------------------------------------------------------------
def tensor(module: "nn.Module", path: str) -> "torch.Tensor":
    """The parameter or buffer at ``path`` inside ``module``."""
    owner, _, name = path.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, name)


def keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras' ``compute_fans`` on a weight of this shape (no axes given): 1-D: its length twice; 2-D (in,
    out); more: the last two axes are (in, out), the leading ones a receptive field."""
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    rf = math.prod(shape[:-2])
    return shape[-2] * rf, shape[-1] * rf


def _fans(t: "torch.Tensor", fans: tuple[int, int] | None) -> tuple[int, int]:
    if fans is not None:
        return fans
    if t.dim() < 2:  # a bias: Keras uses its length as both fans
        return t.numel(), t.numel()
    rf = t[0][0].numel() if t.dim() > 2 else 1
    return t.shape[1] * rf, t.shape[0] * rf


def draw(t: "torch.Tensor", init: Initializer, fans: tuple[int, int] | None = None) -> None:
    """Fill ``t`` in place as Keras 3's initializer would (same distribution; torch's random stream)."""
    import torch
    from torch import nn

    name = init.name
    with torch.no_grad():
        if name in ("zeros", "ones", "constant"):
            t.fill_(init.arg("value") if name == "constant" else float(name == "ones"))  # type: ignore[arg-type]
        elif name == "random_normal":
            t.normal_(init.arg("mean"), init.arg("stddev"))  # type: ignore[arg-type]
        elif name == "truncated_normal":
            m, s = init.arg("mean"), init.arg("stddev")
            nn.init.trunc_normal_(t, m, s, m - 2 * s, m + 2 * s)  # type: ignore[operator]
        elif name == "random_uniform":
            t.uniform_(init.arg("minval"), init.arg("maxval"))  # type: ignore[arg-type]
        elif name == "orthogonal":
            nn.init.orthogonal_(t, gain=init.arg("gain"))  # type: ignore[arg-type]
        elif name == "identity":
            nn.init.eye_(t).mul_(init.arg("gain"))  # type: ignore[arg-type]
        else:
            scale, mode, dist = SCALING.get(name) or (init.arg("scale"), init.arg("mode"), init.arg("distribution"))
            fan_in, fan_out = _fans(t, fans)
            n = {"fan_in": fan_in, "fan_out": fan_out}.get(mode, (fan_in + fan_out) / 2)  # type: ignore[arg-type]
            var = scale / max(1.0, n)  # type: ignore[operator]
            if dist == "uniform":
                t.uniform_(-math.sqrt(3 * var), math.sqrt(3 * var))
            elif dist == "untruncated_normal":
                t.normal_(0.0, math.sqrt(var))
            else:
                s = math.sqrt(var) / TRUNC_STD
                nn.init.trunc_normal_(t, 0.0, s, -2 * s, 2 * s)


def initialize(layer: LayerSpec, module: "nn.Module") -> None:
    """Draw the tensors of every role whose initializer the spec names (nothing on the meta device)."""
    if not isinstance(layer, WeightOptions):
        return
    inits = {r: getattr(layer, f"{r}_initializer") for r in layer.roles}
    if not any(inits.values()):
        return
    for ref in layer.weight_refs(module):
        init, t = inits[ref.role], tensor(module, ref.path)
        if init is None or t.is_meta:
            continue
        draw(t, Initializer(name="zeros") if ref.zero_with_init else init, ref.fans)
    layer.after_init(module)


def finish(layer: LayerSpec, module: "nn.Module") -> "nn.Module":
    """Apply the options every layer shares to its freshly built module (``Node.build``, and a wrapper for the
    layer it wraps): the initializers, then ``trainable: false``, which turns off ``requires_grad`` and marks
    the running-statistics modules (batchnorm) ``frozen_stats``: the model keeps them in inference mode."""
    from torch.nn.modules.batchnorm import _NormBase

    initialize(layer, module)
    if not layer.trainable:
        module.requires_grad_(False)
        for m in module.modules():
            if isinstance(m, _NormBase) and m.track_running_stats:
                m.frozen_stats = True
    return module


def regularized(layer: LayerSpec, module: "nn.Module") -> list[tuple[str, Regularizer]]:
    """(parameter path inside the module, its regularizer) for every role that names one, on a trainable
    layer (Keras regularizes trainable weights only); a wrapper (``wraps``: the field holding the wrapped
    layer, also the wrapped module's attribute) lists its inner layer's."""
    if not layer.trainable:
        return []
    inner = type(layer).wraps
    if inner:
        return [(f"{inner}.{p}", r) for p, r in regularized(getattr(layer, inner), module.get_submodule(inner))]
    if not isinstance(layer, WeightOptions):
        return []
    regs = {r: getattr(layer, f"{r}_regularizer", None) for r in layer.roles}  # buffers' roles have none
    return [(ref.path, regs[ref.role]) for ref in layer.weight_refs(module) if regs[ref.role] is not None]
