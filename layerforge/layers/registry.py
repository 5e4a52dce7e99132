"""The layer registry: one decorated class per layer type, declaring everything about itself.

A layer type is a pydantic model of its parameters (unknown keys forbidden) with four methods:

- ``output_shape(in_shapes)`` — pure shape rule, used to validate a spec before any weight exists;
  raises :class:`~layerforge.errors.ShapeError` with the shape it needs.
- ``build(in_shapes)`` — an ``nn.Module`` whose ``forward`` takes one tensor per input.
- ``flops(in_shapes, out_shape)`` — exact forward FLOPs for ONE sample (a multiply-add counts 2);
  see docs/flops.md for the conventions. ``None`` means "cannot count" and is reported as uncounted.
- ``backward_flops(in_shapes, out_shape)`` — defaults to 2 × forward (grad w.r.t. input and weights).

Hooks with defaults: ``extra_outputs(in_shapes)`` (named extra outputs such as a recurrent layer's
states, read as ``layer:key``), ``id_range(i)`` (a layer reading integer ids), ``output_activation()`` (its final
nonlinearity), ``check_memory(in_shapes, limit)`` (memory kept for backward, checked against the
machine's), ``memory(in_shapes, out_shape)`` (the memory rule: by default derived by tracing the layer's
PyTorch ops on fake tensors, see :mod:`layerforge.analysis.estimate`), ``extra_info(in_shapes, out_shape)``
(optional facts ``inspect`` and ``profile`` show; default: none), and ``out_steps(steps)`` with the
``time_aware`` flag for time steps:

**Time steps** (spiking layers, :mod:`.spiking`). Between a ``spike_encode`` and its ``spike_readout`` a
tensor carries T steps folded into the batch, time-major ``(T·B, *shape)``, so per-sample shapes are
unchanged and every other layer works as it is. ``out_steps(steps)`` gives the output's T for an input
carrying ``steps`` (default: the same); the graph records both on each node (``Node.steps``,
``Node.out_steps``) and multiplies an ordinary layer's FLOPs and activations by T. A ``time_aware`` layer
(it unfolds the steps itself) takes ``steps=T`` in ``build``, ``flops`` and ``backward_flops`` and counts
all T steps; callers go through ``Node.build()``, ``Node.flops()`` and ``Node.backward_flops()``.

Shapes exclude the batch dimension and are channels-first: an image is ``(C, H, W)``, a sequence
``(T, F)``. The class docstring is the layer's documentation page (formula, parameters, shapes,
PyTorch/Keras equivalents, YAML example); ``summary`` is its one-line description.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..limits import MAX_SIZE
from ..text import suggest

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int, ...]

# `enc:h` reads layer enc's extra output h (``LayerSpec.extra_outputs``, e.g. a recurrent layer's
# return_state); '.' cannot serve: it names the layers of blocks (enc.0.attn), so ':' is refused in names.
OUTPUT_SEP = ":"


def split_ref(ref: str) -> tuple[str, str | None]:
    """A reference's layer (or model input) name and the extra output it reads: 'enc:h' → ('enc', 'h'),
    'enc' → ('enc', None)."""
    name, sep, part = ref.partition(OUTPUT_SEP)
    return name, (part if sep else None)



@dataclass(frozen=True)
class LayerMemory:
    """Bytes per sample a layer needs beyond its output, for a type that declares them (``LayerSpec.memory``)."""

    saved: int  # kept from the forward pass until this layer's backward
    transient: int = 0  # allocated and freed inside the forward pass


_REGISTRY: dict[str, type["LayerSpec"]] = {}


class LayerSpec(BaseModel):
    """Base of every layer type. Subclasses add their parameters as pydantic fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str | None = Field(default=None, description="Unique layer name (default: the type and a counter, e.g. dense_1).")
    inputs: list[str] | None = Field(
        default=None, description="Names of the layers or model inputs this layer reads; default: the previous layer."
    )
    trainable: bool = Field(default=True, description="false: freeze the layer's weights (no gradients, no optimizer "
                            "updates, counted as non-trainable; a batchnorm then also runs in inference mode, as "
                            "Keras). A layer without weights accepts it and nothing changes.")

    # Class-level facts about the type, set by @register and by subclasses.
    type_name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    family: ClassVar[str] = ""
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    example: ClassVar[str] = ""  # one YAML list item, e.g. "- {type: dense, units: 64}", shown in the docs
    example_inputs: ClassVar[list[Shape]] = []  # input shape(s) the example reads (used by the contract tests)
    time_aware: ClassVar[bool] = False  # build/flops/backward_flops take steps=T (see the module docstring)
    example_steps: ClassVar[int] = 1  # time steps T of the example's input (the contract tests feed batch 3·T)
    masking: ClassVar[str] = "refuse"  # what the layer does with a padding mask on its input (see mask_mode)
    wraps: ClassVar[str] = ""  # a wrapper type: the field (and module attribute) holding the layer it wraps

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_integers(cls, value: object) -> object:
        """Every integer parameter of every layer type (a plugin's too) stays within ±MAX_SIZE, so no size
        overflows torch or the memory check; counts use the tighter ``limits.Count``."""
        for v in (value if isinstance(value, (list, tuple)) else (value,)):
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SIZE:
                raise ValueError(f"{v} is beyond the largest size layerforge accepts ({MAX_SIZE:,} = 2**31 - 1)")
        return value

    # --- the contract -------------------------------------------------------------------------
    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        raise NotImplementedError

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int | None:
        return None

    def backward_flops(self, in_shapes: list[Shape], out_shape: Shape) -> int | None:
        f = self.flops(in_shapes, out_shape)
        return None if f is None else 2 * f

    def id_range(self, input_index: int = 0) -> tuple[int, int] | None:
        """For a layer that reads integer ids (an embedding): the valid ids of input ``input_index`` as a
        half-open range ``(low, high)``. None (the default): the input holds real values. Data fitting
        checks the ids against it; the profiler and the contract tests draw random ids from it."""
        return None

    def output_activation(self) -> str | None:
        """The nonlinearity this layer applies last (``softmax``, ``sigmoid``, ...), or None. Used to warn
        when the model's output layer applies what the loss applies again (softmax before cross_entropy).
        Default: the layer's ``activation`` parameter, when it has one."""
        act = getattr(self, "activation", None)
        return act if isinstance(act, str) and act != "linear" else None

    def check_memory(self, in_shapes: list[Shape], limit: int) -> None:
        """Raise ShapeError when training on ONE sample through this layer needs more than ``limit`` bytes
        (this machine's memory) beyond what the front door's size check counts itself (parameters and each
        layer's output): memory kept for the backward pass, such as a simulated circuit's state vectors.
        The message says how much it needs, the hint what fits. The default needs nothing more."""

    def memory(self, in_shapes: list[Shape], out_shape: Shape) -> LayerMemory | None:
        """The layer's memory rule: what it keeps for backward and needs transiently in forward, per sample.
        None (the default, right for any layer built from PyTorch ops): derived by tracing the real module
        on fake tensors of the target device, with the kernels PyTorch picks there (the analytic estimate
        of ``inspect``, ``validate`` and ``profile``). A type whose forward allocates outside PyTorch's ops
        (a C extension, numpy) returns its bytes, which the trace keeps from its forward to its backward."""
        return None

    def extra_info(self, in_shapes: list[Shape], out_shape: Shape) -> dict[str, Any]:
        """Optional facts about this layer for ONE sample (name → number, text or list of numbers):
        ``inspect`` shows them in its *Info* column (JSON: ``layers[].info``), ``profile`` under its layer
        table (JSON: ``layers[].info``); both format them with :func:`layerforge.text.format_info`. E.g. a
        tensor train's compression ratio, a simulated state's size, sparse attention's attended and
        computed (query, key) pairs. Short, JSON-able values; the default has none."""
        return {}

    def out_steps(self, steps: int) -> int:
        """Time steps T of the output for an input carrying ``steps`` (1 = an ordinary tensor). Most layers
        keep T; a spiking layer that sets or consumes it overrides this and raises ShapeError when the
        input's T does not fit it."""
        return steps

    def mask_mode(self, in_shapes: list[Shape]) -> str:
        """What this layer does with a padding mask (variable-length sequences, docs/sequences.md):

        - ``refuse`` (the default): a masked input is an error at validation, since the layer would mix
          padded steps into valid ones silently;
        - ``keep``: the layer works step by step (elementwise or on the last axis), so the output carries
          the input's mask unchanged (several masked inputs: their AND);
        - ``use``: the module takes ``masks=[mask per input]`` (bool (B, T), True = a valid step, None for
          an unmasked input) and its output carries the first input's mask (recurrent with
          ``return_sequences``, attention);
        - ``consume``: as ``use``, but the output carries no mask (last valid step, pooling over time);
        - ``make``: the module has ``compute_mask(x) -> bool (B, T)`` and its output carries that mask
          (``embedding`` with ``mask_zero``, ``masking``).

        Default: the class attribute ``masking``."""
        return type(self).masking

    def extra_outputs(self, in_shapes: list[Shape]) -> dict[str, Shape]:
        """Named extra outputs beside the main one (a recurrent layer's final states with ``return_state``)
        and their per-sample shapes: a later layer or ``model.outputs`` reads one as ``<layer>:<key>``
        (``enc:h``). A layer that declares any returns the tuple ``(output, *extras)`` from its module, the
        extras in this order; they carry no padding mask and cost no FLOPs of their own (the layer computed
        them anyway). Default: none, the module returns one tensor."""
        return {}

    # --- helpers ------------------------------------------------------------------------------
    def label(self) -> str:
        return f"{self.type} '{self.name}'" if self.name else self.type

    @classmethod
    def doc(cls) -> str:
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")


def register(name: str, *, family: str = "custom", summary: str | None = None):
    """Class decorator: register a layer type under ``name`` (lower-case, unique)."""

    def deco(cls: type[LayerSpec]) -> type[LayerSpec]:
        from ..errors import PluginError

        if not (isinstance(cls, type) and issubclass(cls, LayerSpec)):
            raise PluginError(f"@register('{name}') must decorate a LayerSpec subclass, got {cls!r}")
        if name in _REGISTRY and (_REGISTRY[name].__module__, _REGISTRY[name].__qualname__) != (cls.__module__, cls.__qualname__):
            raise PluginError(
                f"layer type '{name}' is registered twice ({_REGISTRY[name].__module__} and {cls.__module__})",
                hint="choose another name for your layer type",
            )
        cls.type_name = name
        cls.family = family
        first = (cls.__doc__ or "").strip().splitlines()
        cls.summary = summary or (first[0].strip() if first else name)
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    from . import families  # noqa: F401  (imports every built-in family module)


def registry() -> dict[str, type[LayerSpec]]:
    """All registered layer types by name (built-ins are loaded on first use)."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def get_layer_type(name: str) -> type[LayerSpec]:
    """Look up a type by name; an unknown name raises KeyError with a did-you-mean message."""
    reg = registry()
    if name in reg:
        return reg[name]
    hint = suggest(name, reg)
    raise KeyError(f"unknown layer type '{name}'" + (f"; {hint}" if hint else "") + " ('layerforge layers' lists every type)")
