"""The Chat Completions wire as pure functions: request parsing, the completion object, stream chunks, errors.

Shapes follow `openai` 3.54.0's `ChatCompletion` and `ChatCompletionChunk`, which the SDK validates in strict mode.
Field readers, data URLs and the error envelope (`ApiError`) are the Responses codec's: one OpenAI wire, one set of
validation messages. Nothing here does I/O; `transport.py` calls these with what it read from the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson

from afactors.model import (
    DataPart,
    FunctionCallPart,
    FunctionResultPart,
    Message,
    Part,
    Reply,
    TextPart,
    UriPart,
    UsagePart,
)
from afactors_responses.codec import ApiError
from afactors_responses.codec.errors import bad_request
from afactors_responses.codec.request import (
    function_tool,
    invalid_type,
    missing,
    parse_data_url,
    read_bool,
    read_integer,
    read_list,
    read_number,
    read_object,
    read_text,
)

DEFAULT_MODEL = "afactors"
MAX_ID_CHARS = 256
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


@attrs.frozen
class ChatRequest:
    """A validated chat completion request. `options` reach the target as the turn's options."""

    messages: tuple[Message, ...]
    model: str = DEFAULT_MODEL
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    options: dict[str, Any] = attrs.Factory(dict)


# ---------------------------------------------------------------- messages


def _image(part: Mapping[str, Any], param: str) -> Part:
    image = read_object(part.get("image_url"), f"{param}.image_url")
    if "url" not in image:
        raise missing(f"{param}.image_url.url")
    url = read_text(image["url"], f"{param}.image_url.url")
    if url.startswith("data:"):
        data, media = parse_data_url(url, f"{param}.image_url.url")
        return DataPart(data, media)
    if not url.startswith(("http://", "https://")):
        raise bad_request(
            f"Invalid '{param}.image_url.url': expected an http(s) or data URL.", f"{param}.image_url.url"
        )
    return UriPart(url, "image/*")


def _content(value: object, param: str, role: str) -> tuple[Part, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (TextPart(value),)
    parts: list[Part] = []
    for j, raw in enumerate(read_list(value, param)):
        part = read_object(raw, f"{param}[{j}]")
        kind = part.get("type")
        allowed = ("text", "refusal") if role == "assistant" else ("text", "image_url") if role == "user" else ("text",)
        if kind not in allowed:
            raise bad_request(
                f"Invalid value for '{param}[{j}].type': {kind!r}. Supported values are: {', '.join(allowed)}.",
                f"{param}[{j}].type",
            )
        if kind == "image_url":
            parts.append(_image(part, f"{param}[{j}]"))
            continue
        key = "refusal" if kind == "refusal" else "text"
        if key not in part:
            raise missing(f"{param}[{j}].{key}")
        parts.append(TextPart(read_text(part[key], f"{param}[{j}].{key}")))
    return tuple(parts)


def _tool_calls(value: object, param: str) -> tuple[Part, ...]:
    calls: list[Part] = []
    for j, raw in enumerate(read_list(value, param)):
        call = read_object(raw, f"{param}[{j}]")
        if call.get("type", "function") != "function":
            raise bad_request(
                f"Invalid value for '{param}[{j}].type': only 'function' tool calls are supported.",
                f"{param}[{j}].type",
            )
        for key in ("id", "function"):
            if key not in call:
                raise missing(f"{param}[{j}].{key}")
        function = read_object(call["function"], f"{param}[{j}].function")
        for key in ("name", "arguments"):
            if key not in function:
                raise missing(f"{param}[{j}].function.{key}")
        calls.append(
            FunctionCallPart(
                read_text(call["id"], f"{param}[{j}].id"),
                read_text(function["name"], f"{param}[{j}].function.name"),
                read_text(function["arguments"], f"{param}[{j}].function.arguments"),
            )
        )
    return tuple(calls)


def parse_message(raw: object, param: str) -> Message:
    """One chat message: system/developer (as system), user, assistant (with `tool_calls`), tool (a result)."""
    message = read_object(raw, param)
    if "role" not in message:
        raise missing(f"{param}.role")
    role = message["role"]
    if role not in _ROLES:
        raise bad_request(
            f"Invalid value for '{param}.role': {role!r}. Supported values are: {', '.join(sorted(_ROLES))}.",
            f"{param}.role",
        )
    name = message.get("name")
    if name is not None:
        name = read_text(name, f"{param}.name")
    if role == "tool":
        if "tool_call_id" not in message:
            raise missing(f"{param}.tool_call_id")
        call_id = read_text(message["tool_call_id"], f"{param}.tool_call_id")
        text = "".join(
            p.text for p in _content(message.get("content"), f"{param}.content", role) if isinstance(p, TextPart)
        )
        return Message("tool", (FunctionResultPart(call_id, text),))
    if role != "assistant" and "content" not in message:
        raise missing(f"{param}.content")
    contents = _content(message.get("content"), f"{param}.content", role)
    if role == "assistant" and message.get("tool_calls") is not None:
        contents = (*contents, *_tool_calls(message["tool_calls"], f"{param}.tool_calls"))
    if role == "assistant" and not contents:
        raise bad_request(
            f"Invalid '{param}': an assistant message needs 'content' or 'tool_calls'.", f"{param}.content"
        )
    return Message(_ROLES[role], contents, name)  # type: ignore[arg-type]


# ---------------------------------------------------------------- tools and the whole body


def _tool(raw: object, param: str) -> dict[str, Any]:
    tool = read_object(raw, param)
    if tool.get("type") != "function":
        raise bad_request(
            f"Invalid value for '{param}.type': {tool.get('type')!r}. Supported values are: function.",
            f"{param}.type",
        )
    if "function" not in tool:
        raise missing(f"{param}.function")
    return function_tool(read_object(tool["function"], f"{param}.function"), f"{param}.function")


def parse_chat(body: object) -> ChatRequest:
    """Validate a decoded JSON body; unknown fields are ignored. Tools reach the target in the Responses shape
    (`{"type": "function", "name", "description", "parameters", "strict"}`) as `options["tools"]`."""
    if not isinstance(body, dict):
        raise invalid_type("body", "an object", body)
    if "messages" not in body:
        raise missing("messages")
    raw = read_list(body["messages"], "messages")
    if not raw:
        raise ApiError(
            400, "Invalid 'messages': empty array. Expected at least one message.", param="messages", code="empty_array"
        )
    messages = tuple(parse_message(m, f"messages[{i}]") for i, m in enumerate(raw))
    model = DEFAULT_MODEL if body.get("model") is None else read_text(body["model"], "model")
    if body.get("n") is not None and read_integer(body["n"], "n", 1) != 1:
        raise ApiError(
            400, "Invalid 'n': this server returns one choice; 'n' must be 1.", param="n", code="unsupported_value"
        )
    stream = False if body.get("stream") is None else read_bool(body["stream"], "stream")
    include_usage = False
    if body.get("stream_options") is not None:
        if not stream:
            raise bad_request("Invalid 'stream_options': only allowed when 'stream' is true.", "stream_options")
        options = read_object(body["stream_options"], "stream_options")
        if options.get("include_usage") is not None:
            include_usage = read_bool(options["include_usage"], "stream_options.include_usage")
    settings: dict[str, Any] = {"model": model}
    tools = (
        [_tool(t, f"tools[{i}]") for i, t in enumerate(read_list(body["tools"], "tools"))] if body.get("tools") else []
    )
    if tools:
        settings["tools"] = tools
    if body.get("tool_choice") is not None:
        settings["tool_choice"] = (
            body["tool_choice"]
            if isinstance(body["tool_choice"], str)
            else dict(read_object(body["tool_choice"], "tool_choice"))
        )
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        if body.get(key) is not None:
            settings[key] = read_number(body[key], key, low, high)
    for key in ("max_tokens", "max_completion_tokens"):
        if body.get(key) is not None:
            settings["max_output_tokens"] = read_integer(body[key], key, 1)
    user = None if body.get("user") is None else read_text(body["user"], "user")
    if user is not None and not 0 < len(user) <= MAX_ID_CHARS:
        raise bad_request(f"Invalid 'user': expected 1-{MAX_ID_CHARS} characters.", "user")
    return ChatRequest(messages, model, stream, include_usage, user, settings)


def new_input(messages: Sequence[Message]) -> tuple[Message, ...]:
    """The messages after the last assistant message: what a request adds to a conversation the server keeps."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "assistant":
            return tuple(messages[index + 1 :])
    return tuple(messages)


# ---------------------------------------------------------------- rendering


def _usage(usage: UsagePart | None) -> dict[str, Any]:
    usage = usage or UsagePart()
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _calls(reply: Reply) -> list[FunctionCallPart]:
    return [p for m in reply.messages if m.role == "assistant" for p in m.contents if isinstance(p, FunctionCallPart)]


def _tool_call(call: FunctionCallPart) -> dict[str, Any]:
    return {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def render_completion(completion_id: str, created: int, model: str, reply: Reply) -> dict[str, Any]:
    """The non-streamed `chat.completion` of a finished reply."""
    calls = _calls(reply)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text or (None if calls else ""),
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = [_tool_call(call) for call in calls]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop", "logprobs": None}
        ],
        "usage": _usage(reply.usage),
        "system_fingerprint": None,
    }


class ChunkStream:
    """The `chat.completion.chunk` events of one streamed completion: `delta` per text delta, then `finish`."""

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        self.base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
        self.include_usage = include_usage
        self.sent = ""
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk = {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def delta(self, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        chunks = [] if self._started else [self._chunk({"role": "assistant", "content": ""})]
        self._started = True
        self.sent += text
        return [*chunks, self._chunk({"content": text})]

    def finish(self, reply: Reply) -> list[dict[str, Any]]:
        """The rest of the text the stream has not shown, tool calls, the finish chunk and (if asked) usage."""
        chunks = [] if self._started else [self._chunk({"role": "assistant", "content": ""})]
        self._started = True
        if reply.text.startswith(self.sent) and len(reply.text) > len(self.sent):
            chunks.append(self._chunk({"content": reply.text[len(self.sent) :]}))
        calls = _calls(reply)
        for index, call in enumerate(calls):
            chunks.append(self._chunk({"tool_calls": [{"index": index, **_tool_call(call)}]}))
        chunks.append(self._chunk({}, "tool_calls" if calls else "stop"))
        if self.include_usage:
            chunks.append({**self.base, "choices": [], "usage": _usage(reply.usage)})
        return chunks


def sse(data: dict[str, Any] | str) -> bytes:
    """One `data:` event (chat streams carry no `event:` lines); `[DONE]` ends a stream."""
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    return b"data: " + payload + b"\n\n"


def render_models(models: Sequence[str], created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(name, created) for name in models]}


def model_object(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "afactors"}
