"""The spec's non-model sections. Each schema lives beside the code it configures (torch-free files)."""
from ..analysis.profile_schema import ProfileSpec
from ..data.schema import DataSpec
from ..engine.schema import TrainSpec

__all__ = ["DataSpec", "ProfileSpec", "TrainSpec"]
