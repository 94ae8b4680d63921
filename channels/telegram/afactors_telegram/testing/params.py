"""Request decoding for the Bot API: JSON, urlencoded and multipart bodies into typed parameters.

Pure. Telegram accepts every parameter either as a JSON value or as a string (form fields, query string);
objects and arrays then arrive JSON-encoded. :class:`Params` hides the difference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs

from afactors_telegram.testing.errors import ApiError, bad_request


@attrs.frozen
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@attrs.frozen
class Params:
    """A method's parameters, with typed accessors that raise Telegram-style 400s."""

    values: Mapping[str, Any]
    files: Mapping[str, Upload] = attrs.field(factory=dict)

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "")

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, (dict, list)):
            raise bad_request(f'field "{name}" must be of type String')  # [?] our wording
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad_request(f"invalid {name} specified")  # [?] our wording

    def number(self, name: str, default: float) -> float:
        """A non-integer number; the fake accepts fractions where Telegram wants whole seconds."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None  # [?] our wording

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def json(self, name: str) -> Any:
        """An object or array parameter, given natively (JSON body) or JSON-encoded (forms)."""
        value = self.values.get(name)
        if isinstance(value, str):
            if value == "":
                return None
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value

    def chat_id(self) -> int | str:
        """``chat_id``: an integer id or ``@username``; missing gives Telegram's 400."""
        value = self.values.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        if isinstance(value, (bool, dict, list, float)):
            raise bad_request("chat not found")
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            return text


CONTENT_JSON = "application/json"
CONTENT_FORM = "application/x-www-form-urlencoded"
CONTENT_MULTIPART = "multipart/form-data"


def _split_content_type(header: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = header.partition(";")
    options: dict[str, str] = {}
    for item in rest.split(";"):
        key, sep, value = item.strip().partition("=")
        if sep:
            options[key.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), options


def decode_body(content_type: str, body: bytes, query: str = "") -> Params:
    """Decode a request body (and query string) into :class:`Params`, or raise a 400."""
    values: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    files: dict[str, Upload] = {}
    kind, options = _split_content_type(content_type)
    if not body.strip():
        return Params(values)
    if kind == CONTENT_JSON:
        try:
            decoded = json.loads(body)
        except ValueError:
            raise bad_request("can't parse JSON object") from None  # [?] our wording
        if not isinstance(decoded, dict):
            raise bad_request("can't parse JSON object")  # [?] our wording
        values.update(decoded)
    elif kind == CONTENT_FORM:
        try:
            values.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise bad_request("can't decode form data as UTF-8") from None  # [?] our wording
    elif kind == CONTENT_MULTIPART:
        boundary = options.get("boundary")
        if not boundary:
            raise bad_request("multipart boundary is missing")  # [?] our wording
        for name, filename, part_type, data in parse_multipart(body, boundary):
            if filename is None:
                try:
                    values[name] = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise bad_request(f"can't decode field {name} as UTF-8") from None  # [?]
            else:
                files[name] = Upload(filename, part_type, data)
    else:
        raise ApiError(400, f"Bad Request: unsupported Content-Type {kind!r}")  # [?] our wording
    return Params(values, files)


def parse_multipart(body: bytes, boundary: str) -> list[tuple[str, str | None, str, bytes]]:
    """Split a multipart/form-data body into (name, filename or None, content type, data) parts."""
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise bad_request("can't parse multipart/form-data body")  # [?] our wording
    parts: list[tuple[str, str | None, str, bytes]] = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n"):
            raise bad_request("can't parse multipart/form-data body")  # [?] our wording
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        if not sep or not data.endswith(b"\r\n"):
            raise bad_request("can't parse multipart/form-data body")  # [?] our wording
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition, options = _split_content_type(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in options:
            raise bad_request("can't parse multipart/form-data body")  # [?] our wording
        filename = options.get("filename")
        part_type = headers.get("content-type", "application/octet-stream")
        parts.append((options["name"], filename, part_type, data[:-2]))
    return parts
