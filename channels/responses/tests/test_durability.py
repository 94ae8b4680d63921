"""Background responses survive kill -9 of the server process and finish after a restart (R-10, R-41)."""

from __future__ import annotations

import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import openai
import pytest
import trio

from afactors.testing import serve_cli

TESTS = Path(__file__).parent


def server(state_dir: Path) -> AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """`python -m afactors` serving the Responses channel and the slow target: the process and its URL."""
    return serve_cli(
        "--channel", "responses", "--state-dir", str(state_dir), "--target", "slow_target:slow", pythonpath=[TESTS]
    )


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=url + "/v1", api_key="x", max_retries=0, _strict_response_validation=True, timeout=30
    )


@pytest.mark.slow
async def test_a_background_response_survives_kill_9_and_completes_after_restart(tmp_path: Path, poll) -> None:
    state_dir = tmp_path / "state"
    with server(state_dir) as (proc, url):
        async with sdk(url) as client:
            queued = await client.responses.create(model="m", input="are you still there?", background=True)

            async def running():
                got = await client.responses.retrieve(queued.id)
                return got if got.status == "in_progress" else None

            await poll(running)
        proc.kill()  # kill -9 in the middle of the turn
        await trio.to_thread.run_sync(proc.wait)
    with server(state_dir) as (_, url):
        async with sdk(url) as client:
            async with client.responses.stream(response_id=queued.id) as stream:
                kinds = [event.type async for event in stream]
                final = await stream.get_final_response()
            stored = await client.responses.retrieve(queued.id)
    assert final.status == stored.status == "completed"
    assert stored.output_text == "Slowly answering: are you still there?" == final.output_text
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


@pytest.mark.slow
async def test_a_queued_background_response_can_be_cancelled_after_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with server(state_dir) as (proc, url):
        async with sdk(url) as client:
            first = await client.responses.create(
                model="m", input="one more thing to say", background=True, conversation="c"
            )
            second = await client.responses.create(model="m", input="two", background=True, conversation="c")
        proc.kill()
        await trio.to_thread.run_sync(proc.wait)
    with server(state_dir) as (_, url):
        async with sdk(url) as client:
            cancelled = await client.responses.cancel(second.id)
            async with client.responses.stream(response_id=first.id) as stream:
                done = await stream.get_final_response()
            after = await client.responses.retrieve(second.id)
    assert cancelled.status == after.status == "cancelled"
    assert done.status == "completed" and done.output_text == "Slowly answering: one more thing to say"
