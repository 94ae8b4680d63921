"""Building a turn's `Reply` from its updates, and replies for turns that did not complete (pure)."""

from __future__ import annotations

from afactors.model import ErrorInfo, Message, Part, Reply, TextPart, Update, UsagePart

_MAX_ERROR_TEXT = 300


class ReplyBuilder:
    """Collects the updates of one turn in order: whole parts where they came, text deltas joined into runs, usage
    parts summed. A run of deltas ends at a whole non-text part (a function call, say), so text before and after
    a tool call stay apart; a whole text part does not end a run."""

    __slots__ = ("_parts", "_run", "_runs", "_usage")

    def __init__(self) -> None:
        self._parts: list[Part] = []
        self._runs: list[tuple[int, list[str]]] = []  # (position among the parts, deltas)
        self._run: list[str] | None = None  # the run deltas go to now
        self._usage: UsagePart | None = None

    def add(self, update: Update) -> None:
        if update.delta:
            if self._run is None:
                self._run = []
                self._runs.append((len(self._parts), self._run))
            self._run.append(update.delta)
        part = update.part
        if part is None:
            return
        if isinstance(part, UsagePart):
            self._usage = part if self._usage is None else self._usage + part
            return
        if not isinstance(part, TextPart):
            self._run = None
        self._parts.append(part)

    def reply(self) -> Reply:
        """The completed reply: one assistant message and the usage."""
        runs = self._runs
        if len(runs) == 1 and not self._parts:  # the common reply: one run of text deltas
            contents: tuple[Part, ...] = (TextPart("".join(runs[0][1])),)
        else:
            parts = list(self._parts)
            for at, run in reversed(runs):
                parts.insert(at, TextPart("".join(run)))
            contents = tuple(parts)
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
