"""Push notifications (durable outbox delivery) received by a small webhook receiver on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import h11
import orjson
import trio
from a2a.types import Message, Part, Role, SendMessageRequest, TaskPushNotificationConfig, TaskState


class Receiver:
    """A webhook on 127.0.0.1: records each POST (headers, JSON body) and answers with `statuses` in turn, then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], Any]] = []
        self.url = ""
        self._changed = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        headers: dict[str, str] = {}
        body = b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Request):
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return
        self.received.append((headers, orjson.loads(body)))
        self._changed.set()
        self._changed = trio.Event()
        status = self.statuses.pop(0) if self.statuses else 200
        extra = [(b"retry-after", b"0")] if status == 503 else []
        answer = connection.send(h11.Response(status_code=status, headers=[(b"content-length", b"0"), *extra]))
        await stream.send_all((answer or b"") + (connection.send(h11.EndOfMessage()) or b""))
        await stream.aclose()

    async def wait_for(self, count: int) -> list[tuple[dict[str, str], Any]]:
        with trio.fail_after(10):
            while len(self.received) < count:
                await self._changed.wait()
        return self.received


@asynccontextmanager
async def receiver(statuses: tuple[int, ...] = ()) -> AsyncIterator[Receiver]:
    hook = Receiver(statuses)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, hook.handle, 0, host="127.0.0.1"))
        hook.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/hook"
        yield hook
        nursery.cancel_scope.cancel()


def message(text: str) -> dict[str, Any]:
    return {"messageId": text, "role": "ROLE_USER", "parts": [{"text": text}]}


async def test_a_push_config_given_with_the_message_gets_the_finished_task_with_its_credentials(serve) -> None:
    async with serve() as served, receiver() as hook:
        config = TaskPushNotificationConfig(url=hook.url, token="tok-1")
        config.authentication.scheme, config.authentication.credentials = "Bearer", "s3cret"
        async with served.client(push_notification_config=config) as client:
            request = SendMessageRequest(message=Message(role=Role.ROLE_USER, message_id="m", parts=[Part(text="hi")]))
            events = [event async for event in client.send_message(request)]
        ((headers, body),) = await hook.wait_for(1)
    task = events[0].task
    assert headers["x-a2a-notification-token"] == "tok-1" and headers["authorization"] == "Bearer s3cret"
    assert body["task"]["id"] == task.id and body["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert body["task"]["artifacts"][0]["parts"] == [{"text": "Turn 1: hi"}]
    assert task.status.state == TaskState.TASK_STATE_COMPLETED


async def test_configs_set_on_a_running_task_are_served_in_their_own_version(serve) -> None:
    async with serve() as served, receiver() as hook:
        sent = await served.rpc(
            "SendMessage", {"message": message("delayed 0.3"), "configuration": {"returnImmediately": True}}
        )
        task_id = sent.json()["result"]["task"]["id"]
        await served.rpc("CreateTaskPushNotificationConfig", {"taskId": task_id, "id": "v1", "url": hook.url})
        legacy = {"taskId": task_id, "pushNotificationConfig": {"id": "old", "url": hook.url, "token": "t"}}
        await served.rpc("tasks/pushNotificationConfig/set", legacy, version=None)
        received = await hook.wait_for(2)
    bodies = {("kind" in body): body for _, body in received}
    assert bodies[False]["task"]["id"] == task_id and bodies[False]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert bodies[True]["kind"] == "task" and bodies[True]["status"]["state"] == "completed"
    assert [h.get("x-a2a-notification-token") for h, body in received if "kind" in body] == ["t"]


async def test_an_input_required_turn_is_pushed_too(serve) -> None:
    async with serve() as served, receiver() as hook:
        push = {"url": hook.url}
        await served.rpc(
            "SendMessage", {"message": message("input-required"), "configuration": {"taskPushNotificationConfig": push}}
        )
        ((_, body),) = await hook.wait_for(1)
    assert body["task"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert body["task"]["status"]["message"]["parts"] == [{"text": "What is your name?"}]


async def test_a_failed_push_is_retried_by_the_outbox(serve) -> None:
    async with serve() as served, receiver(statuses=(503, 503)) as hook:
        push = {"url": hook.url}
        await served.rpc(
            "SendMessage", {"message": message("hello"), "configuration": {"taskPushNotificationConfig": push}}
        )
        received = await hook.wait_for(3)
    assert len(received) == 3 and received[0][1] == received[2][1]
    assert served.host.outbox is not None and served.host.outbox.stats.delivered == 1


async def test_a_push_refused_for_good_is_dead_lettered_not_retried(serve, poll) -> None:
    async with serve() as served, receiver(statuses=(404,)) as hook:
        push = {"url": hook.url}
        await served.rpc(
            "SendMessage", {"message": message("hello"), "configuration": {"taskPushNotificationConfig": push}}
        )
        await hook.wait_for(1)

        async def dead() -> list | None:
            return served.host.store.scan("dead_letters") or None

        letters = await poll(dead)
    assert len(hook.received) == 1 and "404" in letters[0][1].error
