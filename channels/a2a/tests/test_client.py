"""Every A2A method through the official a2a-sdk client, blocking and streaming, in 1.0 and in v0.3 compat."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest
import trio
from a2a.client import ClientConfig, create_client
from a2a.types import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError

VERSIONS = ["1.0", "0.3"]


def send_request(text: str, *, configuration: SendMessageConfiguration | None = None, **ids: str) -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=text)], **ids)
    request = SendMessageRequest(message=message)
    if configuration is not None:
        request.configuration.CopyFrom(configuration)
    return request


async def send(client: Any, text: str, **kwargs: Any) -> list[StreamResponse]:
    return [event async for event in client.send_message(send_request(text, **kwargs))]


def final_task(events: list[StreamResponse]) -> Task:
    assert len(events) == 1 and events[0].HasField("task"), events
    return events[0].task


def artifact_text(task: Task) -> str:
    return "".join(part.text for artifact in task.artifacts for part in artifact.parts)


async def test_a01_the_card_is_served_at_both_paths_and_resolves_with_the_sdk(serve) -> None:
    async with serve() as served:
        card = (await served.http.get("/.well-known/agent-card.json")).json()
        legacy = (await served.http.get("/.well-known/agent.json")).json()
        async with httpx.AsyncClient(timeout=10) as hc:
            client = await create_client(served.url, client_config=ClientConfig(streaming=False, httpx_client=hc))
            async with client:
                task = final_task(await send(client, "hello"))
    assert card == legacy
    assert card["supportedInterfaces"][0] == {
        "url": served.url + "/a2a",
        "protocolBinding": "JSONRPC",
        "protocolVersion": "1.0",
    }
    assert card["capabilities"] == {"streaming": True, "pushNotifications": True, "extendedAgentCard": False}
    assert task.status.state == TaskState.TASK_STATE_COMPLETED and artifact_text(task) == "Turn 1: hello"


@pytest.mark.parametrize("version", VERSIONS)
async def test_a07_blocking_send_answers_the_finished_task(serve, version: str) -> None:
    async with serve() as served, served.client(version=version) as client:
        task = final_task(await send(client, "hello there"))
        again = await client.get_task(GetTaskRequest(id=task.id))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED and task.id.startswith("a2a-") and task.context_id
    assert artifact_text(task) == "Turn 1: hello there"
    assert [m.role for m in task.history] == [1, 2] and task.history[0].parts[0].text == "hello there"
    assert again == task


@pytest.mark.parametrize("version", VERSIONS)
async def test_a09_a10_streaming_sends_the_task_then_chunks_then_the_final_state(serve, version: str) -> None:
    async with serve() as served, served.client(version=version, streaming=True) as client:
        events = await send(client, "stream 4")
        stored = await client.get_task(GetTaskRequest(id=events[0].task.id))
    kinds = [event.WhichOneof("payload") for event in events]
    assert kinds == ["task", "status_update", *["artifact_update"] * 4, "status_update"]
    assert events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert events[1].status_update.status.state == TaskState.TASK_STATE_WORKING
    chunks = [event.artifact_update for event in events[2:6]]
    assert [c.append for c in chunks] == [False, True, True, True]
    assert [c.last_chunk for c in chunks] == [False, False, False, True]
    assert len({c.artifact.artifact_id for c in chunks}) == 1
    assert "".join(c.artifact.parts[0].text for c in chunks) == "c1 c2 c3 c4 " == artifact_text(stored)
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


@pytest.mark.parametrize("version", VERSIONS)
async def test_a08_a_context_is_one_conversation_and_its_turns_follow_each_other(serve, version: str) -> None:
    async with serve() as served, served.client(version=version) as client:
        first = final_task(await send(client, "one"))
        second = final_task(await send(client, "two", context_id=first.context_id))
        own = final_task(await send(client, "three", context_id="my-context"))
        other = final_task(await send(client, "four"))
    assert artifact_text(second) == "Turn 2: two" and second.context_id == first.context_id and second.id != first.id
    assert own.context_id == "my-context" and artifact_text(own) == "Turn 1: three"
    assert other.context_id not in (first.context_id, "my-context") and artifact_text(other) == "Turn 1: four"


@pytest.mark.parametrize("version", VERSIONS)
async def test_a11_get_task_history_length(serve, version: str) -> None:
    async with serve() as served, served.client(version=version) as client:
        task = final_task(await send(client, "hello"))
        none = await client.get_task(GetTaskRequest(id=task.id, history_length=0))
        one = await client.get_task(GetTaskRequest(id=task.id, history_length=1))
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id="a2a-nope"))
    assert len(none.history) == 0 and [m.message_id for m in one.history] == [f"{task.id}-answer"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("streaming", [False, True])
async def test_input_required_then_the_answer_continues_the_same_task(serve, version: str, streaming: bool) -> None:
    async with serve() as served, served.client(version=version, streaming=streaming) as client:
        asked = await send(client, "input-required")
        task_id, context_id = asked[0].task.id, asked[0].task.context_id
        answered = await send(client, "Ada", task_id=task_id, context_id=context_id)
        stored = await client.get_task(GetTaskRequest(id=task_id))
    interrupted = asked[-1].status_update.status if streaming else asked[0].task.status
    assert interrupted.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert interrupted.message.parts[0].text == "What is your name?"
    finished = answered[-1].status_update.status if streaming else answered[0].task.status
    assert finished.state == TaskState.TASK_STATE_COMPLETED
    assert stored.id == task_id and stored.status.state == TaskState.TASK_STATE_COMPLETED
    assert [m.parts[0].text for m in stored.history] == [
        "input-required",
        "What is your name?",
        "Ada",
        "Nice to meet you, Ada.",
    ]


@pytest.mark.parametrize("version", VERSIONS)
async def test_a08_messages_to_tasks_that_cannot_take_them(serve, version: str) -> None:
    async with serve() as served, served.client(version=version) as client:
        rejected = final_task(await send(client, "reject"))
        with pytest.raises(UnsupportedOperationError):  # CORE-SEND-002: a terminal task takes no more messages
            await send(client, "please", task_id=rejected.id)
        with pytest.raises(TaskNotFoundError):
            await send(client, "hello", task_id="a2a-unknown")
        asked = final_task(await send(client, "input-required"))
        with pytest.raises(Exception) as mismatch:
            await send(client, "Ada", task_id=asked.id, context_id="another-context")
    assert rejected.status.state == TaskState.TASK_STATE_REJECTED
    assert rejected.status.message.parts[0].text == "I will not do that."
    assert "does not match" in str(mismatch.value)


@pytest.mark.parametrize("version", VERSIONS)
async def test_artifact_kinds_and_a_failing_turn(serve, version: str) -> None:
    async with serve() as served, served.client(version=version) as client:
        file = final_task(await send(client, "artifact-file"))
        url = final_task(await send(client, "artifact-file-url"))
        data = final_task(await send(client, "artifact-data"))
        failed = final_task(await send(client, "fail"))
    assert file.artifacts[0].parts[0].raw == b"hello file" and file.artifacts[0].parts[0].filename == "hello.txt"
    assert url.artifacts[0].parts[0].url == "https://example.com/report.pdf"
    assert url.artifacts[0].parts[0].media_type == "application/pdf"
    assert dict(data.artifacts[0].parts[0].data.struct_value) == {"answer": 42, "items": [1, 2]}
    assert failed.status.state == TaskState.TASK_STATE_FAILED
    assert "scripted failure" in failed.status.message.parts[0].text


async def running(client: Any, task_id: str, poll: Any) -> Task:
    async def working() -> Task | None:
        task = await client.get_task(GetTaskRequest(id=task_id))
        return task if task.status.state == TaskState.TASK_STATE_WORKING else None

    return await poll(working)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a12_cancel_a_running_task_then_a_terminal_one(serve, poll, version: str) -> None:
    immediately = SendMessageConfiguration(return_immediately=True)
    async with serve() as served, served.client(version=version) as client:
        started = final_task(await send(client, "hang", configuration=immediately))
        await running(client, started.id, poll)
        cancelled = await client.cancel_task(CancelTaskRequest(id=started.id))
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=started.id))
        done = final_task(await send(client, "hello"))
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=done.id))
        with pytest.raises(TaskNotFoundError):
            await client.cancel_task(CancelTaskRequest(id="a2a-nope"))
        after = await client.get_task(GetTaskRequest(id=started.id))
    assert started.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
    assert cancelled.status.state == after.status.state == TaskState.TASK_STATE_CANCELED


@pytest.mark.parametrize("version", VERSIONS)
async def test_a12_cancel_a_queued_task_and_a_task_waiting_for_input(serve, poll, version: str) -> None:
    immediately = SendMessageConfiguration(return_immediately=True)
    async with serve() as served, served.client(version=version) as client:
        first = final_task(await send(client, "hang", context_id="c", configuration=immediately))
        queued = final_task(await send(client, "hello", context_id="c", configuration=immediately))
        await running(client, first.id, poll)
        assert (await client.get_task(GetTaskRequest(id=queued.id))).status.state == TaskState.TASK_STATE_SUBMITTED
        cancelled = await client.cancel_task(CancelTaskRequest(id=queued.id))
        await client.cancel_task(CancelTaskRequest(id=first.id))
        asked = final_task(await send(client, "input-required"))
        dropped = await client.cancel_task(CancelTaskRequest(id=asked.id))
        with pytest.raises(UnsupportedOperationError):
            await send(client, "Ada", task_id=asked.id)
    assert cancelled.status.state == dropped.status.state == TaskState.TASK_STATE_CANCELED


@pytest.mark.parametrize("version", VERSIONS)
async def test_a13_subscribe_follows_a_running_task_and_refuses_a_terminal_one(serve, version: str) -> None:
    immediately = SendMessageConfiguration(return_immediately=True)
    async with (
        serve() as served,
        served.client(version=version) as starter,
        served.client(version=version, streaming=True) as client,
    ):
        started = final_task(await send(starter, "delayed 0.4", configuration=immediately))
        events = [event async for event in client.subscribe(SubscribeToTaskRequest(id=started.id))]
        # (refusals read raw: the SDK's stream generator leaks an unclosed inner generator when it raises)
        method, header = ("SubscribeToTask", "1.0") if version == "1.0" else ("tasks/resubscribe", None)
        terminal = (await served.rpc(method, {"id": started.id}, version=header)).json()
        unknown = (await served.rpc(method, {"id": "a2a-nope"}, version=header)).json()
    assert terminal["error"]["code"] == -32004 and unknown["error"]["code"] == -32001
    assert events[0].task.id == started.id
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    text = "".join(e.artifact_update.artifact.parts[0].text for e in events if e.HasField("artifact_update"))
    assert text == "Working, done: delayed 0.4"


@pytest.mark.parametrize("version", VERSIONS)
async def test_push_notification_config_methods(serve, version: str) -> None:
    async with serve() as served, served.client(version=version) as client:
        task = final_task(await send(client, "hello"))
        made = await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task.id, url="http://127.0.0.1:9/hook", token="tok")
        )
        named = await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task.id, id="mine", url="https://example.com/a2a")
        )
        got = await client.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task.id, id="mine")
        )
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
        await client.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="mine")
        )
        after = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
        with pytest.raises(TaskNotFoundError):
            await client.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id="a2a-no", url="http://x")
            )
    assert made.id and made.url == "http://127.0.0.1:9/hook" and made.token == "tok" and made.task_id == task.id
    assert named.id == got.id == "mine" and got.url == "https://example.com/a2a"
    assert [c.id for c in listed.configs] == [made.id, "mine"] and [c.id for c in after.configs] == [made.id]


async def test_a14_list_tasks_pages_newest_first_with_filters(serve) -> None:
    from a2a.types import ListTasksRequest

    async with serve() as served, served.client() as client:
        tasks = [final_task(await send(client, f"n{i}", context_id="a" if i % 2 else "b")) for i in range(5)]
        first = await client.list_tasks(ListTasksRequest(page_size=2))
        second = await client.list_tasks(ListTasksRequest(page_size=2, page_token=first.next_page_token))
        third = await client.list_tasks(ListTasksRequest(page_size=2, page_token=second.next_page_token))
        in_a = await client.list_tasks(ListTasksRequest(context_id="a", include_artifacts=True, history_length=1))
        failed = await client.list_tasks(ListTasksRequest(status=TaskState.TASK_STATE_FAILED))
    newest_first = [t.id for t in reversed(tasks)]
    assert [t.id for t in (*first.tasks, *second.tasks, *third.tasks)] == newest_first
    assert first.total_size == 5 and first.page_size == 2 and third.next_page_token == ""
    assert not first.tasks[0].artifacts
    assert [t.id for t in in_a.tasks] == [tasks[3].id, tasks[1].id]
    assert in_a.tasks[0].artifacts and len(in_a.tasks[0].history) == 1
    assert list(failed.tasks) == [] and failed.total_size == 0


async def test_a07_return_immediately_answers_before_the_task_ends(serve, poll) -> None:
    async with serve() as served, served.client() as client:
        started = final_task(
            await send(client, "delayed 0.3", configuration=SendMessageConfiguration(return_immediately=True))
        )

        async def done() -> Task | None:
            task = await client.get_task(GetTaskRequest(id=started.id))
            return task if task.status.state == TaskState.TASK_STATE_COMPLETED else None

        finished = await poll(done)
    assert started.status.state == TaskState.TASK_STATE_SUBMITTED and not started.artifacts
    assert artifact_text(finished) == "Working, done: delayed 0.3"


async def test_tenants_cannot_see_each_others_tasks(serve) -> None:
    async with serve(api_keys=["k1", "k2"]) as served:
        one = {"Authorization": "Bearer k1", "A2A-Version": "1.0"}
        two = {"Authorization": "Bearer k2", "A2A-Version": "1.0"}
        message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": "secret"}]}
        sent = await served.http.post(
            "/a2a",
            headers=one,
            json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}},
        )
        task_id = sent.json()["result"]["task"]["id"]
        body = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
        theirs = (await served.http.post("/a2a", headers=two, json=body)).json()
        mine = (await served.http.post("/a2a", headers=one, json=body)).json()
        listed = (
            await served.http.post("/a2a", headers=two, json={"jsonrpc": "2.0", "id": 3, "method": "ListTasks"})
        ).json()
        anonymous = await served.http.post("/a2a", headers={"A2A-Version": "1.0"}, json=body)
        card = (await served.http.get("/.well-known/agent-card.json")).json()
    assert theirs["error"]["code"] == -32001 and mine["result"]["id"] == task_id
    assert listed["result"]["tasks"] == [] and listed["result"]["totalSize"] == 0
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert card["securitySchemes"] == {"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}}


async def test_file_input_reaches_the_agent_when_its_media_type_is_accepted(serve, recorder_target) -> None:
    from afactors_a2a import A2AChannel, CardSettings

    channel = A2AChannel(card=CardSettings(input_modes=("text/plain", "image/*")))
    raw = base64.b64encode(b"\x89PNG").decode()
    message = {
        "messageId": "m",
        "role": "ROLE_USER",
        "parts": [{"text": "look"}, {"raw": raw, "mediaType": "image/png", "filename": "p.png"}],
    }
    async with serve(recorder_target, channel=channel) as served:
        ok = (
            await served.rpc(
                "SendMessage", {"message": {**message, "referenceTaskIds": ["a2a-1"]}, "metadata": {"k": 1}}
            )
        ).json()
        pdf = {**message, "parts": [{"raw": raw, "mediaType": "application/pdf"}]}
        refused = (await served.rpc("SendMessage", {"message": pdf})).json()
    assert ok["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert recorder_target.seen[-1] == [("text", "look"), ("data", "image/png")]
    task = ok["result"]["task"]
    assert recorder_target.options[-1] == {
        "task": task["id"],
        "context": task["contextId"],
        "message": "m",
        "metadata": {"k": 1},
        "referenceTaskIds": ["a2a-1"],
    }
    assert refused["error"]["code"] == -32005


@pytest.fixture
def recorder_target() -> Any:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[list[tuple[str, str]]] = []
            self.options: list[dict[str, Any]] = []

        async def run(self, ctx: Any) -> Any:
            from afactors.model import Update

            self.options.append(ctx.options["a2a"])
            self.seen.append(
                [(p.type, getattr(p, "text", None) or getattr(p, "media_type", "")) for p in ctx.messages[-1].contents]
            )
            yield Update(delta="ok")

    return Recorder()


async def test_a_stream_cut_by_the_client_leaves_the_task_running(serve, poll, raw) -> None:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "delayed 0.3"}]}
    payload = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": {"message": message}}
    async with serve() as served, served.client() as client:
        body = json.dumps(payload).encode()
        head = f"A2A-Version: 1.0\r\nContent-Length: {len(body)}\r\n"
        received = await raw(served.url, head, body, lambda got: b"\n\n" in got.partition(b"data: ")[2])
        task_id = json.loads(received.partition(b"data: ")[2].partition(b"\n")[0])["result"]["task"]["id"]

        async def done() -> Task | None:
            task = await client.get_task(GetTaskRequest(id=task_id))
            return task if task.status.state == TaskState.TASK_STATE_COMPLETED else None

        finished = await poll(done)
    assert artifact_text(finished) == "Working, done: delayed 0.3"


async def test_open_streams_end_when_the_host_shuts_down(serve, poll) -> None:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hang"}]}
    payload = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": {"message": message}}
    body: list[str] = []

    async def read(url: str) -> None:
        async with httpx.AsyncClient(timeout=20) as http:
            body.append((await http.post(url + "/a2a", json=payload, headers={"A2A-Version": "1.0"})).text)

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            async with serve(drain_timeout=0.3) as served:
                nursery.start_soon(read, served.url)

                async def working() -> dict | None:
                    listed = (await served.rpc("ListTasks", {})).json()["result"]["tasks"]
                    return listed[0] if listed and listed[0]["status"]["state"] == "TASK_STATE_WORKING" else None

                await poll(working)
    events = [json.loads(line[6:])["result"] for line in body[0].splitlines() if line.startswith("data: ")]
    assert events[0]["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_WORKING"  # not final: resubscribe later
