"""The wire against AG-UI 1.0 (`ag-ui-protocol==1.0.0`) as well as the 0.1.x models the workspace installs.

Agent Framework's AG-UI client pins `ag-ui-protocol<0.2`, so the 1.0 models run in a throwaway environment
(`uv run --isolated --with ag-ui-protocol==1.0.0 agui_wire.py`): they build the request bodies a 1.0 client sends,
and they parse every event this channel answered with, the 1.0-only `RUN_FINISHED` outcome included.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from afactors.model import ErrorInfo, FunctionCallPart, ReasoningPart, Reply, Update, UsagePart
from afactors_agui import AguiChannel, EventStream, RunRequest

from .conftest import GatedAgent, Serve, WeatherAgent, run_input, stream_events, user

pytestmark = pytest.mark.slow

WIRE = Path(__file__).with_name("agui_wire.py")


async def with_agui_1_0(*args: str) -> str:
    """Run agui_wire.py beside `ag-ui-protocol==1.0.0`; its stdout."""
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in $UV
    assert uv, "this test needs uv: run the suite with `python3 -m uv run pytest`"
    command = [uv, "run", "--no-project", "--isolated", "--quiet", "--with", "ag-ui-protocol==1.0.0"]
    command += ["python", str(WIRE), *args]
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    with trio.fail_after(300):
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False, env=env)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def codec_streams() -> list[list[dict[str, Any]]]:
    """Streams of the events no loopback scenario here produces: reasoning, failures, usage with reasoning."""
    reasoning = EventStream(RunRequest("t", "r", protocol_version="1.0"))
    events = reasoning.start()
    for update in (Update(part=ReasoningPart("thinking")), Update(delta="answer"), Update(part=UsagePart(1, 2))):
        events += reasoning.add(update)
    events += reasoning.finish(Reply(usage=UsagePart(1, 2)), {"k": "v"})
    failing = EventStream(RunRequest("t", "r2"))
    failed = failing.start() + failing.add(Update(part=FunctionCallPart("c", "f", "{}")))
    failed += failing.finish(Reply(status="failed", error=ErrorInfo("agent_error", "boom")))
    return [events, failed]


async def test_a_1_0_client_is_served_and_every_event_is_valid_under_1_0(
    serve: Serve, weather: WeatherAgent, gated: GatedAgent, tmp_path: Path
) -> None:
    bodies = orjson.loads(await with_agui_1_0("inputs"))
    streams: list[list[dict[str, Any]]] = []
    async with serve(weather) as served:
        for body in bodies:
            run = await served.run(body)
            assert run.response.status_code == 200, run.response.text
            streams.append(run.events)
        streams.append((await served.run(run_input("t2", [user("hi")]))).events)  # a 0.1 client, for contrast
    weather_run, confirmed, legacy = streams
    assert "TOOL_CALL_RESULT" in [e["type"] for e in weather_run]
    assert [e["snapshot"] for e in weather_run if e["type"] == "STATE_SNAPSHOT"] == [{"city": "Paris", "runs": 1}]
    assert [p.media_type for p in weather.seen[0].messages[-1].contents[1:]] == ["image/png", "application/pdf"]
    assert (
        "".join(e["delta"] for e in confirmed if e["type"] == "TEXT_MESSAGE_CONTENT") == "The front-end answered yes."
    )
    assert legacy[-1]["type"] == "RUN_FINISHED"

    interrupted: list[dict[str, Any]] = []
    async with serve(gated, channel=AguiChannel(busy_policy="interrupt")) as served, trio.open_nursery() as nursery:
        started = trio.Event()
        first = {**run_input("t1", [user("one")]), "protocolVersion": "1.0"}
        nursery.start_soon(stream_events, served.http, first, "TEXT_MESSAGE_CONTENT", interrupted, started)
        with trio.fail_after(5):
            await started.wait()
        nursery.start_soon(stream_events, served.http, run_input("t1", [user("two")]), "", [], trio.Event())
        with trio.fail_after(5):
            await gated.cut.wait()
        gated.release()
    assert interrupted[-1] == {
        "type": "RUN_FINISHED",
        "threadId": "t1",
        "runId": first["runId"],
        "outcome": {"type": "cancelled"},
    }
    streams.append(interrupted)

    path = tmp_path / "streams.json"
    path.write_bytes(orjson.dumps(streams + codec_streams()))
    report = await with_agui_1_0("events", str(path))
    assert report.strip() == f"{sum(len(s) for s in streams + codec_streams())} events valid under ag-ui-protocol 1.0.0"
