"""Building a turn's `Reply` from its updates, and replies for turns that did not complete (pure)."""

from __future__ import annotations

from afactors.model import ErrorInfo, Message, Part, Reply, TextPart, Update, UsagePart

_MAX_ERROR_TEXT = 300


class ReplyBuilder:
    """Collects the updates of one turn: whole parts in the order they came, all text deltas joined into one text
    part standing where the first delta came, usage parts summed."""

    __slots__ = ("_deltas", "_parts", "_text_at", "_usage")

    def __init__(self) -> None:
        self._deltas: list[str] = []
        self._parts: list[Part] = []
        self._text_at: int | None = None  # where the joined deltas go among the parts
        self._usage: UsagePart | None = None

    def add(self, update: Update) -> None:
        if update.delta:
            if self._text_at is None:
                self._text_at = len(self._parts)
            self._deltas.append(update.delta)
        part = update.part
        if part is None:
            return
        if isinstance(part, UsagePart):
            self._usage = part if self._usage is None else self._usage + part
        else:
            self._parts.append(part)

    def reply(self) -> Reply:
        """The completed reply: one assistant message and the usage."""
        contents: tuple[Part, ...] = tuple(self._parts)
        if self._text_at is not None:
            at = self._text_at
            contents = (*contents[:at], TextPart("".join(self._deltas)), *contents[at:])
        return Reply(messages=(Message("assistant", contents),), usage=self._usage)


def failed(code: str, message: str) -> Reply:
    """A failed turn's reply."""
    return Reply(status="failed", error=ErrorInfo(code, message))


def cancelled(code: str, message: str) -> Reply:
    """A cancelled turn's reply (`code` says why: "cancelled", "interrupted", "shutdown")."""
    return Reply(status="cancelled", error=ErrorInfo(code, message))


def error_text(exc: BaseException) -> str:
    """A short, single-line description of an exception for users and dead letters (no traceback)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."
