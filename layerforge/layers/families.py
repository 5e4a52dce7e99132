"""Imports every built-in layer family so their @register decorators run."""
from . import (  # noqa: F401
    activation,
    attention,
    conv,
    dense,
    dropout,
    embedding,
    masking,
    merge,
    norm,
    pooling,
    quantum,
    recurrent,
    shape,
    sparse_attention,
    spiking,
    tensor_train,
)
