"""Schema of the spec's ``profile:`` section (torch-free): the defaults of ``layerforge profile``.

Every field can be overridden on the command line (``--batch-sizes``, ``--mode``, ``--dtype``, ...);
see docs/profile.md for what each figure means.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

Mode = Literal["inference", "train", "both"]
DType = Literal["fp32", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]
Optimizer = Literal["adam", "sgd"]


class ProfileSpec(BaseModel):
    """Defaults for ``layerforge profile`` (see docs/profile.md)."""

    model_config = ConfigDict(extra="forbid")

    batch_sizes: list[PositiveInt] = Field(
        default=[1, 32], min_length=1, description="Batch sizes to measure (each gets its own warm-up).")
    mode: Mode = Field(default="both", description="inference (forward only), train (forward, backward, "
                       "optimizer step) or both.")
    device: Device = Field(default="auto", description="cpu, cuda, or auto (cuda when available).")
    dtype: DType = Field(default="fp32", description="fp32, or bf16/fp16 autocast (fp16 needs CUDA).")
    threads: PositiveInt | None = Field(default=None, le=1024, description="CPU threads (torch.set_num_threads); "
                                        "default: PyTorch's default for this machine.")
    compile: bool = Field(default=False, description="Run the model through torch.compile; compile time is "
                          "reported apart from steady-state time.")
    optimizer: Optimizer = Field(default="adam", description="Optimizer of the timed training step: adam "
                                 "(torch.optim.Adam, 2 state tensors per parameter) or sgd (plain, no state).")
    warmup: NonNegativeInt = Field(default=3, description="Untimed calls before each measurement.")
    min_run_time: PositiveFloat = Field(default=0.05, description="Seconds of timed calls at least, per measurement.")
    max_run_time: PositiveFloat = Field(default=0.5, description="Seconds of timed calls at most, per measurement.")
    min_repeats: PositiveInt = Field(default=5, description="Timed calls at least, per measurement.")
    threshold: PositiveFloat = Field(default=0.1, description="Stop repeating once IQR/median is below this "
                                     "(torch.utils.benchmark's adaptive_autorange rule).")
    per_layer: bool = Field(default=True, description="Time every layer's forward and backward.")
    tolerance: PositiveFloat = Field(default=0.25, description="Relative gap allowed between the sum of the "
                                     "per-layer times and the end-to-end time before the report flags it.")

    @field_validator("batch_sizes")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        return sorted(set(v))

    @field_validator("max_run_time")
    @classmethod
    def _max(cls, v: float, info) -> float:  # noqa: ANN001
        lo = info.data.get("min_run_time")
        if lo is not None and v < lo:
            raise ValueError(f"max_run_time ({v}) must be at least min_run_time ({lo})")
        return v


QUICK: dict[str, object] = {
    "warmup": 1, "min_run_time": 0.002, "max_run_time": 0.02, "min_repeats": 3, "threshold": 0.25,
}
"""Overrides behind ``--quick``: a few calls per measurement (smoke tests and CI, not for reporting)."""

THOROUGH: dict[str, object] = {
    "warmup": 5, "min_run_time": 0.5, "max_run_time": 5.0, "min_repeats": 10, "threshold": 0.05,
}
"""Overrides behind ``--thorough``: long measurements for figures to report (the defaults keep a small
config's profile to about 10 s on 2 cores)."""
