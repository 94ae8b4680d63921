"""Content parts: the pieces a message is made of."""

from __future__ import annotations

from typing import Literal

import attrs


@attrs.frozen
class TextPart:
    """Plain text."""

    text: str
    type: Literal["text"] = "text"


@attrs.frozen
class DataPart:
    """Inline binary data (base64 in JSON) with its media type, e.g. an uploaded photo."""

    data: bytes
    media_type: str
    name: str | None = None
    type: Literal["data"] = "data"


@attrs.frozen
class UriPart:
    """Content by reference: a URL or file id with its media type."""

    uri: str
    media_type: str
    name: str | None = None
    type: Literal["uri"] = "uri"


@attrs.frozen
class FunctionCallPart:
    """The model asks for a tool call; `arguments` is the JSON text of the arguments."""

    call_id: str
    name: str
    arguments: str
    type: Literal["function_call"] = "function_call"


@attrs.frozen
class FunctionResultPart:
    """The result of a tool call, matched to its call by `call_id`."""

    call_id: str
    result: str
    type: Literal["function_result"] = "function_result"


@attrs.frozen
class ReasoningPart:
    """Model reasoning text (summaries), kept apart from the answer.

    `encrypted` is reasoning state a model provider handed out opaquely (OpenAI's `encrypted_content`): kept and
    passed back as it came, never read.
    """

    text: str
    encrypted: str | None = None
    type: Literal["reasoning"] = "reasoning"


@attrs.frozen
class UsagePart:
    """Token accounting for one model call or one turn."""

    input_tokens: int = 0
    output_tokens: int = 0
    type: Literal["usage"] = "usage"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: UsagePart) -> UsagePart:
        return UsagePart(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


Part = TextPart | DataPart | UriPart | FunctionCallPart | FunctionResultPart | ReasoningPart | UsagePart
PART_TYPES: tuple[type, ...] = (
    TextPart,
    DataPart,
    UriPart,
    FunctionCallPart,
    FunctionResultPart,
    ReasoningPart,
    UsagePart,
)
