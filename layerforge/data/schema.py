"""Schema of the spec's ``data:`` section (torch-free)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DataSpec(BaseModel):
    """Where the data comes from, the task, and how it is split (see docs/data.md)."""

    model_config = ConfigDict(extra="forbid")
