"""The JSON Schema of a spec, generated from the same pydantic models that validate it."""
from __future__ import annotations

from typing import Any

from ..layers.registry import registry
from .blocks import block_use_schema
from .schema import Spec


def spec_json_schema() -> dict[str, Any]:
    """Spec schema with ``model.layers`` items as a ``oneOf`` over every registered layer type,
    discriminated by ``type`` (editors then complete each layer's parameters)."""
    schema = Spec.model_json_schema()
    defs = schema.setdefault("$defs", {})
    variants = []
    for name, cls in registry().items():
        sub = cls.model_json_schema()
        for k, v in sub.pop("$defs", {}).items():
            defs.setdefault(k, v)
        sub["properties"]["type"] = {"const": name, "description": cls.summary}
        sub["required"] = sorted(set(sub.get("required", [])) | {"type"})
        sub["title"] = name
        key = f"layer_{name}"
        defs[key] = sub
        variants.append({"$ref": f"#/$defs/{key}"})
    layers = defs["ModelSpec"]["properties"]["layers"]
    layers["items"] = {"oneOf": [*variants, block_use_schema()]}
    block_layers = {"type": "array", "items": {"oneOf": variants}}
    defs["ModelSpec"]["properties"]["blocks"] = {
        "type": "object", "description": defs["ModelSpec"]["properties"]["blocks"].get("description"),
        "additionalProperties": {"anyOf": [block_layers, {
            "type": "object", "additionalProperties": False, "required": ["layers"],
            "properties": {"layers": block_layers, "repeat": {"type": "integer", "minimum": 1}}}]}}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "layerforge spec"
    return schema
