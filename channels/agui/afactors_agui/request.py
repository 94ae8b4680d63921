"""`RunAgentInput` -> `RunRequest`: the AG-UI request body as a turn's input and options (pure, no I/O).

Both AG-UI wire generations are read: `ag-ui-protocol` 0.1.x (what Agent Framework's AG-UI integration and
CopilotKit's `@ag-ui/client` 0.0.x speak) and 1.0 (`protocolVersion`, optional `tools`/`context`, media parts
with a `file` source). Field names are camelCase on the wire; the snake_case spelling is accepted too, as the
reference pydantic models accept it (Agent Framework's `AGUIChatClient` sends `thread_id`, `run_id` and
`tool_calls`). Where both spellings are present the camelCase one wins. Unknown fields are ignored (the schema
keeps them open).

History: the conversation actor keeps the thread's history, and front-ends re-send their whole message list on
every run. So the turn's input is only the messages after the last assistant message (the new user message, or
the results of front-end tool calls); the earlier ones are the client's copy of what the thread already holds.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from afactors.model import DataPart, FunctionCallPart, FunctionResultPart, Message, Part, TextPart, UriPart

MAX_ID_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONVERSATION_ROLES = frozenset({"developer", "system", "assistant", "user", "tool"})
_UI_ONLY_ROLES = frozenset({"activity", "reasoning"})  # shown by the front-end, never input to the agent
_MEDIA_TYPES = frozenset({"image", "audio", "video", "document"})
_DEFAULT_MEDIA_TYPE = "application/octet-stream"
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number"}


class AguiError(Exception):
    """A refused request: an HTTP status and the JSON body `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def invalid(message: str) -> AguiError:
    """A 400 for a body that is not a valid `RunAgentInput`."""
    return AguiError(400, "invalid_request", message)


@attrs.frozen
class RunRequest:
    """One parsed `RunAgentInput`.

    `input`: the turn's new messages (see the module docstring); empty when the client sent nothing new.
    `tools` are normalised to the function-tool shape other channels use (`{"type": "function", "name",
    "description", "parameters"}`), `context` to `{"description", "value"}` items. `state` is the client's copy
    of the shared state (None when it sent none), `forwarded_props` passed on untouched.
    """

    thread_id: str
    run_id: str
    input: tuple[Message, ...] = ()
    parent_run_id: str | None = None
    protocol_version: str | None = None
    state: Any = None
    tools: tuple[dict[str, Any], ...] = ()
    context: tuple[dict[str, str], ...] = ()
    forwarded_props: Any = None

    def options(self) -> dict[str, Any]:
        """The envelope options a target sees in `TurnContext.options` (only what the client sent)."""
        options: dict[str, Any] = {"thread_id": self.thread_id, "run_id": self.run_id}
        if self.tools:
            options["tools"] = [dict(tool) for tool in self.tools]
        if self.context:
            options["context"] = [dict(item) for item in self.context]
        if self.state is not None:
            options["client_state"] = self.state
        if self.forwarded_props is not None:
            options["forwarded_props"] = self.forwarded_props
        if self.parent_run_id is not None:
            options["parent_run_id"] = self.parent_run_id
        return options


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return "a number" if isinstance(value, float) else _JSON_TYPES.get(type(value), type(value).__name__)


def _get(obj: Mapping[str, Any], camel: str, snake: str | None = None) -> Any:
    """A field by its wire (camelCase) name, else by its snake_case name."""
    if camel in obj:
        return obj[camel]
    return obj.get(snake) if snake is not None else None


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object, got {_json_type(value)}")
    return value


def _array(value: object, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid(f"'{where}' must be an array, got {_json_type(value)}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"'{where}' must be a string, got {_json_type(value)}")
    return value


def _optional_str(value: object, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _id(value: object, where: str) -> str:
    """A thread or run id: 1 to 256 characters without control characters."""
    text = _str(value, where)
    if not text or len(text) > MAX_ID_CHARS or _CONTROL.search(text):
        raise invalid(f"'{where}' must be 1 to {MAX_ID_CHARS} characters without control characters")
    return text


def _optional_id(value: object, where: str) -> str | None:
    return None if value is None else _id(value, where)


def parse_run_input(body: object) -> RunRequest:
    """Validate a decoded `RunAgentInput` and extract the turn; raises `AguiError` (400) naming the bad field."""
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object (a RunAgentInput), got {_json_type(body)}")
    thread_id = _id(_get(body, "threadId", "thread_id"), "threadId")
    run_id = _id(_get(body, "runId", "run_id"), "runId")
    if body.get("messages") is None:
        raise invalid("missing 'messages': send the conversation as an array (it may be empty)")
    messages = [_message(m, f"messages[{i}]") for i, m in enumerate(_array(body["messages"], "messages"))]
    resume = _array(body.get("resume"), "resume")
    if resume:
        raise invalid("'resume' answers interrupts, and this agent never interrupts a run: send new messages instead")
    return RunRequest(
        thread_id=thread_id,
        run_id=run_id,
        input=new_input([m for m in messages if m is not None]),
        parent_run_id=_optional_id(_get(body, "parentRunId", "parent_run_id"), "parentRunId"),
        protocol_version=_optional_str(_get(body, "protocolVersion", "protocol_version"), "protocolVersion"),
        state=body.get("state"),
        tools=_tools(body.get("tools")),
        context=tuple(_context(item, f"context[{i}]") for i, item in enumerate(_array(body.get("context"), "context"))),
        forwarded_props=_get(body, "forwardedProps", "forwarded_props"),
    )


def new_input(messages: Sequence[Message]) -> tuple[Message, ...]:
    """The messages after the last assistant message: what the client added since the thread's last run."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "assistant":
            return tuple(messages[i + 1 :])
    return tuple(messages)


# ---------------------------------------------------------------- messages


def _message(value: object, where: str) -> Message | None:
    """One AG-UI message as a `Message`; None for the UI-only roles (activity, reasoning)."""
    message = _object(value, where)
    role = message.get("role")
    if role in _UI_ONLY_ROLES:
        return None
    if role not in _CONVERSATION_ROLES:
        known = ", ".join(sorted(_CONVERSATION_ROLES | _UI_ONLY_ROLES))
        raise invalid(f"'{where}.role' must be one of {known}, got {role!r}")
    _optional_str(message.get("id"), f"{where}.id")
    name = _optional_str(message.get("name"), f"{where}.name")
    content = message.get("content")
    if role == "user":
        return Message("user", _user_content(content, f"{where}.content"), name=name)
    if role in ("system", "developer"):
        return Message("system", _str(content, f"{where}.content"), name=name)
    if role == "assistant":
        text = _optional_str(content, f"{where}.content")
        calls = _array(_get(message, "toolCalls", "tool_calls"), f"{where}.toolCalls")
        parts: list[Part] = [TextPart(text)] if text else []
        parts.extend(_tool_call(call, f"{where}.toolCalls[{i}]") for i, call in enumerate(calls))
        return Message("assistant", tuple(parts), name=name)
    call_id = _str(_get(message, "toolCallId", "tool_call_id"), f"{where}.toolCallId")
    result = _tool_content(content, f"{where}.content")
    error = _optional_str(message.get("error"), f"{where}.error")
    return Message("tool", (FunctionResultPart(call_id, result or error or ""),))


def _tool_call(value: object, where: str) -> FunctionCallPart:
    call = _object(value, where)
    call_id = _str(call.get("id"), f"{where}.id")
    function = _object(call.get("function"), f"{where}.function")
    name = _str(function.get("name"), f"{where}.function.name")
    arguments = _str(function.get("arguments"), f"{where}.function.arguments")
    return FunctionCallPart(call_id, name, arguments)


def _tool_content(value: object, where: str) -> str:
    """A tool message's content: a string, or (1.0) content parts whose text parts are joined."""
    if isinstance(value, list):
        return "".join(part.text for part in _parts(value, where) if isinstance(part, TextPart))
    return _str(value, where)


def _user_content(value: object, where: str) -> tuple[Part, ...]:
    if isinstance(value, str):
        return (TextPart(value),)
    if not isinstance(value, list):
        raise invalid(f"'{where}' must be a string or an array of content parts, got {_json_type(value)}")
    return _parts(value, where)


def _parts(value: list[Any], where: str) -> tuple[Part, ...]:
    return tuple(_part(part, f"{where}[{i}]") for i, part in enumerate(value))


def _part(value: object, where: str) -> Part:
    """A content part: text, a media part (image, audio, video, document) or the 0.1 `binary` part."""
    part = _object(value, where)
    kind = part.get("type")
    if kind == "text":
        return TextPart(_str(part.get("text"), f"{where}.text"))
    if kind in _MEDIA_TYPES:
        return _source(_object(part.get("source"), f"{where}.source"), f"{where}.source")
    if kind == "binary":
        return _binary(part, where)
    known = ", ".join(["text", *sorted(_MEDIA_TYPES), "binary"])
    raise invalid(f"'{where}.type' must be one of {known}, got {kind!r}")


def _source(source: Mapping[str, Any], where: str) -> Part:
    """A media part's source: inline base64 `data`, a `url`, or (1.0) a provider's `file` id."""
    kind = source.get("type")
    value = _str(source.get("value"), f"{where}.value")
    media_type = _get(source, "mimeType", "mime_type")
    if kind == "data":
        return DataPart(_base64(value, f"{where}.value"), _str(media_type, f"{where}.mimeType"))
    if kind in ("url", "file"):
        return UriPart(value, _optional_str(media_type, f"{where}.mimeType") or _DEFAULT_MEDIA_TYPE)
    raise invalid(f"'{where}.type' must be one of data, url, file, got {kind!r}")


def _binary(part: Mapping[str, Any], where: str) -> Part:
    """The deprecated 0.1 part `{"type": "binary", "mimeType", "data" | "url" | "id", "filename"?}`."""
    media_type = _str(_get(part, "mimeType", "mime_type"), f"{where}.mimeType")
    name = _optional_str(part.get("filename"), f"{where}.filename")
    if (data := _optional_str(part.get("data"), f"{where}.data")) is not None:
        return DataPart(_base64(data, f"{where}.data"), media_type, name=name)
    reference = _optional_str(part.get("url"), f"{where}.url") or _optional_str(part.get("id"), f"{where}.id")
    if not reference:
        raise invalid(f"'{where}' needs one of 'data', 'url' or 'id'")
    return UriPart(reference, media_type, name=name)


def _base64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"'{where}' must be base64") from None


# ---------------------------------------------------------------- tools and context


def _tools(value: object) -> tuple[dict[str, Any], ...]:
    tools: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, item in enumerate(_array(value, "tools")):
        where = f"tools[{i}]"
        tool = _object(item, where)
        name = _str(tool.get("name"), f"{where}.name")
        if not name:
            raise invalid(f"'{where}.name' must not be empty")
        if name in names:
            raise invalid(f"'tools' has two tools named {name!r}: tool names must be unique")
        names.add(name)
        description = _optional_str(tool.get("description"), f"{where}.description") or ""
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise invalid(f"'{where}.parameters' must be a JSON Schema object, got {_json_type(parameters)}")
        normalised: dict[str, Any] = {"type": "function", "name": name, "description": description}
        if parameters is not None:
            normalised["parameters"] = parameters
        tools.append(normalised)
    return tuple(tools)


def _context(value: object, where: str) -> dict[str, str]:
    item = _object(value, where)
    description = _str(item.get("description"), f"{where}.description")
    text = _str(item.get("value"), f"{where}.value")
    return {"description": description, "value": text}
