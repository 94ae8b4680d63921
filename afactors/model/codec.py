"""The one cattrs converter used for every persistence and wire codec."""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import cattrs
import orjson
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter

from afactors.model.parts import PART_TYPES, Part

T = TypeVar("T")

converter: cattrs.Converter = make_converter(omit_if_default=True)

converter.register_unstructure_hook(bytes, lambda b: base64.b64encode(b).decode("ascii"))
converter.register_structure_hook(bytes, lambda v, _: base64.b64decode(v) if isinstance(v, str) else bytes(v))

_PART_BY_TAG: dict[str, type] = {cls.__attrs_attrs__.type.default: cls for cls in PART_TYPES}  # type: ignore[attr-defined]


for _cls in PART_TYPES:  # keep the "type" tag even though it equals its default
    converter.register_unstructure_hook(
        _cls, make_dict_unstructure_fn(_cls, converter, _cattrs_omit_if_default=True, type=override(omit_if_default=False))
    )


def _structure_part(value: Any, _: Any) -> Part:
    if not isinstance(value, dict):
        raise ValueError(f"a content part must be an object, got {type(value).__name__}")
    tag = value.get("type")
    cls = _PART_BY_TAG.get(tag)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown content part type {tag!r}")
    return converter.structure(value, cls)


converter.register_unstructure_hook(Part, lambda part: converter.unstructure(part, unstructure_as=type(part)))  # type: ignore[arg-type]
converter.register_structure_hook(Part, _structure_part)  # type: ignore[arg-type]


def dumps(obj: Any) -> bytes:
    """Encode any model object to JSON bytes."""
    return orjson.dumps(converter.unstructure(obj))


def loads(data: bytes | str, cls: type[T]) -> T:
    """Decode JSON bytes into `cls`; raises `cattrs` errors on bad shape."""
    return converter.structure(orjson.loads(data), cls)
