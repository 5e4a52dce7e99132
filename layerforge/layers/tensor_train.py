"""Tensor-train (matrix-product-operator) layers: a dense layer whose weight is a chain of small cores.

The weight W ∈ ℝ^{M×N} of a dense layer, with N = n₁···n_d and M = m₁···m_d, is stored as d cores
G_k ∈ ℝ^{r_{k−1}×m_k×n_k×r_k} (r₀ = r_d = 1), as in matrix product operators of many-body physics
(Novikov et al. 2015, "Tensorizing Neural Networks"):

    W[(i₁…i_d), (j₁…j_d)] = G₁[:, i₁, j₁, :] · G₂[:, i₂, j₂, :] ··· G_d[:, i_d, j_d, :]

Row and column indices are the row-major multi-indices of the modes. This is TensorLy's TT-matrix layout
(TensorLy-Torch's ``BlockTT``), so cores can be exchanged with it as they are.
"""
from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Sequence

from pydantic import Field, PositiveInt, model_validator

from ..errors import ShapeError
from .common import ActivationName, activation_flops, make_activation, numel
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    import torch

# The automatic factorisation accepts a mode list whose largest mode is at most this many times the
# balanced size ⌈N^(1/d)⌉; a width whose best split is more lopsided (e.g. 2·53) is refused with a hint.
LOPSIDED = 2


# --- factorisation -------------------------------------------------------------------------------

def _splits(n: int, d: int, smallest: int = 2):
    """Every way to write n as a non-decreasing product of d factors, each ≥ smallest."""
    if d == 1:
        if n >= smallest:
            yield (n,)
        return
    f = smallest
    while f ** d <= n:
        if n % f == 0:
            for rest in _splits(n // f, d - 1, f):
                yield (f, *rest)
        f += 1


def balanced_modes(n: int, d: int) -> tuple[int, ...] | None:
    """The split of n into d factors ≥ 2 with the smallest largest factor (ties: the smallest sum, which
    gives the fewest parameters), ascending; None when n has fewer than d prime factors."""
    if d == 1:
        return (n,)
    return min(_splits(n, d), key=lambda t: (t[-1], sum(t)), default=None)


def _well_split(n: int, d: int) -> tuple[int, ...] | None:
    modes = balanced_modes(n, d)
    if modes is None or modes[-1] > LOPSIDED * math.ceil(round(n ** (1 / d), 9)):
        return None
    return modes


def arrange(modes: Sequence[int]) -> tuple[int, ...]:
    """The two largest modes at the ends (second largest first, largest last), the rest ascending between.
    An end core has one bond (r·m·n parameters), a middle core two (r²·m·n): big modes belong at the ends."""
    s = sorted(modes)
    return tuple(s) if len(s) <= 2 else (s[-2], *s[:-2], s[-1])


def auto_modes(n: int, d: int, what: str) -> tuple[int, ...]:
    """Balanced, arranged modes for width n, or a ShapeError saying why not and which widths would work."""
    modes = _well_split(n, d)
    if modes is not None:
        return arrange(modes)
    best = balanced_modes(n, d)
    near = []
    for delta in range(1, n):
        for cand in (n - delta, n + delta):
            good = _well_split(cand, d) if cand > 1 else None
            if good and len(near) < 3:
                near.append(f"{cand} = {'·'.join(map(str, good))}")
        if len(near) >= 3:
            break
    why = (f"{n} is prime" if _is_prime(n) else f"{n} has fewer than {d} prime factors") if best is None else (
        f"its most even split into {d} factors, {'·'.join(map(str, best))}, is lopsided "
        f"(largest factor above {LOPSIDED}·⌈{n}^(1/{d})⌉)")
    fewer = next((f"{k} cores ({n} = {'·'.join(map(str, m))})" for k in range(d - 1, 1, -1)
                  if (m := _well_split(n, k)) is not None), None)
    raise ShapeError(
        f"cannot choose {what} automatically for width {n} with {d} cores: {why}",
        hint=f"give {what} explicitly (positive integers with product {n}; 1s are allowed)"
             + (f", use {fewer}" if fewer else "") + f", or use a width that splits evenly: {', '.join(near)}")


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % p for p in range(2, math.isqrt(n) + 1))


def full_ranks(in_modes: Sequence[int], out_modes: Sequence[int]) -> list[int]:
    """The largest useful rank of each bond: min(∏_{i≤k} m_i·n_i, ∏_{i>k} m_i·n_i) (higher ranks add
    parameters but cannot represent more matrices)."""
    sizes = [m * n for m, n in zip(out_modes, in_modes)]
    return [min(numel(tuple(sizes[: k + 1])), numel(tuple(sizes[k + 1:]))) for k in range(len(sizes) - 1)]


def tt_flops_per_position(in_modes: Sequence[int], out_modes: Sequence[int], ranks: Sequence[int]) -> int:
    """FLOPs of the contraction in ``TTLinear.forward`` for one input vector (``ranks`` with the boundary 1s).

    Step k contracts (P, n_k, Q, r_{k−1}) with G_k (r_{k−1}, m_k, n_k, r_k), a (P·Q × n_k·r_{k−1}) by
    (n_k·r_{k−1} × m_k·r_k) matmul with P = ∏_{i<k} m_i, Q = ∏_{i>k} n_i: 2·P·Q·n_k·r_{k−1}·m_k·r_k.
    """
    total = 0
    for k in range(len(in_modes)):
        p, q = numel(tuple(out_modes[:k])), numel(tuple(in_modes[k + 1:]))
        total += 2 * p * q * in_modes[k] * ranks[k] * out_modes[k] * ranks[k + 1]
    return total


# --- the layer type ------------------------------------------------------------------------------

@register("tt_dense", family="tensor network")
class TTDense(LayerSpec):
    """Tensor-train dense layer: a dense layer whose weight matrix is a chain of small cores (an MPO).

    **Formula.** y = f(W·x + b) with W ∈ ℝ^{M×N} never formed: N = n₁···n_d, M = m₁···m_d (the modes) and
    W[(i₁…i_d), (j₁…j_d)] = G₁[i₁, j₁] · G₂[i₂, j₂] ··· G_d[i_d, j_d], where G_k[i, j] is an r_{k−1}×r_k
    matrix (r₀ = r_d = 1; the r_k are the TT ranks). The forward pass contracts x with one core at a time,
    left to right: x is reshaped to (B, n₁, n₂…n_d, 1); step k is the einsum
    `pnqa,amnb->pmqb` of the state (P, n_k, Q, r_{k−1}) with G_k (r_{k−1}, m_k, n_k, r_k), where
    P = B·m₁···m_{k−1} and Q = n_{k+1}···n_d — one (P·Q × n_k·r_{k−1})·(n_k·r_{k−1} × m_k·r_k) matmul.
    After step d the state is (B·M, 1, 1), i.e. y before the bias.

    Modes chosen automatically (`in_modes`/`out_modes` omitted) are the split of the width into `cores`
    factors ≥ 2 whose largest factor is smallest (ties: smallest sum), ordered with the two largest at
    the ends (second largest first, largest last, the rest ascending between), since a middle core has
    two rank bonds and an end core one: 64 → 4·4·4, 256 → 8·4·8, 784 → 8·7·14, 1024 in 4 → 8·4·4·8. A width that has no such split (a prime, 10 into 3 factors) or whose best
    split is lopsided (largest factor more than 2·⌈N^(1/d)⌉, e.g. 106 = 2·53 into 2) is refused with a
    hint listing nearby widths that split evenly; give the modes explicitly to use it anyway. A rank above
    a bond's full rank min(∏_{i≤k} m_i·n_i, ∏_{i>k} m_i·n_i) is lowered to it (more would add parameters
    but no expressiveness); `ranks: full` asks for the full ranks, which represent every M×N matrix.

    **Initialisation.** Cores are i.i.d. normal with std σ = (1/(3N·r₁···r_{d−1}))^{1/(2d)}, so each
    entry of W has variance r₁···r_{d−1}·σ^{2d} = 1/(3N), that of `nn.Linear`'s default init, and the
    entries are uncorrelated: the output has the dense layer's variance. The bias is uniform
    (±1/√N) as in `nn.Linear`.

    **Shapes.** input (…, N) → output (…, M). Parameters: Σ_k r_{k−1}·m_k·n_k·r_k (+ M with bias);
    `inspect` shows the compression against the dense layer's N·M (+ M).

    **FLOPs** (per sample, per leading position): Σ_k 2·(m₁···m_{k−1})·(n_{k+1}···n_d)·n_k·r_{k−1}·m_k·r_k
    (step k's matmul), + M for the bias, + the activation's cost.

    **Equivalents.** TensorLy-Torch `tltorch.FactorizedLinear(in_tensorized_features=in_modes,
    out_tensorized_features=out_modes, factorization='blocktt', rank=...)` (the same cores, as
    `weight.factors`); T3F `KerasDense`; a plain `nn.Linear(N, M)` with the weight
    `TTLinear.to_dense()`. `TTLinear.from_dense(weight, ...)` converts a trained dense layer by TT-SVD.
    """

    example = "- {type: tt_dense, units: 256, ranks: 8, activation: relu}"
    example_inputs = [(10, 64)]

    units: PositiveInt = Field(description="Size of the output's last axis, M = m₁···m_d.")
    in_modes: list[PositiveInt] | None = Field(
        default=None, description="Factorisation n₁…n_d of the input width (product = input width); default: balanced, see above.")
    out_modes: list[PositiveInt] | None = Field(
        default=None, description="Factorisation m₁…m_d of units (product = units, as many as in_modes); default: balanced.")
    cores: PositiveInt = Field(
        default=3, description="Number of cores d when in_modes and out_modes are both omitted (otherwise their length).")
    ranks: PositiveInt | list[PositiveInt] | Literal["full"] = Field(
        default=8, description="TT ranks r₁…r_{d−1}: one for every bond, a list of d−1, or 'full'; each is capped at the bond's full rank.")
    activation: ActivationName = Field(default="linear", description="Activation applied after the affine map.")
    use_bias: bool = Field(default=True, description="Add a learned bias.")

    @model_validator(mode="after")
    def _consistent(self) -> "TTDense":
        given = [m for m in (self.in_modes, self.out_modes) if m is not None]
        if len(given) == 2 and len(self.in_modes or []) != len(self.out_modes or []):
            raise ValueError(f"in_modes has {len(self.in_modes or [])} entries and out_modes {len(self.out_modes or [])}: "
                             "both need one per core")
        d = len(given[0]) if given else self.cores
        if given and "cores" in self.model_fields_set and self.cores != d:
            raise ValueError(f"cores: {self.cores} disagrees with the {d} modes given; drop cores or make them agree")
        if self.out_modes is not None and numel(tuple(self.out_modes)) != self.units:
            raise ValueError(f"out_modes {self.out_modes} multiply to {numel(tuple(self.out_modes))}, not units = {self.units}")
        if isinstance(self.ranks, list) and len(self.ranks) != d - 1:
            raise ValueError(f"{d} cores have {d - 1} bonds, so ranks needs {d - 1} entries (or one number), got {len(self.ranks)}")
        if self.out_modes is None:
            try:
                auto_modes(self.units, d, "out_modes")
            except ShapeError as e:
                raise ValueError(f"{e.message}; {e.hint}") from None
        return self

    # --- the resolved structure ----------------------------------------------------------------
    def n_cores(self) -> int:
        return len(self.in_modes or self.out_modes or []) or self.cores

    def structure(self, width: int) -> tuple[tuple[int, ...], tuple[int, ...], list[int]]:
        """(in_modes, out_modes, ranks with the boundary 1s) for an input of this width."""
        d = self.n_cores()
        if self.in_modes is not None:
            if numel(tuple(self.in_modes)) != width:
                raise ShapeError(f"in_modes {self.in_modes} multiply to {numel(tuple(self.in_modes))}, "
                                 f"but the input width is {width}", hint="make the modes' product equal the input width")
            ins = tuple(self.in_modes)
        else:
            ins = auto_modes(width, d, "in_modes")
        outs = tuple(self.out_modes) if self.out_modes is not None else auto_modes(self.units, d, "out_modes")
        full = full_ranks(ins, outs)
        asked = full if self.ranks == "full" else (self.ranks if isinstance(self.ranks, list) else [self.ranks] * (d - 1))
        return ins, outs, [1, *(min(a, f) for a, f in zip(asked, full)), 1]

    # --- the contract --------------------------------------------------------------------------
    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) < 1:
            raise ShapeError(f"needs an input with at least one axis, got {s}")
        self.structure(s[-1])
        return (*s[:-1], self.units)

    def build(self, in_shapes: list[Shape]):
        from torch import nn

        ins, outs, ranks = self.structure(in_shapes[0][-1])
        tt = _module_class()(ins, outs, ranks, bias=self.use_bias)
        return tt if self.activation == "linear" else nn.Sequential(tt, make_activation(self.activation))

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        s = in_shapes[0]
        ins, outs, ranks = self.structure(s[-1])
        per = tt_flops_per_position(ins, outs, ranks) + (self.units if self.use_bias else 0)
        return numel(s[:-1]) * per + activation_flops(self.activation, numel(out_shape))

    def extra_info(self, in_shapes: list[Shape], out_shape: Shape) -> dict[str, Any]:
        ins, outs, ranks = self.structure(in_shapes[0][-1])
        bias = self.units if self.use_bias else 0
        tt = sum(ranks[k] * outs[k] * ins[k] * ranks[k + 1] for k in range(len(ins))) + bias
        dense = in_shapes[0][-1] * self.units + bias
        return {"compression": round(dense / tt, 2), "dense_params": dense,
                "modes": f"{'·'.join(map(str, ins))} → {'·'.join(map(str, outs))}",
                "ranks": list(ranks[1:-1])}


# --- the module and the TT-SVD -------------------------------------------------------------------

@cache
def _module_class() -> type:
    """The TTLinear nn.Module class (made on first use so importing the layer types does not import torch)."""
    from torch import nn

    class TTLinear(nn.Module):
        """y = x·Wᵀ + b with W stored as TT cores ``cores[k]`` of shape (r_{k−1}, m_k, n_k, r_k)."""

        def __init__(self, in_modes: Sequence[int], out_modes: Sequence[int], ranks: Sequence[int], bias: bool = True) -> None:
            import torch

            super().__init__()
            self.in_modes, self.out_modes, self.ranks = tuple(in_modes), tuple(out_modes), tuple(ranks)
            self.in_features, self.out_features = numel(self.in_modes), numel(self.out_modes)
            self.cores = nn.ParameterList(
                nn.Parameter(torch.empty(ranks[k], out_modes[k], in_modes[k], ranks[k + 1])) for k in range(len(in_modes)))
            self.bias = nn.Parameter(torch.empty(self.out_features)) if bias else None
            self.reset_parameters()

        def reset_parameters(self) -> None:
            """Each entry of W gets variance 1/(3N), as nn.Linear's default init (see the layer's doc)."""
            d = len(self.cores)
            var = 1.0 / (3 * self.in_features * numel(self.ranks[1:-1]))
            std = var ** (1 / (2 * d))
            for core in self.cores:
                nn.init.normal_(core, 0.0, std)
            if self.bias is not None:
                bound = 1 / math.sqrt(self.in_features)
                nn.init.uniform_(self.bias, -bound, bound)

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            import torch

            lead = x.shape[:-1]
            z = x.reshape(-1, self.in_features, 1)  # (B, N, r₀=1)
            p = z.shape[0]
            for core in self.cores:  # core: (r_{k−1}, m_k, n_k, r_k)
                a, m, n, b = core.shape
                z = z.reshape(p, n, -1, a)  # (P, n_k, Q, r_{k−1})
                z = torch.einsum("pnqa,amnb->pmqb", z, core)  # (P, m_k, Q, r_k)
                p *= m
            y = z.reshape(*lead, self.out_features)  # (…, M): z was (B·M, 1, 1)
            return y if self.bias is None else y + self.bias

        def to_dense(self) -> "torch.Tensor":
            """The full weight W (M, N), as nn.Linear stores it."""
            return tt_to_matrix(list(self.cores))

        @classmethod
        def from_dense(cls, weight: "torch.Tensor", bias: "torch.Tensor | None", in_modes: Sequence[int],
                       out_modes: Sequence[int], ranks: int | Sequence[int] | None = None) -> "TTLinear":
            """A TT layer whose cores are the TT-SVD of ``weight`` (M, N) (exact with ranks=None: the full ranks)."""
            import torch

            cores = tt_svd(weight, in_modes, out_modes, ranks)
            layer = cls(in_modes, out_modes, [1, *(c.shape[-1] for c in cores[:-1]), 1], bias=bias is not None)
            with torch.no_grad():
                for dst, src in zip(layer.cores, cores):
                    dst.copy_(src)
                if bias is not None:
                    layer.bias.copy_(bias)
            return layer

        def extra_repr(self) -> str:
            return f"in_modes={self.in_modes}, out_modes={self.out_modes}, ranks={self.ranks}, bias={self.bias is not None}"

    return TTLinear


def __getattr__(name: str) -> Any:
    """``from layerforge.layers.tensor_train import TTLinear`` works without importing torch before it is used."""
    if name == "TTLinear":
        return _module_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tt_to_matrix(cores: Sequence["torch.Tensor"]) -> "torch.Tensor":
    """Contract TT-matrix cores (r_{k−1}, m_k, n_k, r_k) into the (∏m, ∏n) matrix they represent."""
    full = cores[0]  # (1, M_so_far, N_so_far, r)
    for core in cores[1:]:
        r0, mm, nn_, r1 = full.shape
        a, m, n, b = core.shape
        full = (full.reshape(mm * nn_, r1) @ core.reshape(a, m * n * b))  # (M_so_far·N_so_far, m·n·b)
        full = full.reshape(mm, nn_, m, n, b).permute(0, 2, 1, 3, 4).reshape(1, mm * m, nn_ * n, b)
    return full.reshape(full.shape[1], full.shape[2])


def tt_svd(weight: "torch.Tensor", in_modes: Sequence[int], out_modes: Sequence[int],
           ranks: int | Sequence[int] | None = None) -> list["torch.Tensor"]:
    """TT-SVD (Oseledets 2011) of a matrix W (M, N) into TT-matrix cores (r_{k−1}, m_k, n_k, r_k).

    W is reshaped to (m₁…m_d, n₁…n_d), its axes interleaved to (m₁, n₁, …, m_d, n_d), and split by
    d−1 successive truncated SVDs, in float64. With ``ranks=None`` (the full ranks) it is exact; with
    smaller ranks each SVD keeps its largest singular values (a quasi-optimal approximation).
    """
    import torch

    d = len(in_modes)
    if isinstance(ranks, int) or ranks is None:
        caps = [ranks] * (d - 1)
    else:
        caps = list(ranks)
    t = weight.detach().to(torch.float64).reshape(*out_modes, *in_modes)
    t = t.permute(*[i for k in range(d) for i in (k, d + k)])  # (m₁, n₁, m₂, n₂, …)
    cores, r_prev, rest = [], 1, t.reshape(-1)
    for k in range(d - 1):
        mat = rest.reshape(r_prev * out_modes[k] * in_modes[k], -1)
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        r = len(s) if caps[k] is None else min(len(s), caps[k])
        cores.append(u[:, :r].reshape(r_prev, out_modes[k], in_modes[k], r))
        rest = s[:r, None] * vh[:r]
        r_prev = r
    cores.append(rest.reshape(r_prev, out_modes[-1], in_modes[-1], 1))
    return [c.to(weight.dtype) for c in cores]
