"""kill -9 of a host process with a reply pending in the outbox and a turn still running: after a restart
each is delivered exactly once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from afactors_activity.testing import BotClient, FakeConnector, FakeIdentity

APP_ID = "crash-app"
APP_PASSWORD = "crash-secret"

TARGET = """
import trio

async def answer(messages):
    text = messages[-1].text
    if text.startswith("slow"):
        await trio.sleep(1.5)
    return "answer to " + text
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_host(tmp_path: Path, identity: FakeIdentity, connector: FakeConnector, port: int) -> trio.Process:
    argv = [
        sys.executable, "-m", "afactors", "--port", str(port), "--state-dir", str(tmp_path / "state"),
        "--channel", "activity", "--target", "crash_target:answer", "--activity-app-id", APP_ID,
        "--activity-openid-metadata", identity.metadata_url, "--activity-token-endpoint", identity.token_endpoint,
        "--activity-allow-service-url", connector.base_url,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "AFACTORS_ACTIVITY_APP_PASSWORD": APP_PASSWORD}  # fmt: skip
    with (tmp_path / "host.log").open("ab") as log:
        process = await trio.lowlevel.open_process(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    async with httpx.AsyncClient() as http:
        with trio.fail_after(60):
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/readiness")).status_code == 200:
                        return process
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)


def message_calls(connector: FakeConnector, text: str) -> list[int]:
    return [c.status for c in connector.calls if c.body.get("type") == "message" and c.body.get("text") == text]


@pytest.mark.slow
async def test_kill_9_with_a_reply_in_the_outbox_delivers_it_exactly_once(tmp_path: Path) -> None:
    (tmp_path / "crash_target.py").write_text(TARGET)
    identity = FakeIdentity(APP_ID, APP_PASSWORD)
    async with identity.running(), FakeConnector(identity).running() as connector, httpx.AsyncClient() as http:
        port = free_port()
        client = BotClient(http, f"http://127.0.0.1:{port}/api/messages", connector.service_url, channel_id="emulator")
        host = await start_host(tmp_path, identity, connector, port)
        try:
            connector.fail_next(503, retry_after="1")  # the first reply stays in the outbox, due again in 1 s
            fast = client.message("fast", user=client.user(1))
            assert (await client.post(fast, identity.token(connector.service_url))).status_code == 202
            await connector.wait_until(lambda: message_calls(connector, "answer to fast") == [503])
            slow = client.message("slow one", user=client.user(2))
            assert (await client.post(slow, identity.token(connector.service_url))).status_code == 202
            host.kill()  # SIGKILL: no shutdown code runs; "slow one" is accepted but its turn has not finished
            await host.wait()
            assert message_calls(connector, "answer to slow one") == []
            host = await start_host(tmp_path, identity, connector, port)
            await connector.wait_until(lambda: 200 in message_calls(connector, "answer to fast"), within=30)
            await connector.wait_until(lambda: 200 in message_calls(connector, "answer to slow one"), within=30)
            await trio.sleep(1.0)  # room for any duplicate to show up
        finally:
            host.kill()
            await host.wait()
    assert message_calls(connector, "answer to fast") == [503, 200]
    assert message_calls(connector, "answer to slow one") == [200]
    assert not connector.invalid
