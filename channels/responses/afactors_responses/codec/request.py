"""Parse and validate a create-response body (R-01..R-14) into what the channel puts in an envelope.

Every refusal is an `ApiError` with the OpenAI envelope fields; `param` names the offending field with the
path syntax OpenAI uses (`input[2].content[0].type`, `tools[0].name`, `metadata`).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from afactors.model import (
    DataPart,
    FunctionCallPart,
    FunctionResultPart,
    Message,
    Part,
    ReasoningPart,
    ResponseTarget,
    TextPart,
    UriPart,
    parse_response_target,
)
from afactors_responses.codec.errors import ApiError, bad_request

DEFAULT_MODEL = "afactors"
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_ID_CHARS = 256
MAX_STRING_FIELD = 512

RESPONSE_ID = re.compile(r"resp_[A-Za-z0-9_-]{1,250}")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DATA_URL = re.compile(r"data:(?P<media>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<payload>.*)", re.DOTALL)

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_IMAGE_DETAILS = frozenset({"low", "high", "auto", "original"})
_TOOL_CHOICES = frozenset({"none", "auto", "required"})
_TRUNCATIONS = frozenset({"auto", "disabled"})
_SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority"})
_REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
_REASONING_SUMMARIES = frozenset({"auto", "concise", "detailed"})
_TEXT_FORMATS = frozenset({"text", "json_object", "json_schema"})
_VERBOSITIES = frozenset({"low", "medium", "high"})


@attrs.frozen
class ItemReference:
    """An `item_reference` input item (or an item given only by `id`), resolved by the transport (`resolve_input`)."""

    id: str
    param: str


InputItem = Message | ItemReference

INCLUDE_ENCRYPTED_REASONING = "reasoning.encrypted_content"
INCLUDABLE = frozenset(
    {
        INCLUDE_ENCRYPTED_REASONING,
        "message.output_text.logprobs",
        "message.input_image.image_url",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
    }
)
"""`include` values the SDK may send; only encrypted reasoning changes what this server renders."""


@attrs.frozen
class CreateRequest:
    """A validated create request.

    `settings` holds the echoed request fields that differ from their defaults (see `response.SETTING_DEFAULTS`);
    they travel as the envelope's options, so the target sees them (`instructions`, `temperature`, `tools`...)
    and the stored record keeps them for rendering later. `follow_identity`: the extension field
    `"session": "identity"` (SDK: `extra_body`) continues the conversation of the user named by
    `safety_identifier` (or `user`), the one they continue on every channel they linked. `response_target`: the
    extension field of the same name (docs/delivery.md): where else the answer is pushed; `"none"` makes the
    response a background one (the caller polls it).
    """

    input: tuple[InputItem, ...]
    model: str = DEFAULT_MODEL
    stream: bool = False
    store: bool = True
    background: bool = False
    previous_response_id: str | None = None
    conversation: str | None = None
    settings: dict[str, Any] = attrs.Factory(dict)
    follow_identity: bool = False
    response_target: ResponseTarget | None = None

    @property
    def messages(self) -> tuple[Message, ...]:
        """The input as messages, once `resolve_input` has replaced the item references."""
        messages = tuple(item for item in self.input if isinstance(item, Message))
        if len(messages) != len(self.input):
            raise ValueError("the input still holds item references: resolve them first")
        return messages


# ---------------------------------------------------------------- small typed readers


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: object) -> ApiError:
    return bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.", param, "invalid_type"
    )


def missing(param: str) -> ApiError:
    return bad_request(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def read_string(value: object, param: str, *, max_chars: int = MAX_STRING_FIELD, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    if not allow_empty and not value:
        raise bad_request(
            f"Invalid '{param}': empty string. Expected a string with at least 1 character.", param, "empty_string"
        )
    if len(value) > max_chars:
        raise bad_request(
            f"Invalid '{param}': string too long. Expected a string with maximum length {max_chars}, but got a string "
            f"with length {len(value)} instead.",
            param,
            "string_above_max_length",
        )
    return value


def read_text(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    return value


def read_bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)
    return value


def read_number(value: object, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_type(param, "a number", value)
    if not low <= value <= high:
        raise bad_request(f"Invalid '{param}': {value} is out of range; expected a value from {low} to {high}.", param)
    return float(value)


def read_integer(value: object, param: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(param, "an integer", value)
    if value < low:
        raise bad_request(
            f"Invalid '{param}': integer below minimum value. Expected a value >= {low}, but got {value} instead.",
            param,
            "integer_below_min_value",
        )
    if high is not None and value > high:
        raise bad_request(
            f"Invalid '{param}': integer above maximum value. Expected a value <= {high}, but got {value} instead.",
            param,
            "integer_above_max_value",
        )
    return value


def read_choice(value: object, param: str, allowed: frozenset[str]) -> str:
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    if value not in allowed:
        raise bad_request(
            f"Invalid value for '{param}': {value!r}. Supported values are: {', '.join(sorted(allowed))}.", param
        )
    return value


def read_object(value: object, param: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def read_list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    return value


# ---------------------------------------------------------------- ids


def parse_response_id(value: object, param: str) -> str:
    """A response id: `resp_` plus letters, digits, `_` or `-`. Malformed ids can never exist, so they are 400s."""
    value = read_string(value, param, max_chars=MAX_ID_CHARS, allow_empty=False)
    if RESPONSE_ID.fullmatch(value) is None:
        raise bad_request(f"Invalid '{param}': '{value}'. Expected an ID that begins with 'resp_'.", param)
    return value


def parse_conversation(value: object) -> str:
    """A conversation id: any caller-chosen string of 1-256 characters without control characters."""
    param = "conversation"
    if isinstance(value, dict):
        if "id" not in value:
            raise missing("conversation.id")
        value, param = value["id"], "conversation.id"
    elif not isinstance(value, str):
        raise invalid_type(param, "a string or an object with an 'id'", value)
    value = read_string(value, param, max_chars=MAX_ID_CHARS, allow_empty=False)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise bad_request(f"Invalid '{param}': control characters are not allowed in a conversation id.", param)
    return value


# ---------------------------------------------------------------- input (R-03..R-05)


def _decode_base64(payload: str, param: str, code: str = "invalid_value") -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"Invalid '{param}': not valid base64 data.", param, code) from None


def parse_data_url(url: str, param: str) -> tuple[bytes, str]:
    """The bytes and media type of a `data:` URL (base64 or percent-free plain text)."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise bad_request(f"Invalid '{param}': malformed data URL.", param)
    media = match["media"] or "text/plain"
    if ";base64" in match["params"]:
        return _decode_base64(match["payload"], param), media
    return match["payload"].encode(), media


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _image_part(part: Mapping[str, Any], param: str) -> Part:
    if "detail" in part and part["detail"] is not None:
        read_choice(part["detail"], f"{param}.detail", _IMAGE_DETAILS)
    url, file_id = part.get("image_url"), part.get("file_id")
    if (url is None) == (file_id is None):
        raise bad_request(f"Invalid '{param}': give exactly one of 'image_url' or 'file_id'.", param)
    if file_id is not None:
        return UriPart(read_string(file_id, f"{param}.file_id", max_chars=MAX_ID_CHARS, allow_empty=False), "image/*")
    url = read_text(url, f"{param}.image_url")
    if url.startswith("data:"):
        data, media = parse_data_url(url, f"{param}.image_url")
        if not media.startswith("image/"):
            raise bad_request(
                f"Invalid '{param}.image_url': expected an image data URL, got {media!r}.", f"{param}.image_url"
            )
        return DataPart(data, media)
    if not _is_url(url):
        raise bad_request(f"Invalid '{param}.image_url': expected an http(s) or data URL.", f"{param}.image_url")
    return UriPart(url, "image/*")


def _file_part(part: Mapping[str, Any], param: str) -> Part:
    name = part.get("filename")
    if name is not None:
        name = read_string(name, f"{param}.filename", allow_empty=False)
    guessed = (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream"
    sources = [key for key in ("file_data", "file_url", "file_id") if part.get(key) is not None]
    if len(sources) != 1:
        raise bad_request(f"Invalid '{param}': give exactly one of 'file_data', 'file_url' or 'file_id'.", param)
    key = sources[0]
    value = read_text(part[key], f"{param}.{key}")
    if key == "file_data":
        if value.startswith("data:"):
            data, media = parse_data_url(value, f"{param}.file_data")
            return DataPart(data, media, name)
        return DataPart(_decode_base64(value, f"{param}.file_data"), guessed, name)
    if key == "file_url" and not _is_url(value):
        raise bad_request(f"Invalid '{param}.file_url': expected an http(s) URL.", f"{param}.file_url")
    if key == "file_id" and not value:
        raise bad_request(f"Invalid '{param}.file_id': empty string.", f"{param}.file_id", "empty_string")
    return UriPart(value, guessed, name)


def _content_part(part: object, param: str, kinds: frozenset[str]) -> Part:
    part = read_object(part, param)
    kind = part.get("type")
    if kind not in kinds:
        raise bad_request(
            f"Invalid value for '{param}.type': {kind!r}. Supported values are: {', '.join(sorted(kinds))}.",
            f"{param}.type",
        )
    if kind in ("input_text", "output_text", "refusal"):
        key = "refusal" if kind == "refusal" else "text"
        if key not in part:
            raise missing(f"{param}.{key}")
        return TextPart(read_text(part[key], f"{param}.{key}"))
    if kind == "input_image":
        return _image_part(part, param)
    return _file_part(part, param)


_MESSAGE_PARTS = frozenset({"input_text", "output_text", "refusal", "input_image", "input_file"})
_OUTPUT_PARTS = frozenset({"input_text", "input_image", "input_file"})


def _content(value: object, param: str, kinds: frozenset[str]) -> tuple[Part, ...]:
    if isinstance(value, str):
        return (TextPart(value),)
    parts = read_list(value, param)
    return tuple(_content_part(part, f"{param}[{j}]", kinds) for j, part in enumerate(parts))


def _message_item(item: Mapping[str, Any], param: str) -> Message:
    if "role" not in item:
        raise missing(f"{param}.role")
    role = item["role"]
    if not isinstance(role, str) or role not in _ROLES:
        raise bad_request(
            f"Invalid value for '{param}.role': {role!r}. Supported values are: assistant, developer, system, user.",
            f"{param}.role",
        )
    if "content" not in item:
        raise missing(f"{param}.content")
    return Message(_ROLES[role], _content(item["content"], f"{param}.content", _MESSAGE_PARTS))  # type: ignore[arg-type]


def _call_id(item: Mapping[str, Any], param: str) -> str:
    if "call_id" not in item:
        raise missing(f"{param}.call_id")
    return read_string(item["call_id"], f"{param}.call_id", max_chars=MAX_ID_CHARS, allow_empty=False)


def _function_call_output_item(item: Mapping[str, Any], param: str) -> Message:
    call_id = _call_id(item, param)
    if "output" not in item:
        raise missing(f"{param}.output")
    parts = _content(item["output"], f"{param}.output", _OUTPUT_PARTS)
    text = "".join(p.text for p in parts if isinstance(p, TextPart))
    rest = tuple(p for p in parts if not isinstance(p, TextPart))
    return Message("tool", (FunctionResultPart(call_id, text), *rest))


def _function_call_item(item: Mapping[str, Any], param: str) -> Message:
    call_id = _call_id(item, param)
    for key in ("name", "arguments"):
        if key not in item:
            raise missing(f"{param}.{key}")
    name = read_string(item["name"], f"{param}.name", allow_empty=False)
    return Message("assistant", (FunctionCallPart(call_id, name, read_text(item["arguments"], f"{param}.arguments")),))


def _reasoning_item(item: Mapping[str, Any], param: str) -> Message:
    """A reasoning item sent back: its summary (or else its reasoning text) and its opaque `encrypted_content`."""
    if "summary" not in item:
        raise missing(f"{param}.summary")
    summary = read_list(item["summary"], f"{param}.summary")
    texts = [_summary_text(entry, f"{param}.summary[{j}]", "summary_text") for j, entry in enumerate(summary)]
    if not texts and item.get("content") is not None:
        content = read_list(item["content"], f"{param}.content")
        texts = [_summary_text(entry, f"{param}.content[{j}]", "reasoning_text") for j, entry in enumerate(content)]
    encrypted = item.get("encrypted_content")
    if encrypted is not None:
        encrypted = read_text(encrypted, f"{param}.encrypted_content")
    return Message("assistant", (ReasoningPart("\n\n".join(texts), encrypted),))


def _summary_text(entry: object, param: str, kind: str) -> str:
    entry = read_object(entry, param)
    if entry.get("type") != kind:
        raise bad_request(
            f"Invalid value for '{param}.type': {entry.get('type')!r}. Expected '{kind}'.", f"{param}.type"
        )
    if "text" not in entry:
        raise missing(f"{param}.text")
    return read_text(entry["text"], f"{param}.text")


def _item_reference(item: Mapping[str, Any], param: str) -> ItemReference:
    if "id" not in item:
        raise missing(f"{param}.id")
    return ItemReference(read_string(item["id"], f"{param}.id", max_chars=MAX_ID_CHARS, allow_empty=False), param)


def _untyped_item(item: Mapping[str, Any], param: str) -> InputItem:
    """An item without `type`: a message (it has a `role`) or else an item reference (it has an `id`)."""
    if "role" not in item and "id" in item:
        return _item_reference(item, param)
    return _message_item(item, param)


_ITEM_PARSERS: dict[str | None, Callable[[Mapping[str, Any], str], InputItem]] = {
    None: _untyped_item,
    "message": _message_item,
    "function_call_output": _function_call_output_item,
    "function_call": _function_call_item,
    "reasoning": _reasoning_item,
    "item_reference": _item_reference,
}
ITEM_TYPES = ", ".join(sorted(kind for kind in _ITEM_PARSERS if kind is not None))


def parse_item(item: object, param: str) -> InputItem:
    """One input item (every type in `ITEM_TYPES`); other types, such as hosted tool calls, are a 400."""
    item = read_object(item, param)
    kind = item.get("type")
    parser = _ITEM_PARSERS.get(kind) if kind is None or isinstance(kind, str) else None
    if parser is None:
        raise bad_request(
            f"Invalid value for '{param}.type': {kind!r}. Supported values are: {ITEM_TYPES} (this server runs no "
            "hosted tools, so their call items cannot be input).",
            f"{param}.type",
        )
    return parser(item, param)


def parse_items(value: object, param: str) -> tuple[InputItem, ...]:
    """A non-empty array of input items."""
    items = read_list(value, param)
    if not items:
        raise bad_request(f"Invalid '{param}': empty array. Expected at least one item.", param, "empty_array")
    return tuple(parse_item(item, f"{param}[{i}]") for i, item in enumerate(items))


def parse_input(value: object) -> tuple[InputItem, ...]:
    """`input` as a string (one user message) or a list of input items."""
    if isinstance(value, str):
        return (Message("user", value),)
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array of input items", value)
    return parse_items(value, "input")


def resolve_input(items: tuple[InputItem, ...], lookup: Callable[[str], Message | None]) -> tuple[Message, ...]:
    """Replace item references by the messages `lookup` finds for their ids; an unknown id is a 400."""
    messages = []
    for item in items:
        if isinstance(item, ItemReference):
            found = lookup(item.id)
            if found is None:
                raise bad_request(f"Item with id '{item.id}' not found.", f"{item.param}.id", "item_not_found")
            item = found
        messages.append(item)
    return tuple(messages)


def parse_include(value: object) -> list[str]:
    """`include`: known values only (see `INCLUDABLE`)."""
    values = read_list(value, "include")
    for i, entry in enumerate(values):
        read_choice(entry, f"include[{i}]", INCLUDABLE)
    return list(dict.fromkeys(values))


# ---------------------------------------------------------------- echoed settings


def parse_metadata(value: object) -> dict[str, str]:
    """At most 16 string pairs; keys up to 64 characters, values up to 512 (R-11)."""
    pairs = read_object(value, "metadata")
    if len(pairs) > MAX_METADATA_PAIRS:
        raise bad_request(
            f"Invalid 'metadata': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(pairs)} properties instead.",
            "metadata",
            "object_above_max_properties",
        )
    for key, item in pairs.items():
        if len(key) > MAX_METADATA_KEY:
            raise bad_request(
                f"Invalid 'metadata': key {key[:20]!r}... is longer than {MAX_METADATA_KEY} characters.",
                "metadata",
                "string_above_max_length",
            )
        read_string(item, f"metadata.{key}", max_chars=MAX_METADATA_VALUE)
    return dict(pairs)


def _function_tool(tool: object, param: str) -> dict[str, Any]:
    tool = read_object(tool, param)
    kind = tool.get("type")
    if kind != "function":
        raise bad_request(
            f"Invalid value for '{param}.type': {kind!r}. This server supports only function tools ('function').",
            f"{param}.type",
            "unsupported_value",
        )
    return function_tool(tool, param)


def function_tool(fields: Mapping[str, Any], param: str) -> dict[str, Any]:
    """A function tool's `name`, `description`, `parameters`, `strict` (found at `param`), normalised to
    `{type, name, description, parameters, strict}`: the shape targets see in `options["tools"]`."""
    if "name" not in fields:
        raise missing(f"{param}.name")
    name = fields["name"]
    if not isinstance(name, str) or _TOOL_NAME.fullmatch(name) is None:
        raise bad_request(
            f"Invalid '{param}.name': expected 1-64 letters, digits, '_' or '-'.", f"{param}.name", "invalid_value"
        )
    out: dict[str, Any] = {"type": "function", "name": name, "description": None, "parameters": None, "strict": None}
    if fields.get("description") is not None:
        out["description"] = read_text(fields["description"], f"{param}.description")
    if fields.get("parameters") is not None:
        out["parameters"] = dict(read_object(fields["parameters"], f"{param}.parameters"))
    if fields.get("strict") is not None:
        out["strict"] = read_bool(fields["strict"], f"{param}.strict")
    return out


def parse_tools(value: object) -> list[dict[str, Any]]:
    """Function tools only, normalised to `{type, name, description, parameters, strict}` (R-12)."""
    tools = [_function_tool(tool, f"tools[{i}]") for i, tool in enumerate(read_list(value, "tools"))]
    names = [tool["name"] for tool in tools]
    if len(set(names)) != len(names):
        raise bad_request("Invalid 'tools': function names must be unique.", "tools")
    return tools


def parse_tool_choice(value: object, tools: list[dict[str, Any]]) -> str | dict[str, Any]:
    """`none` / `auto` / `required`, or `{"type": "function", "name"}` naming one of `tools`."""
    if isinstance(value, str):
        return read_choice(value, "tool_choice", _TOOL_CHOICES)
    choice = read_object(value, "tool_choice")
    if choice.get("type") != "function":
        raise bad_request(
            "Invalid 'tool_choice': only {'type': 'function', 'name': ...} objects are supported.", "tool_choice.type"
        )
    name = choice.get("name")
    if name not in {tool["name"] for tool in tools}:
        raise bad_request(f"Invalid 'tool_choice': no function tool named {name!r} in 'tools'.", "tool_choice.name")
    return {"type": "function", "name": name}


def parse_text(value: object) -> dict[str, Any]:
    """The text config: `format` of type text / json_object / json_schema (with `name` and `schema`), `verbosity`."""
    text = read_object(value, "text")
    out: dict[str, Any] = {"format": {"type": "text"}}
    if text.get("format") is not None:
        fmt = read_object(text["format"], "text.format")
        kind = read_choice(fmt.get("type"), "text.format.type", _TEXT_FORMATS)
        if kind == "json_schema":
            for key in ("name", "schema"):
                if fmt.get(key) is None:
                    raise missing(f"text.format.{key}")
            name = read_string(fmt["name"], "text.format.name", max_chars=64, allow_empty=False)
            schema = read_object(fmt["schema"], "text.format.schema")
            out["format"] = {"type": kind, "name": name, "schema": dict(schema)}
            if fmt.get("description") is not None:
                out["format"]["description"] = read_text(fmt["description"], "text.format.description")
            if fmt.get("strict") is not None:
                out["format"]["strict"] = read_bool(fmt["strict"], "text.format.strict")
        else:
            out["format"] = {"type": kind}
    if text.get("verbosity") is not None:
        out["verbosity"] = read_choice(text["verbosity"], "text.verbosity", _VERBOSITIES)
    return out


def parse_reasoning(value: object) -> dict[str, Any]:
    reasoning = read_object(value, "reasoning")
    out: dict[str, Any] = {"effort": None, "summary": None}
    if reasoning.get("effort") is not None:
        out["effort"] = read_choice(reasoning["effort"], "reasoning.effort", _REASONING_EFFORTS)
    if reasoning.get("summary") is not None:
        out["summary"] = read_choice(reasoning["summary"], "reasoning.summary", _REASONING_SUMMARIES)
    return out


_SETTINGS: dict[str, Callable[[object], Any]] = {
    "instructions": lambda v: read_text(v, "instructions"),
    "metadata": parse_metadata,
    "parallel_tool_calls": lambda v: read_bool(v, "parallel_tool_calls"),
    "temperature": lambda v: read_number(v, "temperature", 0.0, 2.0),
    "top_p": lambda v: read_number(v, "top_p", 0.0, 1.0),
    "presence_penalty": lambda v: read_number(v, "presence_penalty", -2.0, 2.0),
    "frequency_penalty": lambda v: read_number(v, "frequency_penalty", -2.0, 2.0),
    "top_logprobs": lambda v: read_integer(v, "top_logprobs", 0, 20),
    "max_output_tokens": lambda v: read_integer(v, "max_output_tokens", 1),
    "max_tool_calls": lambda v: read_integer(v, "max_tool_calls", 1),
    "text": parse_text,
    "truncation": lambda v: read_choice(v, "truncation", _TRUNCATIONS),
    "reasoning": parse_reasoning,
    "user": lambda v: read_string(v, "user"),
    "safety_identifier": lambda v: read_string(v, "safety_identifier", max_chars=64),
    "prompt_cache_key": lambda v: read_string(v, "prompt_cache_key"),
    "service_tier": lambda v: read_choice(v, "service_tier", _SERVICE_TIERS),
    "include": parse_include,
}
"""Echoed fields with one reader each; `null` means "not given". `tools` and `tool_choice` depend on each other."""


_SESSIONS = frozenset({"request", "identity"})


def parse_session(value: object, settings: Mapping[str, Any], chained: bool) -> bool:
    """The `session` extension: `"identity"` follows the user's own conversation (True), `"request"` (default) the
    request's own chain. `"identity"` needs a user (`safety_identifier` or `user`) and no other chain."""
    if value is None or read_choice(value, "session", _SESSIONS) == "request":
        return False
    if chained:
        raise bad_request("'session': 'identity' cannot be combined with 'previous_response_id' or 'conversation'.",
                          "session")  # fmt: skip
    if settings.get("safety_identifier") is None and settings.get("user") is None:
        raise bad_request("'session': 'identity' needs the user: set 'safety_identifier' (or 'user').", "session")
    return True


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    return default if value is None else read_bool(value, key)


def parse_target(value: object) -> ResponseTarget:
    """The `response_target` extension field (`afactors.model.parse_response_target`); a bad one is a 400."""
    try:
        return parse_response_target(value)
    except ValueError as error:
        raise bad_request(str(error), "response_target") from None


def parse_create(body: object) -> CreateRequest:
    """Validate a decoded JSON body; unknown fields are ignored (R-14)."""
    if not isinstance(body, dict):
        raise ApiError(400, f"The request body must be a JSON object, got {_json_type(body)}.", code="invalid_type")
    if "input" not in body:
        raise missing("input")
    messages = parse_input(body["input"])
    model = DEFAULT_MODEL if body.get("model") is None else read_string(body["model"], "model", allow_empty=False)
    settings = {key: read(body[key]) for key, read in _SETTINGS.items() if body.get(key) is not None}
    tools = parse_tools(body["tools"]) if body.get("tools") is not None else []
    if tools:
        settings["tools"] = tools
    if body.get("tool_choice") is not None:
        settings["tool_choice"] = parse_tool_choice(body["tool_choice"], tools)
    stream, store, background = (
        _flag(body, "stream", False),
        _flag(body, "store", True),
        _flag(body, "background", False),
    )
    if background and not store:
        raise bad_request("Background responses must be stored: 'background': true needs 'store': true.", "background")
    previous = body.get("previous_response_id")
    conversation = body.get("conversation")
    if previous is not None and conversation is not None:
        raise bad_request("'previous_response_id' and 'conversation' cannot be used together.", "conversation", None)
    follow = parse_session(body.get("session"), settings, previous is not None or conversation is not None)
    target = None if body.get("response_target") is None else parse_target(body["response_target"])
    if target is not None and target.kind == "none":
        if not store:
            raise bad_request("'response_target': 'none' answers in the background, which needs 'store': true.",
                              "response_target")  # fmt: skip
        background = True
    return CreateRequest(
        input=messages,
        model=model,
        stream=stream,
        store=store,
        background=background,
        previous_response_id=None if previous is None else parse_response_id(previous, "previous_response_id"),
        conversation=None if conversation is None else parse_conversation(conversation),
        settings=settings,
        follow_identity=follow,
        response_target=target,
    )
