"""Tasks (A-06) and stream events (A-09, A-10) rendered from stored turn records. Pure.

A task is one turn, or a chain of turns when the client answers a task that asked for input: the task keeps
its id, each answer runs as a further turn of the same conversation. Its state is the state of its latest turn:

| latest turn record          | task state                                                       |
|-----------------------------|------------------------------------------------------------------|
| queued                      | TASK_STATE_SUBMITTED                                             |
| in_progress                 | TASK_STATE_WORKING                                               |
| completed                   | TASK_STATE_COMPLETED, or the state the target asked for with a    |
|                             | `task_state_part` (input-required, auth-required, rejected)      |
| failed / incomplete         | TASK_STATE_FAILED (status message: the error)                    |
| cancelled                   | TASK_STATE_CANCELED                                              |

Artifacts: the text of each turn is one artifact (`<turn>-text`, streamed as chunks with `append`/`lastChunk`),
every file or data part its own (`<turn>-part-<n>`). History: each turn's user message, then the agent's answer.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import orjson

from afactors.channel import TurnView
from afactors.model import DataPart, Message, Part, TextPart, Update
from afactors_a2a.messages import message_to_v03, part_to_v03, render_message, render_part

TASK_STATE_MEDIA_TYPE = "application/vnd.afactors.a2a-task-state+json"
"""Media type of the part a target yields to end its turn in another state than completed."""

TargetState = Literal["input-required", "auth-required", "rejected"]
_TARGET_STATES: dict[str, str] = {
    "input-required": "TASK_STATE_INPUT_REQUIRED",
    "auth-required": "TASK_STATE_AUTH_REQUIRED",
    "rejected": "TASK_STATE_REJECTED",
}
TERMINAL = frozenset({"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"})
INTERRUPTED = frozenset({"TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"})
_RECORD_STATES = {
    "queued": "TASK_STATE_SUBMITTED",
    "in_progress": "TASK_STATE_WORKING",
    "failed": "TASK_STATE_FAILED",
    "incomplete": "TASK_STATE_FAILED",
    "cancelled": "TASK_STATE_CANCELED",
}


def task_state_part(state: TargetState) -> DataPart:
    """The part a target yields (`Update(part=task_state_part("input-required"))`) to end its turn asking the
    user something (input-required, auth-required) or refusing the task (rejected); its text is the question."""
    if state not in _TARGET_STATES:
        raise ValueError(f"state must be one of {', '.join(_TARGET_STATES)}, not {state!r}")
    return DataPart(orjson.dumps({"state": state}), TASK_STATE_MEDIA_TYPE)


def requested_state(part: Part) -> str | None:
    """The v1 task state a `task_state_part` asks for; None for any other part (and for an unknown state)."""
    if not isinstance(part, DataPart) or part.media_type != TASK_STATE_MEDIA_TYPE:
        return None
    try:
        asked = orjson.loads(part.data)
    except orjson.JSONDecodeError:
        return None
    state = asked.get("state") if isinstance(asked, dict) else None
    return _TARGET_STATES.get(state) if isinstance(state, str) else None


def timestamp(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, as proto-JSON writes a Timestamp."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@attrs.frozen
class TurnInfo:
    """What the channel keeps about a turn in its record's data (`options["a2a"]`)."""

    task_id: str
    context_id: str
    message_id: str


def turn_info(record: TurnView) -> TurnInfo | None:
    """The A2A ids kept with a turn record; None for a record the channel did not write."""
    info = record.data.get("a2a")
    if not isinstance(info, dict):
        return None
    try:
        return TurnInfo(str(info["task"]), str(info["context"]), str(info["message"]))
    except KeyError:
        return None


def _turn_state(record: TurnView) -> str:
    if record.status == "completed":
        for message in record.output:
            for part in message.contents:
                if (state := requested_state(part)) is not None:
                    return state
        return "TASK_STATE_COMPLETED"
    return _RECORD_STATES[record.status]


def artifacts_of(turn_id: str, output: Sequence[Message]) -> list[dict[str, Any]]:
    """A turn's artifacts: all its text as one, then one per file or data part."""
    text = "".join(p.text for m in output for p in m.contents if isinstance(p, TextPart))
    artifacts = [text_artifact(turn_id, text)] if text else []
    n = 0
    for message in output:
        for part in message.contents:
            if isinstance(part, TextPart) or requested_state(part) is not None:
                continue
            rendered = render_part(part)
            if rendered is not None:
                n += 1
                artifacts.append(part_artifact(turn_id, n, rendered))
    return artifacts


def text_artifact(turn_id: str, text: str) -> dict[str, Any]:
    return {"artifactId": f"{turn_id}-text", "name": "text", "parts": [{"text": text}]}


def part_artifact(turn_id: str, n: int, part: dict[str, Any]) -> dict[str, Any]:
    name = part.get("filename") or ("data" if "data" in part else "file")
    return {"artifactId": f"{turn_id}-part-{n}", "name": name, "parts": [part]}


def _answer(record: TurnView, info: TurnInfo) -> dict[str, Any] | None:
    """The agent's answer in a turn as one message (None when it has nothing A2A can show)."""
    contents = tuple(
        p for m in record.output for p in m.contents if requested_state(p) is None and render_part(p) is not None
    )
    if not contents:
        return None
    return render_message(Message("assistant", contents), f"{record.id}-answer", info.context_id, info.task_id)


@attrs.frozen
class TaskView:
    """A task as A2A shows it, built from its turn records (`task_view`), rendered with `render_task`."""

    id: str
    context_id: str
    state: str
    timestamp: float
    status_message: dict[str, Any] | None = None
    artifacts: tuple[dict[str, Any], ...] = ()
    history: tuple[dict[str, Any], ...] = ()

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def interrupted(self) -> bool:
        return self.state in INTERRUPTED

    @property
    def settled(self) -> bool:
        """Terminal or interrupted: nothing more happens until the client acts (A-07, A-09)."""
        return self.state in TERMINAL or self.state in INTERRUPTED


def task_view(turns: Sequence[TurnView], canceled_at: float | None = None) -> TaskView:
    """The task whose turns (oldest first, at least one, all written by this channel) are `turns`.
    `canceled_at`: when the client cancelled the task while it waited for input."""
    first = turn_info(turns[0])
    assert first is not None
    latest = turns[-1]
    state = _turn_state(latest)
    moment = latest.completed_at or latest.created_at
    if canceled_at is not None and state in INTERRUPTED:
        state, moment = "TASK_STATE_CANCELED", canceled_at
    history: list[dict[str, Any]] = []
    artifacts: list[dict[str, Any]] = []
    answer = None
    for record in turns:
        info = turn_info(record) or first
        for n, message in enumerate(record.input):
            message_id = info.message_id if n == 0 else f"{info.message_id}-{n}"
            history.append(render_message(message, message_id, first.context_id, first.task_id, "ROLE_USER"))
        answer = _answer(record, info)
        if answer is not None:
            history.append(answer)
        artifacts.extend(artifacts_of(record.id, record.output))
    status_message = None
    if state in INTERRUPTED or state == "TASK_STATE_REJECTED":
        status_message = answer
    elif state == "TASK_STATE_FAILED" and latest.error is not None:
        status_message = render_message(
            Message("assistant", latest.error.message), f"{latest.id}-error", first.context_id, first.task_id
        )
    return TaskView(first.task_id, first.context_id, state, moment, status_message, tuple(artifacts), tuple(history))


def render_status(view: TaskView) -> dict[str, Any]:
    status: dict[str, Any] = {"state": view.state, "timestamp": timestamp(view.timestamp)}
    if view.status_message is not None:
        status["message"] = view.status_message
    return status


def render_task(view: TaskView, *, history_length: int | None = None, include_artifacts: bool = True) -> dict[str, Any]:
    """The v1 Task. `history_length`: at most that many of the latest messages (0: no history, A-11)."""
    task: dict[str, Any] = {"id": view.id, "contextId": view.context_id, "status": render_status(view)}
    if include_artifacts and view.artifacts:
        task["artifacts"] = list(view.artifacts)
    history = list(view.history)
    if history_length is not None:
        history = history[len(history) - history_length :] if history_length else []
    if history:
        task["history"] = history
    return task


# -- stream events (v1 StreamResponse) ------------------------------------------------------------------------


def task_event(task: dict[str, Any]) -> dict[str, Any]:
    return {"task": task}


def status_event(view: TaskView) -> dict[str, Any]:
    return {"statusUpdate": {"taskId": view.id, "contextId": view.context_id, "status": render_status(view)}}


def working_event(task_id: str, context_id: str, at: float) -> dict[str, Any]:
    status = {"state": "TASK_STATE_WORKING", "timestamp": timestamp(at)}
    return {"statusUpdate": {"taskId": task_id, "contextId": context_id, "status": status}}


class ChunkStream:
    """Turns one turn's live updates into `artifactUpdate` events (A-10).

    Text deltas are chunks of one artifact; each chunk is held back until the next arrives, so the last one can
    carry `lastChunk: true` when the turn ends (`finish`). File and data parts are whole artifacts at once.
    """

    def __init__(self, task_id: str, context_id: str, turn_id: str) -> None:
        self.task_id, self.context_id, self.turn_id = task_id, context_id, turn_id
        self._pending: str | None = None
        self._chunks = 0
        self._parts = 0

    def _artifact_event(self, artifact: dict[str, Any], append: bool, last: bool) -> dict[str, Any]:
        update = {"taskId": self.task_id, "contextId": self.context_id, "artifact": artifact}
        return {"artifactUpdate": {**update, "append": append, "lastChunk": last}}

    def _flush(self, last: bool) -> list[dict[str, Any]]:
        if self._pending is None:
            return []
        event = self._artifact_event(text_artifact(self.turn_id, self._pending), self._chunks > 0, last)
        self._pending = None
        self._chunks += 1
        return [event]

    def add(self, update: Update) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        text = update.delta
        part = update.part
        if isinstance(part, TextPart):
            text, part = text + part.text, None
        if text:
            events = self._flush(last=False)
            self._pending = text
        if part is not None and requested_state(part) is None and (rendered := render_part(part)) is not None:
            self._parts += 1
            events.append(self._artifact_event(part_artifact(self.turn_id, self._parts, rendered), False, True))
        return events

    def finish(self) -> list[dict[str, Any]]:
        return self._flush(last=True)


# -- v0.3 -----------------------------------------------------------------------------------------------------


def state_to_v03(state: str) -> str:
    """`TASK_STATE_INPUT_REQUIRED` -> `input-required`."""
    return state.removeprefix("TASK_STATE_").lower().replace("_", "-")


def _status_to_v03(status: dict[str, Any]) -> dict[str, Any]:
    converted = {**status, "state": state_to_v03(status["state"])}
    if "message" in status:
        converted["message"] = message_to_v03(status["message"])
    return converted


def _artifact_to_v03(artifact: dict[str, Any]) -> dict[str, Any]:
    return {**artifact, "parts": [part_to_v03(part) for part in artifact["parts"]]}


def task_to_v03(task: dict[str, Any]) -> dict[str, Any]:
    """A v1 Task rendered in v0.3 (`kind: "task"`, lower-case states)."""
    converted = {**task, "kind": "task", "status": _status_to_v03(task["status"])}
    if "artifacts" in task:
        converted["artifacts"] = [_artifact_to_v03(a) for a in task["artifacts"]]
    if "history" in task:
        converted["history"] = [message_to_v03(m) for m in task["history"]]
    return converted


def event_to_v03(event: dict[str, Any], final: bool) -> dict[str, Any]:
    """A v1 StreamResponse rendered as the v0.3 event; `final` marks the stream's last status update."""
    if "task" in event:
        return task_to_v03(event["task"])
    if "message" in event:
        return message_to_v03(event["message"])
    if "statusUpdate" in event:
        update = event["statusUpdate"]
        return {**update, "kind": "status-update", "status": _status_to_v03(update["status"]), "final": final}
    update = event["artifactUpdate"]
    return {**update, "kind": "artifact-update", "artifact": _artifact_to_v03(update["artifact"])}
