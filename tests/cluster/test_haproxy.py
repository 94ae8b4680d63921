"""deploy/haproxy.cfg in front of three afactors nodes on loopback, with real clients.

Each node is a real host (its own LMDB state: a request routed to the wrong node would find no history, so a
misroute shows as a 400 or a lost context, not only as another `X-Afactors-Node`), the proxy is the real HAProxy
running the shipped config with only its addresses rewritten, and the clients are the openai SDK (Responses)
and httpx (Conversations, Invocations, Telegram webhook updates).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import openai
import pytest
import trio

import afactors
from afactors.cluster.testing import SHIPPED_PROXY, proxy_config
from afactors.model import TurnContext, Update
from afactors.store.pg_server import free_port
from afactors_invocations import InvocationsChannel
from afactors_responses import ResponsesChannel
from afactors_telegram import TelegramChannel
from afactors_telegram.testing import FakeBotApi
from tests.telegram_fake import CHANNEL_LIMITS

HAPROXY = Path("/usr/sbin/haproxy")
CONFIG = SHIPPED_PROXY
SECRET = "proxy-test-secret"
NODES = ("n1", "n2", "n3")

pytestmark = pytest.mark.skipif(
    not HAPROXY.exists(), reason="HAProxy is not installed (/usr/sbin/haproxy): apt-get install haproxy"
)


def render(port: int, servers: dict[str, int], admin: Path) -> str:
    """The shipped config with this test's addresses: the listener, one server per node, an admin socket."""
    text = proxy_config(port, {name: f"127.0.0.1:{node_port}" for name, node_port in servers.items()})
    text, globals_ = re.subn(r"^global\n", f"global\n    stats socket {admin} level admin\n", text, flags=re.M)
    assert globals_ == 1, "deploy/haproxy.cfg changed shape: update render()"
    return text


class Speaker:
    """Each node's agent: says which node answered and how many user messages the context held; an input
    "wait" streams a first delta, then waits for `gate` before the rest."""

    def __init__(self, node: str, gate: trio.Event) -> None:
        self.node, self.gate = node, gate

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        turns = sum(m.role == "user" for m in ctx.messages)
        yield Update(delta=f"{self.node} heard {turns}")
        if ctx.messages[-1].text == "wait":
            await self.gate.wait()
            yield Update(delta=" and waited")


@attrs.define
class Cluster:
    """Three nodes behind HAProxy: `url` is the proxy, `stop(name)` shuts a node down."""

    url: str
    admin: Path
    stops: dict[str, trio.Event]
    gate: trio.Event

    def sdk(self, **headers: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.url + "/v1", api_key="x", max_retries=0, timeout=20, default_headers=headers
        )

    async def stats(self) -> dict[str, str]:
        """Each node's status as HAProxy sees it (UP, DOWN, ...), from its admin socket."""
        stream = await trio.open_unix_socket(str(self.admin))
        async with stream:
            await stream.send_all(b"show stat\n")
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
        rows = [line.split(",") for line in data.decode().splitlines() if line and not line.startswith("#")]
        return {row[1]: row[17] for row in rows if row[0] == "afactors_nodes" and row[1] in NODES}

    async def until(self, status: Callable[[dict[str, str]], bool]) -> None:
        with trio.fail_after(15):
            while not status(await self.stats()):
                await trio.sleep(0.05)


async def _node(name: str, state: Path, fake: FakeBotApi, gate: trio.Event, stop: trio.Event, *,
                task_status: trio.TaskStatus[int]) -> None:  # fmt: skip
    telegram = TelegramChannel(
        token=fake.token, api_base=fake.api_base, webhook_url="http://127.0.0.1/telegram", secret_token=SECRET,
        limits=CHANNEL_LIMITS, stream=False,
    )  # fmt: skip
    channels = [ResponsesChannel(), InvocationsChannel(), telegram]
    async with afactors.open_host(Speaker(name, gate), channels=channels, port=0, state_dir=state, node_id=name,
                                  durability="unsafe", drain_timeout=1.0) as host:  # fmt: skip
        task_status.started(int(host.urls[0].rsplit(":", 1)[1]))
        await stop.wait()


@asynccontextmanager
async def open_cluster(tmp_path: Path, fake: FakeBotApi) -> AsyncIterator[Cluster]:
    gate = trio.Event()
    stops = {name: trio.Event() for name in NODES}
    async with trio.open_nursery() as nursery:
        ports = {name: await nursery.start(_node, name, tmp_path / name, fake, gate, stops[name]) for name in NODES}
        port, admin = free_port(), tmp_path / "admin.sock"
        config = tmp_path / "haproxy.cfg"
        config.write_text(render(port, ports, admin))
        check = await trio.run_process([HAPROXY, "-c", "-f", config], capture_stdout=True, stderr=subprocess.STDOUT,
                                       check=False)  # fmt: skip
        assert check.returncode == 0, check.stdout.decode()
        with (tmp_path / "haproxy.log").open("w") as log:
            proxy = await trio.lowlevel.open_process([HAPROXY, "-db", "-f", config], stdout=log, stderr=log)
        try:
            cluster = Cluster(f"http://127.0.0.1:{port}", admin, stops, gate)
            with trio.fail_after(15):
                while not admin.exists():
                    assert proxy.poll() is None, (tmp_path / "haproxy.log").read_text()
                    await trio.sleep(0.02)
            await cluster.until(lambda status: list(status.values()) == ["UP"] * len(NODES))
            yield cluster
        finally:
            proxy.terminate()
            await proxy.wait()
            gate.set()
            for stop in stops.values():
                stop.set()


def node(answer: Any) -> str:
    """Which node answered (an httpx response or an SDK raw response)."""
    value: str = answer.headers["x-afactors-node"]
    return value


def test_the_shipped_config_is_valid() -> None:
    check = subprocess.run([HAPROXY, "-c", "-f", CONFIG], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


async def test_a_chain_of_responses_stays_on_the_node_that_answered_its_first_turn(tmp_path, fake) -> None:
    async with open_cluster(tmp_path, fake) as cluster, cluster.sdk() as client:
        chains: list[list[str]] = []
        for _ in range(6):
            first = await client.responses.with_raw_response.create(model="m", input="hello")
            nodes, previous = [node(first)], first.parse()
            for _ in range(3):
                raw = await client.responses.with_raw_response.create(
                    model="m", input="again", previous_response_id=previous.id
                )
                nodes.append(node(raw))
                previous = raw.parse()
            assert previous.output_text == f"{nodes[0]} heard 4"  # the whole chain's context, on its node
            chains.append(nodes)
    assert all(len(set(nodes)) == 1 for nodes in chains), chains
    assert len({nodes[0] for nodes in chains}) == 3, chains  # first turns go round robin


async def test_each_conversation_key_lands_on_one_node_and_keys_spread(tmp_path, fake) -> None:
    seen: dict[str, set[str]] = {}

    def saw(key: str, answer: Any) -> None:
        assert answer.status_code == 200, answer.text
        seen.setdefault(key, set()).add(node(answer))

    async with open_cluster(tmp_path, fake) as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        async with cluster.sdk() as client:
            for k in range(8):
                for _ in range(2):
                    raw = await client.responses.with_raw_response.create(model="m", input="hi", conversation=f"c{k}")
                    saw(f"conversation c{k}", raw.http_response)
                saw(f"conversation c{k}", await http.get(f"/v1/conversations/c{k}/items"))  # only its node has it
        async with cluster.sdk(**{"X-Afactors-Conversation": "by-header"}) as client:
            for _ in range(3):
                saw("header", (await client.responses.with_raw_response.create(model="m", input="hi")).http_response)
        for k in range(8):
            for _ in range(2):
                saw(f"session s{k}", await http.post("/invocations", json={"message": "hi", "session_id": f"s{k}"}))
        fresh = await http.post("/invocations", json={"message": "hi"})  # the node makes a session id up
        saw("made-up session", fresh)
        again = await http.post("/invocations", json={"message": "hi", "session_id": fresh.json()["session_id"]})
        saw("made-up session", again)
        assert again.json()["response"] == f"{node(fresh)} heard 2"
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        update_id = 1000
        for k in range(8):
            chat = fake.private_chat(fake.user(f"U{k}"))
            user = {"id": chat.id, "is_bot": False, "first_name": f"U{k}"}
            where = {"chat": {"id": chat.id, "type": "private", "first_name": f"U{k}"}, "from": user, "date": 1}
            message = {"message_id": 1, **where, "text": "hi"}
            updates = [
                {"message": message},
                {"edited_message": {**message, "edit_date": 2, "text": "hi!"}},
                {
                    "callback_query": {
                        "id": f"q{k}",
                        "from": user,
                        "chat_instance": "x",
                        "message": message,
                        "data": "b",
                    }
                },
            ]
            for update in updates:
                update_id += 1
                saw(f"chat {k}", await http.post("/telegram", json={"update_id": update_id, **update}, headers=headers))
            await fake.wait_for_messages(chat, 1)
    assert {key: len(nodes) for key, nodes in seen.items()} == dict.fromkeys(seen, 1)
    kinds = ("conversation", "session", "chat")
    spread = {kind: set().union(*(nodes for key, nodes in seen.items() if key.startswith(kind))) for kind in kinds}
    assert all(len(nodes) >= 2 for nodes in spread.values()), seen


async def test_a_streamed_turn_comes_through_the_proxy_event_by_event(tmp_path, fake) -> None:
    async with open_cluster(tmp_path, fake) as cluster, cluster.sdk() as client:
        async with client.responses.stream(model="m", input="wait") as stream:
            deltas = []
            with trio.fail_after(10):
                async for event in stream:
                    if event.type == "response.output_text.delta":
                        deltas.append((event.delta, cluster.gate.is_set()))
                        cluster.gate.set()  # the agent goes on only once the first delta reached the client
            final = await stream.get_final_response()
    assert [gated for _, gated in deltas] == [False, True]  # the first delta came while the turn was running
    assert final.output_text.endswith("heard 1 and waited")


async def test_a_malformed_body_gets_the_nodes_own_error_not_the_proxys(tmp_path, fake) -> None:
    body, json_type = b'{"model": "m", "input": ', {"content-type": "application/json"}
    async with open_cluster(tmp_path, fake) as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        responses = await http.post("/v1/responses", content=body, headers=json_type)
        invocations = await http.post("/invocations", content=body, headers=json_type)
        secret = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        telegram = await http.post("/telegram", content=body, headers={**json_type, **secret})
    assert responses.status_code == 400 and responses.json()["error"]["type"] == "invalid_request_error"
    assert invocations.status_code in (400, 422) and "error" in invocations.json()
    assert telegram.status_code == 400 and telegram.json() == {"ok": False, "description": "the body is not JSON"}
    assert {node(r) for r in (responses, invocations, telegram)} <= set(NODES)


@pytest.mark.slow
async def test_a_node_taken_down_leaves_the_rotation_and_only_its_conversations_move(tmp_path, fake) -> None:
    async def turn(http: httpx.AsyncClient, key: str) -> str:
        answer = await http.post("/v1/responses", json={"model": "m", "input": "hi", "conversation": key})
        assert answer.status_code == 200, answer.text
        return node(answer)

    async with open_cluster(tmp_path, fake) as cluster, httpx.AsyncClient(base_url=cluster.url) as http:
        keys = [f"c{k}" for k in range(12)]
        before = {key: await turn(http, key) for key in keys}
        down = max(NODES, key=list(before.values()).count)
        cluster.stops[down].set()
        await cluster.until(lambda status: status[down].startswith("DOWN"))
        after = {key: await turn(http, key) for key in keys}
        later = {key: await turn(http, key) for key in keys}
    assert down not in after.values()
    assert {key: after[key] for key in keys if before[key] != down} == {k: n for k, n in before.items() if n != down}
    assert later == after
