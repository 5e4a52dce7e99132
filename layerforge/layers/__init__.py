"""Layer types: the registry and one small module per family."""
from .registry import LayerSpec, Shape, get_layer_type, register, registry

__all__ = ["LayerSpec", "Shape", "get_layer_type", "register", "registry"]
