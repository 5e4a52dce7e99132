"""Schema of the spec's ``profile:`` section (torch-free)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ProfileSpec(BaseModel):
    """Defaults for ``layerforge profile`` (see docs/profile.md)."""

    model_config = ConfigDict(extra="forbid")
