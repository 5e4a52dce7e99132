"""Schema of the spec's ``train:`` section (torch-free)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TrainSpec(BaseModel):
    """How the model is trained (see docs/training.md)."""

    model_config = ConfigDict(extra="forbid")
