"""The built model's ``layers`` container: a flat mapping by layer name over nested submodules.

``nn.ModuleDict`` keys cannot contain '.', but the layers of repeated blocks are named ``enc.3.attn``
(see :mod:`layerforge.spec.blocks`). :func:`layer_dict` registers such a layer as nested submodules
(``enc`` → ``3`` → ``attn``), so its state_dict keys read ``layers.enc.3.attn.weight``, while lookups and
iteration stay flat by the full name: ``model.layers["enc.3.attn"]``, ``model.layers.items()``. Names
without a dot are registered as they are, so the keys of models without blocks do not change.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from torch import nn


@cache
def _layer_dict_class() -> type:
    from torch import nn

    class LayerDict(nn.Module):
        """Layers by full name; dotted names live in nested ModuleDicts."""

        def __init__(self, modules: dict[str, nn.Module]) -> None:
            super().__init__()
            self._by_name: dict[str, nn.Module] = {}
            for name, module in modules.items():
                *parents, last = name.split(".")
                node: nn.Module = self
                for part in parents:
                    if part not in node._modules:
                        node.add_module(part, nn.ModuleDict())
                    node = node._modules[part]  # type: ignore[assignment]
                node.add_module(last, module)
                self._by_name[name] = module

        def __getitem__(self, name: str) -> nn.Module:
            return self._by_name[name]

        def __contains__(self, name: object) -> bool:
            return name in self._by_name

        def __iter__(self) -> Iterator[str]:
            return iter(self._by_name)

        def __len__(self) -> int:
            return len(self._by_name)

        def keys(self):
            return self._by_name.keys()

        def values(self):
            return self._by_name.values()

        def items(self):
            return self._by_name.items()

    return LayerDict


def layer_dict(modules: dict[str, "nn.Module"]) -> "nn.Module":
    """The ``layers`` container of a built model (see the module docstring)."""
    return _layer_dict_class()(modules)
