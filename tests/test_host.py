"""The host through its public surface: readiness, CLI, signals, auth, state-dir lock."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio

import afactors
import afactors.targets
from afactors.host import ApiKeys, ChannelContext, Contribution, Unauthorized
from afactors.model import ConversationKey, Envelope, Message, TurnContext, Update


async def test_readiness_answers_once_started(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0) as host:
        async with httpx.AsyncClient(base_url=host.urls[0]) as client:
            resp = await client.get("/readiness")
    assert resp.status_code == 200
    assert resp.json()["status"] == "healthy"


async def test_embedding_program_can_reopen_its_state(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0):
        pass
    async with afactors.open_host(state_dir=state_dir, port=0) as host:
        assert host.ready.is_set()


def test_api_keys_map_each_key_to_its_own_tenant() -> None:
    keys = ApiKeys(["k1", "k2"])
    assert keys.tenant("Bearer k1") != keys.tenant("Bearer k2")
    assert keys.tenant("bearer k1") == keys.tenant("Bearer k1")
    for bad in (None, "", "Bearer", "Basic k1", "Bearer k3"):
        with pytest.raises(Unauthorized):
            keys.tenant(bad)
    assert ApiKeys().tenant(None) == "default"


@contextmanager
def start_cli(state_dir: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`python -m afactors` on a free port; killed on the way out if a test left it running."""
    with subprocess.Popen(
        [sys.executable, "-m", "afactors", "--port", "0", "--state-dir", str(state_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def read_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("serving on "):
            return line.removeprefix("serving on ").strip()
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_its_url_and_shuts_down_on_signal(state_dir: Path, sig: signal.Signals) -> None:
    with start_cli(state_dir) as proc:
        url = read_url(proc)
        assert httpx.get(url + "/readiness", timeout=5).status_code == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0


def test_second_process_on_the_same_state_dir_fails_clearly(state_dir: Path) -> None:
    with start_cli(state_dir) as first:
        read_url(first)
        second = subprocess.run(
            [sys.executable, "-m", "afactors", "--port", "0", "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode != 0
        assert f"state directory {state_dir} is already in use by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope", "module:attr"),
        # a class fits no shape: refused at startup, before the state directory is opened, naming every shape
        ("afactors.targets:DemoAgent", "is not a target. Accepted shapes: an object with the afactors Agent protocol"),
    ],
)
def test_cli_rejects_a_bad_target_with_a_message(state_dir: Path, target: str, message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "afactors", "--target", target, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert message in out.stderr
    assert not state_dir.exists() and "serving" not in out.stdout


async def test_open_host_refuses_a_target_of_no_accepted_shape_before_serving(state_dir: Path) -> None:
    class CoroutineRun:
        async def run(self, messages: object) -> str:
            return "x"

    with pytest.raises(afactors.targets.TargetError, match="Accepted shapes"):
        async with afactors.open_host(CoroutineRun(), state_dir=state_dir, port=0):
            raise AssertionError("the host must not start")


class ManagedAgent:
    """An agent with resources of its own: usable only between `__aenter__` and `__aexit__`."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __aenter__(self) -> ManagedAgent:
        self.events.append("entered")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.events.append("exited")

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        yield Update(delta=self.events[-1])


async def test_the_host_enters_an_agent_that_is_an_async_context_manager_for_its_lifetime(state_dir: Path) -> None:
    agent = ManagedAgent()
    async with afactors.open_host(agent, state_dir=state_dir, port=0, durability="unsafe") as host:
        assert agent.events == ["entered"]
        handle = await host.system.submit(Envelope(ConversationKey("default", "c"), (Message("user", "hi"),)))
        assert (await handle.reply()).text == "entered"
    assert agent.events == ["entered", "exited"]


class CapturingChannel:
    """A route-less channel that hands its context to the test."""

    name = "capture"
    run_hook = None
    response_hook = None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        self.ctx = ctx
        return Contribution()


async def test_a_background_turn_hidden_while_running_stays_hidden(state_dir: Path) -> None:
    release = trio.Event()

    async def gated(messages: list[Message]) -> str:
        await release.wait()
        return "done"

    channel = CapturingChannel()
    async with afactors.open_host(gated, channels=[channel], state_dir=state_dir, port=0, durability="unsafe") as host:
        ctx = channel.ctx
        record = await ctx.start_background(Envelope(ConversationKey("default", "c1"), (Message("user", "hi"),)))
        with trio.fail_after(5):
            while ctx.record(record.id, "default").status != "in_progress":
                await trio.sleep(0.01)
        assert await ctx.delete(record.id, "default")
        release.set()
        with trio.fail_after(5):
            while host.store.get("responses", record.id).status != "completed":
                await trio.sleep(0.01)
        assert ctx.record(record.id, "default") is None  # the completion did not undo the delete


async def test_channel_context_reads_a_conversations_committed_state(state_dir: Path) -> None:
    class Counting:
        async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
            ctx.state["turns"] = ctx.state.get("turns", 0) + 1
            yield Update(delta="ok")

    channel = CapturingChannel()
    async with afactors.open_host(Counting(), channels=[channel], state_dir=state_dir, port=0, durability="unsafe"):
        ctx = channel.ctx
        key = ConversationKey("default", "c1")
        assert ctx.state(key) == {}
        for _ in range(2):
            handle = await ctx.submit(Envelope(key, (Message("user", "hi"),)))
            await ctx.reply(Envelope(key), handle)
        state = ctx.state(key)
        assert state == {"turns": 2}
        state["turns"] = 99  # a copy: the conversation is not changed
        assert ctx.state(key) == {"turns": 2}
        assert ctx.state(ConversationKey("other-tenant", "c1")) == {}


async def test_records_lists_a_tenants_stored_turns_by_id_prefix_and_conversation(state_dir: Path) -> None:
    channel = CapturingChannel()
    async with afactors.open_host(None, channels=[channel], state_dir=state_dir, port=0, durability="unsafe"):
        ctx = channel.ctx

        async def started(tenant: str, conversation: str, turn_id: str) -> None:
            key = ConversationKey(tenant, conversation)
            envelope = Envelope(key, (Message("user", "hi"),), turn_id=turn_id)
            record = await ctx.start_background(envelope)
            await ctx.wait(record.id, tenant)

        await started("t1", "a", "x-1")
        await started("t1", "b", "x-2")
        await started("t2", "a", "x-3")
        await started("t1", "a", "y-4")
        await started("t1", "a", "x-5")
        assert await ctx.delete("x-5", "t1")
        assert [r.id for r in ctx.records("t1", "x-")] == ["x-1", "x-2"]
        assert [r.id for r in ctx.records("t1", "x-", "t1/a")] == ["x-1"]
        assert [r.id for r in ctx.records("t2", "x-")] == ["x-3"]
        assert ctx.records("t3", "") == []


class _FailingStartup:
    """A channel whose startup hook records that it ran and fails with `error` (if given)."""

    run_hook = None
    response_hook = None

    def __init__(self, name: str, ran: list[str], error: Exception | None) -> None:
        self.name, self._ran, self._error = name, ran, error

    def contribute(self, ctx: ChannelContext) -> Contribution:
        async def startup() -> None:
            self._ran.append(self.name)
            if self._error is not None:
                raise self._error

        return Contribution(on_startup=[startup])


async def test_every_startup_hook_runs_and_the_first_failure_is_raised(state_dir: Path) -> None:
    ran: list[str] = []
    first, second = afactors.host.StartupError("a refused"), afactors.host.StartupError("b refused")
    channels = [_FailingStartup("a", ran, first), _FailingStartup("b", ran, second), _FailingStartup("c", ran, None)]
    with pytest.raises(BaseException) as raised:
        async with afactors.open_host(state_dir=state_dir, port=0, channels=channels):
            pass
    leaf = raised.value
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert leaf is first
    assert ran == ["a", "b", "c"]


async def test_history_edits_append_revise_and_clear_through_the_mailbox(state_dir: Path) -> None:
    from afactors.model import converter

    key = ConversationKey("t", "edits")
    channel = CapturingChannel()
    async with afactors.open_host(state_dir=state_dir, port=0, channels=[channel]) as host:
        ctx = channel.ctx
        appended = await (await ctx.submit(Envelope(key, (Message("user", "note"),), kind="append"))).reply()
        assert appended.status == "completed" and appended.messages == ()
        await (await ctx.submit(Envelope(key, (Message("user", "hi"),)))).reply()
        turns = ctx.turns(key)
        assert [t.input[0].text for t in turns] == ["note", "hi"] and turns[1].output[0].role == "assistant"
        base = {"input": converter.unstructure(turns[0].input), "output": []}
        revise = Envelope(key, (Message("user", "edited"),), kind="revise", options={"seq": 1, "base": base})
        assert (await (await ctx.submit(revise)).reply()).status == "completed"
        stale = await (await ctx.submit(revise)).reply()  # its base no longer matches
        assert stale.status == "failed" and stale.error is not None and stale.error.code == "conflict"
        assert ctx.turns(key)[0].input[0].text == "edited"
        await (await ctx.submit(Envelope(key, kind="clear"))).reply()
        assert ctx.turns(key) == []
        records = host.store.count("responses"), host.store.count("snapshots"), host.store.count("turns")
        transient = await (
            await ctx.submit(Envelope(ConversationKey("t", "eph"), (Message("user", "x"),), kind="transient"))
        ).reply()
        assert transient.text and ctx.turns(ConversationKey("t", "eph")) == []
        assert (host.store.count("responses"), host.store.count("snapshots"), host.store.count("turns")) == records
        assert all(info.key.conversation != "eph" for info in host.system.actors())  # not kept in memory either
    channel = CapturingChannel()
    async with afactors.open_host(state_dir=state_dir, port=0, channels=[channel]):
        ctx = channel.ctx
        assert ctx.turns(key) == []  # the clear is durable
