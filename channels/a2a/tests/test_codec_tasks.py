"""Tasks rendered from turn records (A-06, A-11), stream chunks (A-09, A-10), ListTasks paging (A-14): pure."""

from __future__ import annotations

from typing import Any

import pytest

from afactors.channel import TurnView
from afactors.model import DataPart, ErrorInfo, Message, ReasoningPart, TextPart, Update, UriPart
from afactors_a2a.errors import RpcError
from afactors_a2a.listing import list_page
from afactors_a2a.requests import ListQuery
from afactors_a2a.tasks import (
    ChunkStream,
    event_to_v03,
    render_task,
    requested_state,
    status_event,
    task_state_part,
    task_to_v03,
    task_view,
    timestamp,
)


def record(turn: str, status: str = "completed", *, task: str | None = None, out: tuple = (), **kw: Any) -> TurnView:
    return TurnView(
        id=turn,
        tenant="t",
        conversation="t/a2a/c",
        status=status,  # type: ignore[arg-type]
        input=(Message("user", f"question {turn}"),),
        output=(Message("assistant", out),) if out else (),
        created_at=kw.pop("created_at", 100.0),
        completed_at=kw.pop("completed_at", 101.0 if status != "queued" else None),
        data={"a2a": {"task": task or turn, "context": "c", "message": f"m-{turn}"}},
        **kw,
    )


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", "TASK_STATE_SUBMITTED"),
        ("in_progress", "TASK_STATE_WORKING"),
        ("completed", "TASK_STATE_COMPLETED"),
        ("failed", "TASK_STATE_FAILED"),
        ("incomplete", "TASK_STATE_FAILED"),
        ("cancelled", "TASK_STATE_CANCELED"),
    ],
)
def test_a06_a_turns_status_is_the_tasks_state(status: str, state: str) -> None:
    assert task_view([record("x", status)]).state == state


def test_a06_a_completed_task_has_its_text_and_parts_as_artifacts_and_a_history() -> None:
    out = (
        TextPart("Hello"),
        TextPart(" world"),
        DataPart(b'{"a":1}', "application/json"),
        ReasoningPart("r"),
        UriPart("https://x/f.pdf", "application/pdf", "f.pdf"),
    )
    task = render_task(task_view([record("x", out=out)]))
    assert task["id"] == "x" and task["contextId"] == "c"
    assert task["status"] == {"state": "TASK_STATE_COMPLETED", "timestamp": "1970-01-01T00:01:41.000Z"}
    assert task["artifacts"] == [
        {"artifactId": "x-text", "name": "text", "parts": [{"text": "Hello world"}]},
        {"artifactId": "x-part-1", "name": "data", "parts": [{"data": {"a": 1}}]},
        {
            "artifactId": "x-part-2",
            "name": "f.pdf",
            "parts": [{"url": "https://x/f.pdf", "mediaType": "application/pdf", "filename": "f.pdf"}],
        },
    ]
    assert [m["messageId"] for m in task["history"]] == ["m-x", "x-answer"]
    assert task["history"][0] == {
        "messageId": "m-x",
        "contextId": "c",
        "role": "ROLE_USER",
        "parts": [{"text": "question x"}],
        "taskId": "x",
    }
    assert task["history"][1]["role"] == "ROLE_AGENT"


def test_a11_history_length_keeps_the_latest_messages() -> None:
    view = task_view([record("x", out=(TextPart("a"),))])
    assert "history" not in render_task(view, history_length=0)
    assert [m["messageId"] for m in render_task(view, history_length=1)["history"]] == ["x-answer"]
    assert len(render_task(view, history_length=10)["history"]) == 2
    assert "artifacts" not in render_task(view, include_artifacts=False)


def test_a_target_can_end_a_turn_input_required_rejected_or_auth_required() -> None:
    asked = task_view([record("x", out=(TextPart("Name?"), task_state_part("input-required")))])
    assert asked.state == "TASK_STATE_INPUT_REQUIRED" and asked.interrupted and not asked.terminal and asked.settled
    assert asked.status_message is not None and asked.status_message["parts"] == [{"text": "Name?"}]
    rejected = task_view([record("x", out=(TextPart("No."), task_state_part("rejected")))])
    assert rejected.state == "TASK_STATE_REJECTED" and rejected.terminal
    assert task_view([record("x", out=(task_state_part("auth-required"),))]).state == "TASK_STATE_AUTH_REQUIRED"
    assert requested_state(DataPart(b'{"state":"bogus"}', "application/vnd.afactors.a2a-task-state+json")) is None
    assert requested_state(DataPart(b"[", "application/vnd.afactors.a2a-task-state+json")) is None
    with pytest.raises(ValueError):
        task_state_part("completed")  # type: ignore[arg-type]


def test_a_continued_task_spans_its_turns_and_takes_the_latest_state() -> None:
    first = record("x", out=(TextPart("Name?"), task_state_part("input-required")))
    second = record("y", "in_progress", task="x", completed_at=None, created_at=102.0)
    view = task_view([first, second])
    assert view.id == "x" and view.state == "TASK_STATE_WORKING" and view.timestamp == 102.0
    assert [m["messageId"] for m in view.history] == ["m-x", "x-answer", "m-y"]
    assert all(m["taskId"] == "x" for m in view.history)


def test_an_interrupted_task_cancelled_by_the_client_reads_canceled() -> None:
    asked = record("x", out=(TextPart("Name?"), task_state_part("input-required")))
    assert task_view([asked], canceled_at=200.0).state == "TASK_STATE_CANCELED"
    assert task_view([record("x")], canceled_at=200.0).state == "TASK_STATE_COMPLETED"  # only interrupted ones


def test_a_failed_task_says_why_in_its_status_message() -> None:
    view = task_view([record("x", "failed", error=ErrorInfo("agent_error", "it broke"))])
    assert view.status_message is not None and view.status_message["parts"] == [{"text": "it broke"}]


def test_timestamps_are_rfc3339_utc_with_milliseconds() -> None:
    assert timestamp(1767225600.1234) == "2026-01-01T00:00:00.123Z"


def test_a10_text_deltas_stream_as_chunks_with_the_last_one_marked() -> None:
    chunks = ChunkStream("x", "c", "x")
    events = [
        *chunks.add(Update(delta="a")),
        *chunks.add(Update(delta="b")),
        *chunks.add(Update(part=DataPart(b"z", "text/plain", "z.txt"))),
        *chunks.add(Update(part=TextPart("c"))),
        *chunks.add(Update(part=task_state_part("rejected"))),
        *chunks.add(Update(part=ReasoningPart("r"))),
        *chunks.finish(),
    ]
    updates = [e["artifactUpdate"] for e in events]
    texts = [
        (u["artifact"]["parts"], u["append"], u["lastChunk"])
        for u in updates
        if u["artifact"]["artifactId"] == "x-text"
    ]
    assert texts == [([{"text": "a"}], False, False), ([{"text": "b"}], True, False), ([{"text": "c"}], True, True)]
    files = [u for u in updates if u["artifact"]["artifactId"] == "x-part-1"]
    assert len(files) == 1 and files[0]["lastChunk"] and files[0]["artifact"]["name"] == "z.txt"
    assert ChunkStream("x", "c", "x").finish() == []


def test_streamed_artifacts_match_the_stored_task() -> None:
    chunks = ChunkStream("x", "c", "x")
    out = (TextPart("ab"), DataPart(b"z", "text/plain", "z.txt"))
    events = [
        *chunks.add(Update(delta="a")),
        *chunks.add(Update(delta="b")),
        *chunks.add(Update(part=out[1])),
        *chunks.finish(),
    ]
    stored = render_task(task_view([record("x", out=out)]))["artifacts"]
    assert {e["artifactUpdate"]["artifact"]["artifactId"] for e in events} == {a["artifactId"] for a in stored}


def test_v03_rendering_of_tasks_and_events() -> None:
    view = task_view([record("x", out=(TextPart("Name?"), task_state_part("input-required")))])
    task = task_to_v03(render_task(view))
    assert task["kind"] == "task" and task["status"]["state"] == "input-required"
    assert task["status"]["message"]["kind"] == "message" and task["status"]["message"]["role"] == "agent"
    assert task["artifacts"][0]["parts"] == [{"kind": "text", "text": "Name?"}]
    assert [m["role"] for m in task["history"]] == ["user", "agent"]
    status = event_to_v03(status_event(view), final=True)
    assert (
        status["kind"] == "status-update" and status["final"] is True and status["status"]["state"] == "input-required"
    )
    chunk = ChunkStream("x", "c", "x")
    chunk.add(Update(delta="q"))
    artifact = event_to_v03(chunk.finish()[0], final=False)
    assert (
        artifact["kind"] == "artifact-update"
        and artifact["lastChunk"]
        and artifact["artifact"]["parts"][0]["kind"] == "text"
    )


def views(n: int) -> list:
    return [task_view([record(f"a2a-{i:02d}", completed_at=1000.0 + i // 2, out=(TextPart("a"),))]) for i in range(n)]


def test_a14_list_sorts_newest_first_and_pages_with_a_cursor() -> None:
    all_views = views(5)
    first = list_page(all_views, ListQuery(page_size=2))
    assert [t["id"] for t in first["tasks"]] == ["a2a-04", "a2a-03", "a2a-02"][:2]
    assert first["totalSize"] == 5 and first["pageSize"] == 2 and first["nextPageToken"]
    second = list_page(all_views, ListQuery(page_size=2, page_token=first["nextPageToken"]))
    assert [t["id"] for t in second["tasks"]] == ["a2a-02", "a2a-01"]
    third = list_page(all_views, ListQuery(page_size=2, page_token=second["nextPageToken"]))
    assert [t["id"] for t in third["tasks"]] == ["a2a-00"] and third["nextPageToken"] == ""
    assert "artifacts" not in first["tasks"][0] and "history" in first["tasks"][0]


def test_a14_list_filters_by_state_context_and_time() -> None:
    all_views = [*views(3), task_view([record("a2a-run", "in_progress", completed_at=None, created_at=5000.0)])]
    assert [t["id"] for t in list_page(all_views, ListQuery(state="TASK_STATE_WORKING"))["tasks"]] == ["a2a-run"]
    assert list_page(all_views, ListQuery(context_id="other"))["tasks"] == []
    assert list_page(all_views, ListQuery(status_after=1000.5))["totalSize"] == 2
    page = list_page(all_views, ListQuery(include_artifacts=True, history_length=0))
    assert "history" not in page["tasks"][1] and page["tasks"][1]["artifacts"]


@pytest.mark.parametrize("token", ["???", "bm90IGpzb24", "WzFd", "WyJhIiwgImIiXQ=="])
def test_a14_a_page_token_we_did_not_issue_is_invalid_params(token: str) -> None:
    with pytest.raises(RpcError) as caught:
        list_page(views(2), ListQuery(page_token=token))
    assert caught.value.code == -32602
