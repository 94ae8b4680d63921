"""kill -9 in the middle of a workflow turn: after a restart the turn resumes from the last committed checkpoint,
and no turn the user was told had completed runs again."""

from __future__ import annotations

import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import openai
import pytest
import trio

from .conftest import cli, eventually

TESTS = Path(__file__).parent


def server(state_dir: Path, log: Path, *, hang: bool) -> AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """`python -m afactors --target flows:approval` serving Responses; yields the process and its URL."""
    env = {"AFX_FLOW_LOG": str(log), "AFX_FLOW_HANG": "1" if hang else ""}
    return cli(
        "--channel", "responses", "--state-dir", str(state_dir), "--target", "flows:approval", path=TESTS, env=env
    )


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=30)


@pytest.mark.slow
async def test_kill_9_mid_workflow_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    state_dir, log = tmp_path / "state", tmp_path / "steps.log"
    with server(state_dir, log, hang=True) as (proc, url):
        async with sdk(url) as client:
            asked = await client.responses.create(model="m", input="a poem", conversation="c1")
            assert asked.output_text == "Approve 'draft of a poem'? (yes/no)"  # told: this turn completed
            answer = await client.responses.create(model="m", input="yes", conversation="c1", background=True)
        await eventually(lambda: log.exists() and "hanging" in log.read_text())
        proc.kill()  # kill -9 while the resumed workflow runs its last step
        await trio.to_thread.run_sync(proc.wait)
    with server(state_dir, log, hang=False) as (_, url):
        async with sdk(url) as client:
            with trio.fail_after(20):
                while (done := await client.responses.retrieve(answer.id)).status in ("queued", "in_progress"):
                    await trio.sleep(0.05)
    assert done.status == "completed" and done.output_text == "approved: draft of a poem"
    assert log.read_text().splitlines() == [
        "draft a poem",
        "review draft of a poem",  # the first turn ran once, never again
        "decided True",
        "hanging",  # the killed turn
        "decided True",  # its replay, resumed from the checkpoint the first turn committed
    ]
