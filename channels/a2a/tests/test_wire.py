"""The wire as a raw client sees it (no SDK conversions): v0.3 without an A2A-Version header, and 1.0 corners."""

from __future__ import annotations

import orjson

MESSAGE = {"kind": "message", "messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "stream 2"}]}


async def test_v03_send_answers_a_bare_task_with_kinds(serve) -> None:
    async with serve() as served:
        task = (await served.rpc("message/send", {"message": MESSAGE}, version=None)).json()["result"]
        got = (await served.rpc("tasks/get", {"id": task["id"], "historyLength": 1}, version="0.3")).json()["result"]
    assert task["kind"] == "task" and task["status"]["state"] == "completed"
    assert task["artifacts"][0]["parts"] == [{"kind": "text", "text": "c1 c2 "}]
    assert task["history"][0] == {**MESSAGE, "contextId": task["contextId"], "taskId": task["id"]}
    assert [m["role"] for m in got["history"]] == ["agent"]


async def test_v03_stream_events_have_kinds_and_one_final_status(serve) -> None:
    async with serve() as served:
        response = await served.rpc("message/stream", {"message": MESSAGE}, version=None)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [orjson.loads(line[6:])["result"] for line in response.text.splitlines() if line.startswith("data: ")]
    assert [e["kind"] for e in events] == [
        "task",
        "status-update",
        "artifact-update",
        "artifact-update",
        "status-update",
    ]
    assert [e.get("final") for e in events if e["kind"] == "status-update"] == [False, True]
    assert events[-1]["status"]["state"] == "completed" and events[-2]["lastChunk"] is True


async def test_v03_push_config_methods_use_the_v03_shapes(serve) -> None:
    async with serve() as served:
        task = (await served.rpc("message/send", {"message": MESSAGE}, version=None)).json()["result"]
        config = {
            "taskId": task["id"],
            "pushNotificationConfig": {
                "url": "http://127.0.0.1:9/h",
                "id": "p",
                "authentication": {"schemes": ["Basic"]},
            },
        }
        made = (await served.rpc("tasks/pushNotificationConfig/set", config, version=None)).json()["result"]
        first = (await served.rpc("tasks/pushNotificationConfig/get", {"id": task["id"]}, version=None)).json()
        listed = (await served.rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}, version=None)).json()
        deleted = await served.rpc(
            "tasks/pushNotificationConfig/delete", {"id": task["id"], "pushNotificationConfigId": "p"}, version=None
        )
        after = (await served.rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}, version=None)).json()
    assert made == config == first["result"] and listed["result"] == [config]
    assert deleted.json() == {"jsonrpc": "2.0", "id": 1, "result": None} and after["result"] == []


async def test_subscribing_to_a_task_waiting_for_input_shows_it_and_closes(serve) -> None:
    asked = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "input-required"}]}
    async with serve() as served:
        sent = (await served.rpc("SendMessage", {"message": asked, "configuration": {"historyLength": 0}})).json()
        task = sent["result"]["task"]
        response = await served.rpc("SubscribeToTask", {"id": task["id"]})
    events = [orjson.loads(line[6:])["result"] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "history" not in task and task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert len(events) == 1 and events[0]["task"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
