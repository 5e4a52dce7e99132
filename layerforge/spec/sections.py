"""The spec's non-model sections. Each schema lives beside the code it configures (torch-free files)."""
from ..analysis.profile_schema import ProfileSpec
from ..data.schema import DataSpec
from ..engine.schema import TrainSpec
from ..search.schema import SearchSpec

__all__ = ["DataSpec", "ProfileSpec", "SearchSpec", "TrainSpec"]
