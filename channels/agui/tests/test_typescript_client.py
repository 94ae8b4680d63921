"""The TypeScript AG-UI client (`@ag-ui/client` `HttpAgent`) as a black-box client: 0.0.59, the version CopilotKit's
runtime 1.75 depends on, and 1.0.0. `HttpAgent` verifies the order of the events it reads and assembles the
thread's messages and state from them, as a CopilotKit front-end does.

The clients are installed from `ts/package-lock.json` (`npm ci`) on first use; Node.js 20 or newer must be on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
import trio

from .conftest import Serve, WeatherAgent

pytestmark = pytest.mark.slow

TS = Path(__file__).with_name("ts")


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "these tests need Node.js and npm on PATH"
    if not (TS / "node_modules" / "agui-client-1").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TS, check=True, capture_output=True, timeout=600)
    return node


@pytest.mark.parametrize("package", ["agui-client-0", "agui-client-1"])
async def test_the_typescript_client_runs_a_thread(
    serve: Serve, weather: WeatherAgent, node: str, package: str
) -> None:
    async with serve(weather) as served:
        with trio.fail_after(120):
            done = await trio.run_process(
                [node, "client.mjs", package, served.url + "/agui", "ts-thread"],
                cwd=TS, capture_stdout=True, capture_stderr=True, check=False,
            )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    seen = orjson.loads(done.stdout)
    assert [run[0] for run in seen["runs"]] == ["RUN_STARTED"] * 3
    assert [run[-2:] for run in seen["runs"]] == [["STATE_SNAPSHOT", "RUN_FINISHED"]] * 3
    assert seen["messages"] == [
        {"role": "user", "content": "what is the weather?", "toolCalls": []},
        {"role": "reasoning", "content": "The user wants the weather: call the tool.", "toolCalls": []},
        {"role": "assistant", "content": "Let me check. ", "toolCalls": ["get_weather"]},
        {"role": "tool", "content": "sunny", "toolCalls": []},
        {"role": "assistant", "content": "It is sunny in Paris.", "toolCalls": []},
        {"role": "user", "content": "please confirm", "toolCalls": []},
        {"role": "assistant", "content": None, "toolCalls": ["confirm"]},
        {"role": "tool", "content": "yes", "toolCalls": []},
        {"role": "assistant", "content": "The front-end answered yes.", "toolCalls": []},
    ]
    assert seen["state"] == {"theme": "dark", "runs": 3}
    assert [ctx.options["tools"][0]["name"] for ctx in weather.seen] == ["confirm"] * 3
