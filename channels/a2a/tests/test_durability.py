"""A task survives kill -9 of the server process: after a restart it runs again and reaches a terminal state."""

from __future__ import annotations

import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import trio

from afactors.testing import serve_cli


def server(state_dir: Path) -> AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """`python -m afactors` serving the A2A channel and the scripted agent: the process and its URL."""
    return serve_cli("--channel", "a2a", "--state-dir", str(state_dir), "--target", "afactors_a2a.testing:scripted")


async def call(url: str, method: str, params: dict) -> dict:
    async with httpx.AsyncClient(timeout=10) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return (await http.post(url + "/a2a", json=body, headers={"A2A-Version": "1.0"})).json()["result"]


async def state_of(url: str, task_id: str) -> str:
    return (await call(url, "GetTask", {"id": task_id}))["status"]["state"]


@pytest.mark.slow
async def test_a_task_in_flight_survives_kill_9_and_completes_after_restart(tmp_path: Path, poll) -> None:
    state_dir = tmp_path / "state"
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "delayed 1.5"}]}
    queued = {"messageId": "m2", "role": "ROLE_USER", "parts": [{"text": "after"}]}
    with server(state_dir) as (proc, url):
        sent = await call(url, "SendMessage", {"message": message, "configuration": {"returnImmediately": True}})
        task = sent["task"]
        second = await call(
            url,
            "SendMessage",
            {"message": {**queued, "contextId": task["contextId"]}, "configuration": {"returnImmediately": True}},
        )

        async def working() -> bool | None:
            return True if await state_of(url, task["id"]) == "TASK_STATE_WORKING" else None

        await poll(working)
        proc.kill()  # kill -9 in the middle of the turn
        await trio.to_thread.run_sync(proc.wait)
    with server(state_dir) as (_, url):
        assert await state_of(url, task["id"]) in ("TASK_STATE_WORKING", "TASK_STATE_SUBMITTED")

        async def completed() -> dict | None:
            got = await call(url, "GetTask", {"id": second["task"]["id"]})
            return got if got["status"]["state"] == "TASK_STATE_COMPLETED" else None

        after = await poll(completed)
        first = await call(url, "GetTask", {"id": task["id"]})
        listed = await call(url, "ListTasks", {"contextId": task["contextId"], "includeArtifacts": True})
    assert first["status"]["state"] == "TASK_STATE_COMPLETED"
    assert first["artifacts"][0]["parts"] == [{"text": "Working, done: delayed 1.5"}]
    assert after["artifacts"][0]["parts"] == [{"text": "Turn 2: after"}]  # the context kept its order
    assert [t["id"] for t in listed["tasks"]] == [second["task"]["id"], task["id"]]
