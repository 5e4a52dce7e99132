"""The analytic memory estimate: one training step (or inference pass) of the model, traced on fake tensors.

Why trace rather than sum a formula per layer: what a step needs at its peak depends on the *schedule*
(an output is freed after its last reader unless backward saved it; saved tensors are freed layer by layer
in backward while gradients appear) and on the kernel PyTorch actually picks on the device (SDPA's flash
kernel never materialises the score matrix; an RNN steps through time and saves every step's gates). So
the estimate runs the real module, the real loss, backward and optimizer step under
``torch._subclasses.FakeTensorMode`` on the target device: every tensor has its real shape, dtype and
device, so composite ops dispatch exactly as they would (the same kernel choices), but nothing is
allocated and no arithmetic is done. An allocation tracker (a ``TorchDispatchMode``) adds up each new
storage an op creates and subtracts it when the storage is freed (a weak reference's callback), giving the
live bytes at every moment: the same quantity the profiler measures from the allocator's events.

This needs no code per layer type: a type added in any branch is covered as soon as it is registered.
Two ways to correct it, each used only where the fake kernel differs from the real one:

- per aten op, :data:`KERNEL_BYTES`: the bytes the real CPU kernel allocates for an output whose meta
  kernel allocates nothing (oneDNN's LSTM workspace, which ``mkldnn_rnn_layer``'s meta kernel returns empty)
  and the scratch it allocates and frees inside (oneDNN's convolutions reorder into a channel-padded
  blocked layout; upsampling builds indices and copies), each measured from the profiler's allocations;
- per layer type, the contract's ``LayerSpec.memory()`` (:mod:`layerforge.layers.registry`): a type whose
  forward allocates outside PyTorch's ops declares its saved and transient bytes per sample, and the
  trace keeps that many bytes alive from its forward until its backward.
"""
from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..errors import ShapeError
from .memory import MemorySplit, Phase, PhaseMemory

if TYPE_CHECKING:
    import torch

    from ..graph import Graph

PAGE = 4096


def _pages(nbytes: int) -> int:
    return -(-nbytes // PAGE) * PAGE


def _good_ld(dim: int) -> int:
    """oneDNN's leading dimension for fp32: rounded up to 16 floats, +16 when a multiple of 256 (cache
    aliasing)."""
    ld = -(-dim // 16) * 16
    return ld + 16 if ld % 256 == 0 else ld


def mkldnn_lstm(args: tuple, _out: Any) -> tuple[dict[int, int], int]:
    """oneDNN's LSTM (``mkldnn_rnn_layer``, fp32), whose meta kernel returns an empty workspace.
    Training keeps a workspace for backward (output 3), laid out as gates (T·B·4H), the layer's states
    ((T+1)·B per side), the cell states, h_t and the states' gradients, each page-aligned. Both modes
    reorder the input and the weights into scratch buffers; inference also computes the gates there."""
    x, w_ih, w_hh, h, train = args[0], args[1], args[2], args[10], args[15]
    if x.dtype.itemsize != 4:
        return {}, 0
    t, b, feat = x.shape  # time-major whatever the batch_first flag says: the caller has transposed it
    ld_s, ld_h = _good_ld(max(feat, h)), _good_ld(h)
    gates = _pages(4 * t * b * _good_ld(4 * h))
    scratch = 4 * (x.numel() + w_ih.numel() + w_hh.numel())
    if not train:
        return {}, scratch + gates
    parts = [2 * (t + 1) * b * ld_s, 2 * (t + 1) * b * ld_h, t * b * ld_h, 2 * 3 * (t + 1) * b * ld_s]
    return {3: gates + sum(_pages(4 * p) for p in parts)}, scratch


def mkldnn_lstm_backward(args: tuple, _out: Any) -> tuple[dict[int, int], int]:
    """oneDNN's LSTM backward: scratch of the gates' gradients (T·B·4H, page-aligned), one output-sized
    buffer and two copies of the weights (fitted to the measured peak: within 3 % for H = 32, 64)."""
    x, out, h = args[0], args[7], args[15]
    if x.dtype.itemsize != 4:
        return {}, 0
    t, b = x.shape[0], x.shape[1]
    weights = sum(w.numel() for w in args[1:5])
    return {}, _pages(4 * t * b * _good_ld(4 * h)) + 4 * out.numel() + 2 * 4 * weights


def onednn_convolution(args: tuple, out: Any) -> tuple[dict[int, int], int]:
    """The CPU convolution (fp32). oneDNN's computes into a buffer in its own blocked layout (output
    channels padded to its block), with the weights reordered beside it, then copies to the plain output:
    the blocked output plus the larger of the weights and the plain output (measured for 1×1 to 3×3
    kernels, 1 to 64 channels; 4 output channels take a blocked buffer twice the output's size). Grouped
    (depthwise) and transposed convolutions differ, see :func:`_grouped_or_transposed`."""
    x, w, stride, transposed, groups = args[0], args[1], args[3], args[6], args[8]
    if x.device.type != "cpu" or x.dtype.itemsize != 4:
        return {}, 0
    if transposed or groups > 1:
        return {}, _grouped_or_transposed(x, w, out, stride, transposed, groups)
    o = out.numel() * 4
    return {}, o * _padded(out.shape[1]) // out.shape[1] + max(w.numel() * 4, o)


def onednn_convolution_backward(args: tuple, _out: Any) -> tuple[dict[int, int], int]:
    """oneDNN's CPU convolution backward for the weights (fp32, one group, ``conv2d`` with 1-16 input and
    4-32 output channels measured): the output's gradient and the input reordered into the blocked layout
    (channels padded to the block; an input of 3 channels is read as it is), the weights' and the bias's
    gradients computed blocked (padded), then copied out to the plain gradients while the blocked weights'
    gradient is still held."""
    g, x, w, transposed, groups, mask = args[0], args[1], args[2], args[7], args[9], args[10]
    if (x.device.type != "cpu" or x.dtype.itemsize != 4 or transposed or groups != 1 or not mask[1]
            or not _uses_onednn(x, w, groups)):
        return {}, 0
    co, ci = w.shape[0], w.shape[1]
    grad_out = g.numel() * 4 * _padded(co) // co
    inp = 0 if ci == 3 else x.numel() * 4 * _padded(ci) // ci
    grad_w = w[0, 0].numel() * 4 * _padded(co) * (ci if ci == 3 else _padded(ci))
    return {}, max(grad_out + inp + grad_w + 4 * _padded(co), grad_w + w.numel() * 4 + 4 * co)


def _uses_onednn(x: Any, w: Any, groups: int) -> bool:
    """ATen's choice of oneDNN over its native CPU kernel (``use_mkldnn`` in ConvUtils, the 4-d view a 1-d
    convolution is run as): native for one small sample with a kernel of at most 3 on one side."""
    kh = w.shape[-2] if w.dim() >= 4 else 1
    return groups > 1 or (kh > 3 and w.shape[-1] > 3) or x.shape[0] > 1 or x.numel() > 20480


ONEDNN_DECONV_SCRATCHPAD = 37_016


def _grouped_or_transposed(x: Any, w: Any, out: Any, stride: Any, transposed: bool, groups: int) -> int:
    """Scratch (the output counted in it) of a grouped or transposed CPU convolution, from the profiler's
    allocations (conv1d/2d_transpose, depthwise_conv2d at batch 1 and 32):

    - native transposed (``slow_conv_transpose2d``, one small sample): the output and one sample's columns
      (C_out/groups · k-window × input positions);
    - oneDNN transposed: a copy of the input, two of the weights, the output and, when strided, a scratchpad
      that does not grow with the batch (37,016 or 57,496 B for every 1-d and 2-d shape tried, 119,576 B for
      one: the smallest is counted); then two more output-sized copies beside the output;
    - oneDNN grouped, one output channel per input channel: the input, the weights and the output reordered
      into oneDNN's blocked layout (channels padded to its block, the input only when it has more than one
      channel), then the plain output beside the blocked one (channels 1 to 32 measured);
    - oneDNN grouped otherwise (depthwise with a multiplier): the output in oneDNN's layout, then the larger
      of the reordered weights and the plain output beside it."""
    o, wb = out.numel() * 4, w.numel() * 4
    if not _uses_onednn(x, w, groups):  # only a transposed one: a grouped one always takes oneDNN
        columns = w[0].numel() * x[0, 0].numel()  # weight (C_in, C_out/groups, *k): one row per C_out·k
        return o + 4 * columns
    if transposed:
        pad = ONEDNN_DECONV_SCRATCHPAD if any(st > 1 for st in stride) else 0
        return max(x.numel() * 4 + 2 * wb + o + pad, 3 * o)
    c = x.shape[1]
    if groups == c == w.shape[0]:
        blocked_in = x.numel() * 4 * _padded(c) // c if c > 1 else 0
        blocked_out = o * _padded(c) // c
        return max(blocked_in + wb * _padded(c) // c + blocked_out, blocked_out + o)
    return o + max(wb, o)


@cache
def _channel_block() -> int:
    """oneDNN's channel block for fp32 on this CPU: 16 floats with AVX-512, else 8."""
    import torch

    return 16 if "AVX512" in torch.backends.cpu.get_cpu_capability() else 8


def _padded(channels: int) -> int:
    """Channels in oneDNN's blocked layout: rounded up to its block."""
    return -(-channels // _channel_block()) * _channel_block()


def upsample_bilinear(args: tuple, out: Any) -> tuple[dict[int, int], int]:
    """The CPU kernel of bilinear upsampling (fp32) computes on a copy of the input into a copy of the output
    (two clones seen in the profiler beside the output, batch 1 and 32): scratch of one input and two
    outputs, the output itself included as the scratch is counted before the output is."""
    x = args[0]
    if x.device.type != "cpu":
        return {}, 0
    return {}, tensor_nbytes(x) + 2 * tensor_nbytes(out)


def upsample_nearest1d(args: tuple, out: Any) -> tuple[dict[int, int], int]:
    """The CPU kernel of nearest 1-d upsampling allocates, beside its output, an int64 source index and a
    float32 weight per output position (80 + 40 B for 10 positions, at batch 1 and 32 alike)."""
    return ({}, tensor_nbytes(out) + 12 * out.shape[-1]) if args[0].device.type == "cpu" else ({}, 0)


def tensor_nbytes(t: Any) -> int:
    return t.numel() * t.dtype.itemsize


def _kernel_table() -> dict[Any, Callable[[tuple, Any], tuple[dict[int, int], int]]]:
    import torch

    return {torch.ops.aten.mkldnn_rnn_layer.default: mkldnn_lstm,
            torch.ops.aten.mkldnn_rnn_layer_backward.default: mkldnn_lstm_backward,
            torch.ops.aten.convolution.default: onednn_convolution,
            torch.ops.aten.convolution_backward.default: onednn_convolution_backward,
            torch.ops.aten.upsample_bilinear2d.default: upsample_bilinear,
            torch.ops.aten.upsample_nearest1d.default: upsample_nearest1d}


@cache
def _has_cpp_composite(func: Any) -> bool:
    """Whether the op has a C++ composite kernel (what the device decomposes it into). A Python
    decomposition (upsample_bilinear2d's, into index arithmetic) is not what the device runs."""
    import torch

    return torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd")


def _plain_dropout(x: "torch.Tensor", p: float, train: bool) -> Any:
    """Dropout outside training returns its input itself (the C++ composite clones only for a tensor
    subclass, which a fake tensor is)."""
    return NotImplemented if train else x


def _plain_max_pool1d(x: "torch.Tensor", *args: Any) -> Any:
    """Max pooling without autograd computes the values only (the C++ composite computes the indices too
    for a tensor subclass); the indices are made here, outside the tracker, and dropped."""
    import torch

    if torch.is_grad_enabled() and x.requires_grad:
        return NotImplemented
    return torch.ops.aten.max_pool1d_with_indices.default(x, *args)[0]


def _plain_linear(x: "torch.Tensor", w: "torch.Tensor", bias: "torch.Tensor | None" = None) -> Any:
    """linear on an input it cannot flatten as a view (a 3-D input that is not contiguous, e.g. a recurrent
    layer's time-major output): the C++ composite runs matmul, then adds the bias in place for a plain tensor
    but out of place, a second output-sized tensor, for a tensor subclass, which a fake tensor is."""
    import torch

    if bias is None or x.dim() == 2 or x.is_contiguous() or torch.is_grad_enabled():
        return NotImplemented
    return torch.matmul(x, w.t()).add_(bias)


def _traced_paths() -> dict[Any, Callable[..., Any]]:
    """Like :func:`_device_paths`, but their ops are traced one by one (temporaries included)."""
    import torch

    return {torch.ops.aten.linear.default: _plain_linear}


def _device_paths() -> dict[Any, Callable[..., Any]]:
    """Composite ops whose C++ implementation takes a shorter path for a plain tensor than for a fake one."""
    import torch

    aten = torch.ops.aten
    return {aten.dropout.default: _plain_dropout, aten.feature_dropout.default: _plain_dropout,
            aten.alpha_dropout.default: _plain_dropout, aten.feature_alpha_dropout.default: _plain_dropout,
            aten.max_pool1d.default: _plain_max_pool1d}


# op -> (args, out) -> ({output index: the real kernel's bytes}, scratch bytes it allocates and frees inside);
# a function so that torch is imported only when memory is estimated.
KERNEL_BYTES = _kernel_table


class _Tracker:
    """Live bytes of the storages ops create (weak references free them), with phases like memory.track."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self._refs: dict[int, Any] = {}
        self._existing: set[int] = set()

    def exists(self, tensors: Iterable["torch.Tensor | None"]) -> None:
        """Tensors that exist before the step (parameters, inputs, optimizer state): views of them are free."""
        self._existing.update(t.untyped_storage()._cdata for t in tensors if t is not None)

    def add(self, t: "torch.Tensor", nbytes: int | None = None) -> None:
        st = t.untyped_storage()
        key = st._cdata
        if key in self._refs or key in self._existing:
            return
        n = st.nbytes() if nbytes is None else nbytes

        def free(_ref: Any, key: int = key, n: int = n) -> None:
            if self._refs.pop(key, None) is not None:
                self.live -= n

        self._refs[key] = weakref.ref(st, free)
        self.live += n
        self.peak = max(self.peak, self.live)

    def mode(self) -> Any:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker, table, paths, traced = self, KERNEL_BYTES(), _device_paths(), _traced_paths()

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
                kwargs = kwargs or {}
                if func in paths:
                    out = paths[func](*args, **kwargs)
                    if out is not NotImplemented:
                        tracker.add(out)
                        return out
                if func in traced:
                    with self:
                        out = traced[func](*args, **kwargs)
                    if out is not NotImplemented:
                        return out
                # A composite op reaches this mode whole under inference_mode; the device runs its C++
                # decomposition (e.g. gru's, which projects every step's input at once), so trace that,
                # not the fake mode's Python decomposition.
                if func.namespace == "aten" and _has_cpp_composite(func):
                    with self:  # the C++ one even where a Python decomposition is registered too
                        out = func._op_dk(torch._C.DispatchKey.CompositeImplicitAutograd, *args, **kwargs)
                    if out is not NotImplemented:
                        return out
                out = func(*args, **kwargs)
                fix, scratch = table[func](args, out) if func in table else ({}, 0)
                tracker.peak = max(tracker.peak, tracker.live + scratch)
                for i, t in enumerate(tree_flatten(out)[0]):
                    if isinstance(t, torch.Tensor):
                        tracker.add(t, fix.get(i))
                return out

        return Mode()

    def phases(self) -> tuple[Callable[[str], Any], PhaseMemory]:
        out = PhaseMemory(method="traced on fake tensors (torch FakeTensorMode), storages counted until freed")
        base = self.live

        @contextlib.contextmanager
        def phase(name: str) -> Iterator[None]:
            p = Phase(name, start=self.live - base)
            self.peak = self.live
            yield
            p.end, p.peak = self.live - base, max(p.start, self.peak - base)
            out.phases.append(p)

        return phase, out


@dataclass
class Estimate:
    """The traced step: its split (as the profiler reports the measured one) and its phases."""

    split: MemorySplit
    phases: PhaseMemory


def estimate_memory(graph: "Graph", batch: int, *, train: bool, optimizer: str = "adam", dtype: str = "fp32",
                    device: str = "cpu") -> Estimate:
    """Bytes one training step (``train``) or one inference pass needs at ``batch``, split like the
    profiler's measurement: parameters + buffers, gradients, optimizer state, activations (training: what
    is still allocated at the end of the forward pass; inference: its high-water mark), inputs, peak."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ..graph import build_module
    from ..runtime import autocast_factory
    from .memory import optimizer_state_bytes, tensor_bytes
    from .step import loss_of, make_inputs, make_optimizer

    autocast = autocast_factory(dtype, torch.device(device))
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    tracker = _Tracker()
    with fake, torch.device(device):
        model = build_module(graph)
        # Padding masks: packed sequences take their lengths from the data, which fake tensors do not hold,
        # so a masked model is traced at full length, every step valid (the most a padded batch can need).
        model._masked = False  # the graph's general loop then tracks no masks
        xs = make_inputs(graph, batch, device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = make_optimizer(optimizer, params) if train and params else None  # nothing to train: a forward
        _keep_declared_memory(model, graph, batch)
        if opt is not None:  # the optimizer's state exists in the steady state the profiler measures
            for p in params:
                p.grad = torch.zeros_like(p)
            opt.step()
            opt.zero_grad(set_to_none=True)
    held = tensor_bytes([*model.parameters(), *model.buffers()])
    inputs = tensor_bytes(xs)
    state = optimizer_state_bytes(opt) if opt is not None else 0
    tracker.exists([*model.parameters(), *model.buffers(), *xs])
    if opt is not None:
        tracker.exists(v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor))
    try:
        with fake, tracker.mode():
            phase, pm = tracker.phases()
            if opt is None:
                model.eval()
                with phase("forward"), torch.inference_mode(), autocast():
                    out = model(*xs)
                    del out
            else:
                model.train()
                with phase("forward"), autocast():
                    loss = loss_of(model(*xs))
                with phase("backward"):
                    loss.backward()
                    del loss
                with phase("optimizer"):
                    opt.step()
            grads = tensor_bytes(p.grad for p in params) if opt is not None else 0
    except (RuntimeError, NotImplementedError) as e:  # an op without a fake kernel, or data-dependent shapes
        raise ShapeError(f"cannot trace the model on fake tensors to estimate its memory: {str(e).splitlines()[0]}",
                         hint="a layer type whose forward PyTorch cannot trace declares its memory with "
                         "LayerSpec.memory() (see docs/plugins.md)") from e
    if opt is None:
        act = pm.peak
        return Estimate(MemorySplit(held, 0, 0, act, inputs, held + inputs + act), pm)
    fwd = pm.get("forward")
    return Estimate(MemorySplit(held, grads, state, fwd.end if fwd else 0, inputs, held + state + inputs + pm.peak), pm)


def _keep_declared_memory(model: Any, graph: "Graph", batch: int) -> None:
    """Layers whose type declares its memory (``LayerSpec.memory()``): after their forward, allocate the
    declared transient bytes (freed at once) and keep the saved bytes with the output's autograd node until
    backward passes it, as autograd frees saved tensors."""
    import torch

    for n in graph.nodes:
        mem = n.layer.memory(n.in_shapes, n.out_shape)
        if mem is None:
            continue
        saved, transient = mem.saved * batch * n.steps, mem.transient * batch * n.steps

        def hook(_m: Any, _args: Any, out: Any, saved: int = saved, transient: int = transient) -> Any:
            main, *extra = out if isinstance(out, tuple) else (out,)  # extra outputs (LayerSpec.extra_outputs)
            torch.empty(transient, dtype=torch.uint8, device=main.device)
            if not (torch.is_grad_enabled() and main.requires_grad):
                return out
            kept = _keep_fn().apply(main, torch.empty(saved, dtype=torch.uint8, device=main.device))
            return (kept, *extra) if isinstance(out, tuple) else kept

        model.layers[n.name].register_forward_hook(hook)


@cache
def _keep_fn() -> Any:
    """An identity autograd function that saves a blob for backward (freed when backward passes it)."""
    import torch

    class Keep(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: "torch.Tensor", blob: "torch.Tensor") -> "torch.Tensor":
            ctx.save_for_backward(blob)
            return x.view_as(x)

        @staticmethod
        def backward(ctx: Any, g: "torch.Tensor") -> tuple:
            return g, None

    return Keep


def largest_fitting(peak_at: Callable[[int], int], limit: int, *, upper: int = 1 << 24) -> int | None:
    """The largest n ≥ 1 with ``peak_at(n) <= limit`` (peak_at grows with n), or None when even 1 does not
    fit. A straight line through n = 1 and 2 guesses the answer (memory grows linearly in the batch); the
    guess is bracketed by doubling and halving, then bisected: a dozen traces, not hundreds."""
    p1 = peak_at(1)
    if p1 > limit:
        return None
    slope = max(1, peak_at(2) - p1)
    guess = int(min(upper, max(1, (limit - p1) // slope + 1)))
    lo, hi = 1, upper + 1  # peak_at(lo) fits; hi does not (or is beyond the search)
    if peak_at(guess) <= limit:
        lo = guess
        step = max(1, guess // 16)
        while lo < upper:
            nxt = min(upper, lo + step)
            if peak_at(nxt) > limit:
                hi = nxt
                break
            lo, step = nxt, step * 2
        else:
            return upper
    else:
        hi = guess
        step = max(1, guess // 16)
        while hi - step > 1 and peak_at(hi - step) > limit:
            hi, step = hi - step, step * 2
        lo = max(1, hi - step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if peak_at(mid) <= limit else (lo, mid)
    return lo


ESTIMATE_BATCHES = (1, 32, 256)


def estimated_peaks(graph: "Graph", batch_sizes: Iterable[int] = ESTIMATE_BATCHES, *, optimizer: str = "adam"
                    ) -> list[dict[str, int]]:
    """Per batch size: the estimated peak bytes of a training step (``optimizer``, fp32) and of an
    inference pass, on the CPU. What ``validate`` and ``inspect`` show; nothing is allocated."""
    return [{"batch_size": b, "train": estimate_memory(graph, b, train=True, optimizer=optimizer).split.peak,
             "inference": estimate_memory(graph, b, train=False).split.peak} for b in sorted(set(batch_sizes))]
