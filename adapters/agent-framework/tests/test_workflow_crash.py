"""kill -9 in the middle of a workflow turn: after a restart the turn resumes from the last committed checkpoint,
and no turn the user was told had completed runs again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
import trio

from .conftest import eventually

TESTS = Path(__file__).parent


@contextmanager
def server(state_dir: Path, log: Path, *, hang: bool) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m afactors --target flows:approval` serving Responses; yields the process and its URL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    env["AFX_FLOW_LOG"] = str(log)
    env.pop("AFX_FLOW_HANG", None)
    if hang:
        env["AFX_FLOW_HANG"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "afactors", "--channel", "responses", "--port", "0", "--state-dir", str(state_dir),
         "--target", "flows:approval"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("serving on "):
                yield proc, line.removeprefix("serving on ").strip()
                break
        else:
            raise AssertionError(f"the server did not start: {proc.stderr.read() if proc.stderr else ''}")
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


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
                while (done := await client.responses.retrieve(answer.id)).status in ("queued", "in_progress"):  # noqa: ASYNC110
                    await trio.sleep(0.05)
    assert done.status == "completed" and done.output_text == "approved: draft of a poem"
    assert log.read_text().splitlines() == [
        "draft a poem",
        "review draft of a poem",  # the first turn ran once, never again
        "decided True",
        "hanging",  # the killed turn
        "decided True",  # its replay, resumed from the checkpoint the first turn committed
    ]
