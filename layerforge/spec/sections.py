"""Schemas of the spec's non-model sections: ``data``, ``train``, ``profile``.

Each is a pydantic model with unknown keys forbidden. They are placeholders the data, training and
profiling code extend; they live here (torch-free) so ``layerforge schema`` and validation need no torch.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(Section):
    """Where the data comes from and how it is split (see docs/data.md)."""


class TrainSpec(Section):
    """How the model is trained (see docs/training.md)."""


class ProfileSpec(Section):
    """Defaults for ``layerforge profile`` (see docs/profile.md)."""
