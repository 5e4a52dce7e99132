"""The two PyTorch formats.

- ``pt2``: the ``torch.export`` program, saved by ``torch.export.save`` with the metadata as the extra
  file ``layerforge.json``; ``torch.export.load(path).module()`` runs it without layerforge.
- ``safetensors``: the model's ``state_dict`` (keys as in ``lf.build_model(spec)``) with the metadata in
  the file's header (every value a string: JSON, the spec as YAML); :func:`rebuild` makes the model again
  from the file alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExportError

if TYPE_CHECKING:
    from torch import nn
    from torch.export import ExportedProgram

METADATA_FILE = "layerforge.json"  # the pt2 archive's extra file


def save_pt2(program: "ExportedProgram", path: Path, metadata: dict[str, Any]) -> None:
    import torch

    torch.export.save(program, str(path), extra_files={METADATA_FILE: json.dumps(metadata)})


def load_pt2(path: Path) -> tuple["nn.Module", dict[str, Any]]:
    """The saved program as a module, and its metadata."""
    import torch

    extra = {METADATA_FILE: ""}
    program = torch.export.load(str(path), extra_files=extra)
    return program.module(), json.loads(extra[METADATA_FILE] or "{}")


def save_safetensors(model: "nn.Module", path: Path, metadata: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    save_file(tensors, str(path), metadata=header)


def read_safetensors_metadata(path: Path) -> dict[str, Any]:
    """The header metadata of an exported safetensors file (JSON values decoded, the spec as text)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    out: dict[str, Any] = {}
    for k, v in header.items():
        try:
            out[k] = v if k == "spec" else json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def rebuild(path: Path) -> "nn.Module":
    """The model again from an exported safetensors file alone: the spec in its header through the front
    door, then its weights (used by the export check; also what a user does with ``lf.build_model``)."""
    import yaml
    from safetensors.torch import load_file

    from ..build import load, module

    meta = read_safetensors_metadata(path)
    if "spec" not in meta:
        raise ExportError(f"{path} holds no layerforge spec in its metadata", hint="export it with layerforge export")
    spec, graph = load(yaml.safe_load(meta["spec"]), train_rules=False)
    model = module(spec, graph)
    model.load_state_dict(load_file(str(path)))
    return model.eval()
