"""A2A messages and parts (A-04, A-05) <-> afactors content parts; v0.3 <-> v1 spellings of both.

Pure. The channel works on the v1 (proto-JSON) shapes; a v0.3 request is first rewritten into them by the
`*_from_v03` functions and a v1 answer rendered into v0.3 by the `*_to_v03` functions.

| A2A v1 part                          | afactors part                                 |
|--------------------------------------|-----------------------------------------------|
| `{"text"}`                           | `TextPart`                                    |
| `{"raw": base64, "mediaType", ...}`  | `DataPart(bytes, media_type, name=filename)`  |
| `{"url", "mediaType", "filename"}`   | `UriPart(uri, media_type, name)`              |
| `{"data": <JSON>}`                   | `DataPart(JSON bytes, "application/json")`    |
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from typing import Any

import attrs
import orjson

from afactors.model import DataPart, Message, Part, TextPart, UriPart
from afactors_a2a.errors import CONTENT_TYPE_NOT_SUPPORTED, RpcError, invalid_params
from afactors_a2a.fields import Fields

JSON = "application/json"
OCTETS = "application/octet-stream"
ROLES_V1 = {"ROLE_USER": "user", "ROLE_AGENT": "agent"}
ROLES_V03 = {"user": "ROLE_USER", "agent": "ROLE_AGENT"}


@attrs.frozen
class InboundMessage:
    """A client's message, parsed: its ids, its content as afactors parts, and what it asks to continue."""

    message_id: str
    parts: tuple[Part, ...]
    context_id: str | None = None
    task_id: str | None = None
    reference_task_ids: tuple[str, ...] = ()
    metadata: dict[str, Any] | None = None


def accepts(modes: tuple[str, ...], media_type: str) -> bool:
    """Whether `media_type` matches one of `modes` (`image/*` and `*/*` are wildcards; parameters are ignored)."""
    bare = media_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatchcase(bare, mode.split(";", 1)[0].strip().lower()) for mode in modes)


def parse_part(part: Fields, input_modes: tuple[str, ...]) -> Part:
    """One v1 part as an afactors part; -32602 for a malformed part, -32005 for a media type we do not take."""
    kinds = [name for name in ("text", "raw", "url", "data") if name in part.data]
    if len(kinds) != 1:
        raise invalid_params(f"'{part.path}' must have exactly one of text, raw, url or data", part.path)
    kind = kinds[0]
    media_type = part.text("mediaType") or (JSON if kind == "data" else "text/plain" if kind == "text" else OCTETS)
    filename = part.text("filename")
    part.metadata()
    parsed = _part_of_kind(part, kind, media_type, filename)
    if kind != "text" and not accepts(input_modes, media_type):
        raise RpcError(
            CONTENT_TYPE_NOT_SUPPORTED,
            f"Content type {media_type!r} of '{part.path}' is not supported; accepted: {', '.join(input_modes)}",
            metadata={"mediaType": media_type},
        )
    return parsed


def _part_of_kind(part: Fields, kind: str, media_type: str, filename: str | None) -> Part:
    if kind == "text":
        return TextPart(part.text("text", required=True, empty=True) or "")
    if kind == "url":
        return UriPart(part.text("url", required=True) or "", media_type, filename)
    if kind == "data":
        return DataPart(orjson.dumps(part.data["data"]), media_type)
    raw = part.text("raw", required=True, empty=True) or ""
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_params(f"'{part.where('raw')}' must be base64", part.where("raw")) from None
    return DataPart(data, media_type, filename)


def parse_message(message: Fields, input_modes: tuple[str, ...]) -> InboundMessage:
    """A v1 user message (A-04): `messageId` and `parts` required, `role` must be the user's."""
    message_id = message.text("messageId", required=True)
    role = message.text("role")
    if role is not None and role != "ROLE_USER":
        raise invalid_params(f"'{message.where('role')}' must be ROLE_USER for a message sent to an agent", "role")
    items = message.array("parts", required=True)
    if not items:
        raise invalid_params(f"'{message.where('parts')}' must not be empty", message.where("parts"))
    parts = tuple(
        parse_part(Fields(item, f"{message.where('parts')}[{n}]"), input_modes) for n, item in enumerate(items)
    )
    return InboundMessage(
        message_id=message_id or "",
        parts=parts,
        context_id=message.text("contextId"),
        task_id=message.text("taskId"),
        reference_task_ids=message.strings("referenceTaskIds"),
        metadata=message.metadata(),
    )


def render_part(part: Part) -> dict[str, Any] | None:
    """An afactors part as a v1 part; None for parts A2A has no place for (reasoning, tool calls, usage)."""
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, UriPart):
        rendered = {"url": part.uri, "mediaType": part.media_type}
        return rendered if part.name is None else {**rendered, "filename": part.name}
    if isinstance(part, DataPart):
        if part.media_type == JSON and part.name is None:
            try:
                return {"data": orjson.loads(part.data)}
            except orjson.JSONDecodeError:
                pass
        rendered = {"raw": base64.b64encode(part.data).decode("ascii"), "mediaType": part.media_type}
        return rendered if part.name is None else {**rendered, "filename": part.name}
    return None


def render_parts(parts: tuple[Part, ...]) -> list[dict[str, Any]]:
    return [rendered for part in parts if (rendered := render_part(part)) is not None]


def render_message(
    message: Message, message_id: str, context_id: str, task_id: str | None, role: str | None = None
) -> dict[str, Any]:
    """An afactors message as a v1 message; user messages are ROLE_USER, everything else ROLE_AGENT."""
    rendered: dict[str, Any] = {
        "messageId": message_id,
        "contextId": context_id,
        "role": role or ("ROLE_USER" if message.role == "user" else "ROLE_AGENT"),
        "parts": render_parts(message.contents),
    }
    if task_id is not None:
        rendered["taskId"] = task_id
    return rendered


# -- v0.3 spellings ---------------------------------------------------------------------------------------------


def part_from_v03(part: object, path: str) -> dict[str, Any]:
    """A v0.3 part (`kind` text | file | data) rewritten as a v1 part."""
    fields = Fields(part, path)
    kind = fields.text("kind", required=True)
    extra = {"metadata": fields.data["metadata"]} if fields.has("metadata") else {}
    if kind == "text":
        return {"text": fields.data.get("text"), **extra}
    if kind == "data":
        return {"data": fields.obj("data", required=True).data, **extra}  # type: ignore[union-attr]
    if kind != "file":
        raise invalid_params(f"'{fields.where('kind')}' must be text, file or data, got {kind!r}", fields.where("kind"))
    file = fields.obj("file", required=True)
    assert file is not None
    named = {
        key: value for key, value in (("mediaType", file.text("mimeType")), ("filename", file.text("name"))) if value
    }
    if file.has("bytes") == file.has("uri"):
        raise invalid_params(f"'{file.path}' must have exactly one of bytes or uri", file.path)
    if file.has("bytes"):
        return {"raw": file.data["bytes"], **named, **extra}
    return {"url": file.data["uri"], **named, **extra}


def part_to_v03(part: dict[str, Any]) -> dict[str, Any]:
    """A v1 part rendered in v0.3."""
    extra = {"metadata": part["metadata"]} if "metadata" in part else {}
    if "text" in part:
        return {"kind": "text", "text": part["text"], **extra}
    if "data" in part:
        data = part["data"]
        return {"kind": "data", "data": data if isinstance(data, dict) else {"value": data}, **extra}
    file: dict[str, Any] = {"bytes": part["raw"]} if "raw" in part else {"uri": part["url"]}
    if "mediaType" in part:
        file["mimeType"] = part["mediaType"]
    if "filename" in part:
        file["name"] = part["filename"]
    return {"kind": "file", "file": file, **extra}


def message_from_v03(message: object, path: str) -> dict[str, Any]:
    """A v0.3 message rewritten as a v1 message (role names, parts)."""
    fields = Fields(message, path)
    converted = {key: value for key, value in fields.data.items() if key not in ("kind", "role", "parts")}
    role = fields.text("role")
    if role is not None:
        if role not in ROLES_V03:
            raise invalid_params(f"'{fields.where('role')}' must be user or agent, got {role!r}", fields.where("role"))
        converted["role"] = ROLES_V03[role]
    if "parts" in fields.data:
        parts = fields.array("parts")
        converted["parts"] = [part_from_v03(part, f"{fields.where('parts')}[{n}]") for n, part in enumerate(parts)]
    return converted


def message_to_v03(message: dict[str, Any]) -> dict[str, Any]:
    """A v1 message rendered in v0.3 (`kind: "message"`, lower-case roles)."""
    converted = {key: value for key, value in message.items() if key not in ("role", "parts")}
    return {
        **converted,
        "kind": "message",
        "role": ROLES_V1.get(message["role"], "agent"),
        "parts": [part_to_v03(part) for part in message["parts"]],
    }
