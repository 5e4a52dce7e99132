"""Export a trained run: ONNX (onnxruntime, any ONNX runtime), pt2 (``torch.export``, no layerforge needed
to load it) or safetensors (weights + spec/transform/labels metadata). See docs/export.md.

``export_run`` is the library behind ``layerforge export``; :data:`NOT_EXPORTABLE` lists the layer types
known not to export, with the reason.
"""
from __future__ import annotations

from .api import ExportCheck, ExportResult, export_run
from .program import FORMATS, NOT_EXPORTABLE

__all__ = ["FORMATS", "NOT_EXPORTABLE", "ExportCheck", "ExportResult", "export_run"]
