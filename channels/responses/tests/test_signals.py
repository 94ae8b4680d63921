"""Ctrl-C under `uv run` (SIGINT twice): the second signal during the drain stops the server at once, quietly,
with every open stream ended by a terminal event and the state intact."""

from __future__ import annotations

import signal
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from afactors.testing import serve_cli

TESTS = Path(__file__).parent


def start(state_dir: Path) -> AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """`python -m afactors` with Responses and Chat Completions and a target that never ends its turn."""
    channels = ("--channel", "responses", "--channel", "chat")
    args = ("--state-dir", str(state_dir), "--target", "slow_target:stuck", "--drain-timeout", "60")
    return serve_cli(*channels, *args, pythonpath=[TESTS])


async def read_stream(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], events: list[str], started: trio.Event
) -> None:
    """POST a streaming request and keep every SSE `data:` payload until the server ends the stream."""
    try:
        async with client.stream("POST", path, json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: "))
                    if len(events) >= 2:
                        started.set()
    except httpx.HTTPError as exc:  # the stream was cut: the assertions on `events` say what is missing
        events.append(f"cut: {exc!r}")


@pytest.mark.slow
async def test_second_sigint_stops_now_quietly_with_terminal_events(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with start(state_dir) as (proc, url):
        responses: list[str] = []
        chat: list[str] = []
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            kept = await client.post("/v1/conversations", json={"items": [{"role": "user", "content": "keep me"}]})
            conversation = kept.json()["id"]
            async with trio.open_nursery() as nursery:
                got_responses, got_chat = trio.Event(), trio.Event()
                nursery.start_soon(
                    read_stream, client, "/v1/responses", {"input": "hi", "stream": True}, responses, got_responses
                )
                nursery.start_soon(
                    read_stream,
                    client,
                    "/v1/chat/completions",
                    {"messages": [{"role": "user", "content": "hi"}], "stream": True},
                    chat,
                    got_chat,
                )
                with trio.fail_after(10):
                    await got_responses.wait()
                    await got_chat.wait()
                proc.send_signal(signal.SIGINT)
                await trio.sleep(1.0)  # past the window in which a second SIGINT is the same Ctrl-C forwarded by uv
                proc.send_signal(signal.SIGINT)
                with trio.fail_after(20):
                    status = await trio.to_thread.run_sync(proc.wait)
        stdout, stderr = proc.communicate(timeout=5)
    assert status == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "stopping now" in stdout
    assert orjson.loads(responses[-1])["type"] == "response.failed"
    assert "error" in orjson.loads(chat[-2]) and chat[-1] == "[DONE]"

    with start(state_dir) as (proc, url):  # the state is intact
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            items = (await client.get(f"/v1/conversations/{conversation}/items")).json()["data"]
        assert [item["content"][0]["text"] for item in items] == ["keep me"]
