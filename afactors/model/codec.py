"""The one cattrs converter used for every persistence and wire codec."""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal, TypeVar, get_args, get_origin

import cattrs
import orjson
from cattrs.fns import identity
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter
from cattrs.v import format_exception

from afactors.model.parts import PART_TYPES, Part

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")

converter: cattrs.Converter = make_converter(omit_if_default=True)

converter.register_unstructure_hook(bytes, lambda b: base64.b64encode(b).decode("ascii"))
for _optional in (str | None, int | None, float | None, bool | None):  # as they are: no call per field in a hook
    converter.register_unstructure_hook(_optional, identity)
converter.register_structure_hook(bytes, lambda v, _: base64.b64decode(v) if isinstance(v, str) else bytes(v))

_PART_BY_TAG: dict[str, type] = {
    cls.__attrs_attrs__.type.default: cls  # type: ignore[attr-defined]
    for cls in PART_TYPES
}


for _cls in PART_TYPES:  # keep the "type" tag even though it equals its default
    converter.register_unstructure_hook(
        _cls,
        make_dict_unstructure_fn(_cls, converter, _cattrs_omit_if_default=True, type=override(omit_if_default=False)),
    )


class PartTypeError(ValueError):
    """A content part that is not an object or has an unknown `type` tag."""


def _structure_part(value: Any, _: Any) -> Part:
    if not isinstance(value, dict):
        raise PartTypeError(f"a content part must be an object, not {type(value).__name__}")
    tag = value.get("type")
    cls = _PART_BY_TAG.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise PartTypeError(f"unknown content part type {tag!r} (known: {', '.join(_PART_BY_TAG)})")
    return converter.structure(value, cls)


_PART_HOOKS: dict[type, Callable[[Any], Any]] = {cls: converter.get_unstructure_hook(cls) for cls in PART_TYPES}


def _unstructure_part(part: Part) -> Any:
    hook = _PART_HOOKS.get(type(part))
    return converter.unstructure(part, unstructure_as=type(part)) if hook is None else hook(part)


def _is_homogeneous_tuple(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


_shared: ContextVar[dict[int, tuple[tuple[Any, ...], list[Any]]] | None] = ContextVar("afactors_shared", default=None)


def sharing(call: Callable[[A], R], arg: A) -> R:
    """`call(arg)`, inside which (in this thread) a tuple unstructured more than once (a turn's messages, which
    its turn record and its response record both hold) is unstructured once: later calls get the same list. Only
    for a caller that encodes the results at once and never changes them (the store's commit encoder)."""
    token = _shared.set({})
    try:
        return call(arg)
    finally:
        _shared.reset(token)


def _homogeneous_tuple_hook(type_: Any) -> Callable[[tuple[Any, ...]], list[Any]]:
    """`tuple[X, ...]` unstructures to a list, as cattrs' own hook does, with X's hook looked up once (a list
    comprehension instead of cattrs' generator: messages and parts are encoded on every commit). Content parts go
    straight to their class's hook; tuples of anything else are unstructured once per tuple inside `sharing` (a
    message's parts need no memo of their own: the tuple of messages holding them has one)."""
    item_type = get_args(type_)[0]
    if item_type is Part:
        hooks = _PART_HOOKS
        other: Callable[[Any], Any] = _unstructure_part  # (a part of a subclass)

        def parts(values: tuple[Any, ...]) -> list[Any]:
            return [hooks.get(type(value), other)(value) for value in values]

        return parts
    item = converter.get_unstructure_hook(item_type)

    def unstructure(values: tuple[Any, ...]) -> list[Any]:
        memo = _shared.get()
        if memo is None:
            return [item(value) for value in values]
        done = memo.get(id(values))
        if done is None or done[0] is not values:  # (the memo keeps `values` alive: its id is not reused)
            done = memo[id(values)] = (values, [item(value) for value in values])
        return done[1]

    return unstructure


converter.register_unstructure_hook(Part, _unstructure_part)
converter.register_structure_hook(Part, _structure_part)
converter.register_unstructure_hook_factory(_is_homogeneous_tuple, _homogeneous_tuple_hook)


def dumps(obj: Any) -> bytes:
    """Encode any model object to JSON bytes."""
    return orjson.dumps(converter.unstructure(obj))


def loads(data: bytes | str, cls: type[T]) -> T:
    """Decode JSON bytes into `cls`; raises `cattrs` errors on bad shape (see `describe_error`)."""
    return converter.structure(orjson.loads(data), cls)


def _literal_values(type_: Any) -> tuple[Any, ...]:
    """The allowed values of a `Literal` type, also inside an Optional (empty for other types)."""
    if get_origin(type_) is Literal:
        return get_args(type_)
    return tuple(value for member in get_args(type_) if get_origin(member) is Literal for value in get_args(member))


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, PartTypeError):
        return str(exc)
    allowed = _literal_values(type_)
    if allowed and not isinstance(exc, KeyError):
        return f"invalid value, expected one of {', '.join(repr(value) for value in allowed)}"
    return format_exception(exc, type_)


def describe_error(exc: BaseException) -> str:
    """A one-line, user-facing account of a structuring error: each problem with its `$.path`."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, format_exception=_format_exception))
    return f"{type(exc).__name__}: {exc}"
