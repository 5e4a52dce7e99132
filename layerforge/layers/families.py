"""Imports every built-in layer family so their @register decorators run."""
from . import (  # noqa: F401
    activation,
    attention,
    conv,
    dense,
    dropout,
    embedding,
    merge,
    norm,
    pooling,
    recurrent,
    shape,
    sparse_attention,
    transformer,
)
