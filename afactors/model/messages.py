"""Messages, streamed updates and finished replies."""

from __future__ import annotations

from typing import Literal, get_args

import attrs

from afactors.model.parts import PART_TYPES, Part, TextPart, UsagePart

Role = Literal["user", "assistant", "system", "tool"]
ROLES: frozenset[str] = frozenset({"user", "assistant", "system", "tool"})


def _parts(value: object) -> tuple[Part, ...]:
    if isinstance(value, str):
        return (TextPart(value),)
    return tuple(value)  # type: ignore[arg-type]


def _check_parts(_: object, __: attrs.Attribute[tuple[Part, ...]], value: tuple[object, ...]) -> None:
    for part in value:
        if not isinstance(part, PART_TYPES):
            names = ", ".join(cls.__name__ for cls in PART_TYPES)
            raise TypeError(f"message contents must be content parts ({names}), not {type(part).__name__}")


@attrs.frozen
class Message:
    """One message of a conversation. `contents` also accepts a plain string."""

    role: Role = attrs.field(validator=attrs.validators.in_(ROLES))
    contents: tuple[Part, ...] = attrs.field(converter=_parts, validator=_check_parts, default=())
    name: str | None = None

    @property
    def text(self) -> str:
        """The text parts joined together."""
        return "".join(p.text for p in self.contents if isinstance(p, TextPart))


@attrs.frozen
class Update:
    """A streamed delta of a running turn: a text delta, or a whole content part."""

    delta: str = ""
    part: Part | None = None


Status = Literal["completed", "failed", "cancelled", "incomplete"]
ENDED_STATUSES: frozenset[str] = frozenset(get_args(Status))
"""The statuses of a turn that has ended (the only ones a `Reply` has); "queued" and "in_progress" are not."""


@attrs.frozen
class ErrorInfo:
    """A user-facing error: a stable code and a message (never a stack trace)."""

    code: str
    message: str


@attrs.frozen
class Reply:
    """A finished turn: what the target answered, with usage, status and error."""

    messages: tuple[Message, ...] = ()
    usage: UsagePart | None = None
    status: Status = "completed"
    error: ErrorInfo | None = None

    @property
    def text(self) -> str:
        """The text of every assistant message joined together."""
        return "".join(m.text for m in self.messages if m.role == "assistant")
