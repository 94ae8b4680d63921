"""`python -m bench agent_framework`: what hosting an Agent Framework agent costs on top of a plain target.

Each measurement runs in its own process (trio-asyncio replaces the process's asyncio loop policy, so it must
never share one with the thread bridge):

- `turn`: one turn of a trivial agent (one model answer of one word) driven as a target, sequentially: a plain
  async function target, the same answer from an Agent Framework `Agent` through the adapter, and that `Agent`
  run natively under `asyncio.run` (what Agent Framework itself costs, no bridge). Adapter minus native is what
  the adapter adds (bridge + mapping + session handling); adapter minus plain is the whole added cost per turn.
- `update`: a turn streaming 500 one-word deltas, adapter vs native: the added latency per streamed update.
- `bridge`: the bare bridges on a trivial coroutine and a 1,000-item stream: the loop thread this adapter uses
  vs trio-asyncio in the host's own trio run (`aio_as_trio`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from bench.common import REPO_ROOT, Metrics, bench_main, summarize

TURNS = 2000
WORDS = 500


def _scripted_agent(text: str) -> Any:
    from agent_framework import Agent

    from afactors_agent_framework.testing import ScriptedChatClient, Step

    return Agent(client=ScriptedChatClient(lambda messages: Step(text=text)))


def _ctx(n: int) -> Any:
    from afactors.model import ConversationKey, Message, TurnContext

    return TurnContext(ConversationKey("t", f"c{n}"), (Message("user", "hi"),), {}, f"turn_{n}", 1)


async def _drain(agent: Any, n: int) -> int:
    count = 0
    async for _ in agent.run(_ctx(n)):
        count += 1
    return count


def _per_turn_trio(make: Callable[[], Any], turns: int) -> float:
    import trio

    async def main() -> float:
        agent = make()
        enter = getattr(agent, "__aenter__", None)
        if enter is not None:
            await enter()
        try:
            for n in range(50):
                await _drain(agent, n)
            started = time.perf_counter()
            for n in range(turns):
                await _drain(agent, n)
            return (time.perf_counter() - started) / turns
        finally:
            if enter is not None:
                await agent.__aexit__(None, None, None)

    return trio.run(main)


def _per_turn_native(text: str, turns: int) -> float:
    agent = _scripted_agent(text)

    async def main() -> float:
        async def once() -> None:
            stream = agent.run("hi", stream=True, session=agent.create_session(session_id="t/c"))
            async for _ in stream:
                pass
            await stream.get_final_response()

        for _ in range(50):
            await once()
        started = time.perf_counter()
        for _ in range(turns):
            await once()
        return (time.perf_counter() - started) / turns

    return asyncio.run(main())


def _adapter(text: str) -> Callable[[], Any]:
    def make() -> Any:
        from afactors.targets import as_agent

        return as_agent(_scripted_agent(text))

    return make


def worker_turn(turns: int = TURNS) -> dict[str, float]:
    from afactors.targets import as_agent

    async def plain(messages: list[Any]) -> str:
        return "echo"

    return {
        "plain_us": _per_turn_trio(lambda: as_agent(plain), turns) * 1e6,
        "adapter_us": _per_turn_trio(_adapter("echo"), turns) * 1e6,
        "native_us": _per_turn_native("echo", turns) * 1e6,
    }


def worker_update(turns: int = 40) -> dict[str, float]:
    text = " ".join(["word"] * WORDS)
    adapter = _per_turn_trio(_adapter(text), turns)
    native = _per_turn_native(text, turns)
    per_update_us = (adapter - native) / WORDS * 1e6
    return {"adapter_turn_ms": adapter * 1e3, "native_turn_ms": native * 1e3, "per_update_us": per_update_us}


async def _items(n: int) -> AsyncGenerator[int, None]:
    for i in range(n):
        yield i


def worker_bridge_thread(_: int = 0) -> dict[str, float]:
    import trio

    from afactors_agent_framework.bridge import AsyncioThread

    async def main() -> dict[str, float]:
        async with AsyncioThread() as bridge:
            for _ in range(200):
                await bridge.call(lambda: asyncio.sleep(0))
            started = time.perf_counter()
            for _ in range(5000):
                await bridge.call(lambda: asyncio.sleep(0))
            call_us = (time.perf_counter() - started) / 5000 * 1e6
            started = time.perf_counter()
            async for _ in bridge.stream(lambda: _items(10_000)):
                pass
            item_us = (time.perf_counter() - started) / 10_000 * 1e6
        return {"call_us": call_us, "item_us": item_us}

    return trio.run(main)


def worker_bridge_trio_asyncio(_: int = 0) -> dict[str, float]:
    import trio
    import trio_asyncio

    async def main() -> dict[str, float]:
        async with trio_asyncio.open_loop():
            call = trio_asyncio.aio_as_trio(asyncio.sleep)
            for _ in range(200):
                await call(0)
            started = time.perf_counter()
            for _ in range(5000):
                await call(0)
            call_us = (time.perf_counter() - started) / 5000 * 1e6
            started = time.perf_counter()
            async for _ in trio_asyncio.aio_as_trio(_items(10_000)):
                pass
            item_us = (time.perf_counter() - started) / 10_000 * 1e6
        return {"call_us": call_us, "item_us": item_us}

    return trio.run(main)


WORKERS: dict[str, Callable[[int], dict[str, float]]] = {
    "turn": worker_turn,
    "update": worker_update,
    "bridge_thread": worker_bridge_thread,
    "bridge_trio_asyncio": worker_bridge_trio_asyncio,
}


def _in_subprocess(name: str, size: int = 0) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.agent_framework", "--worker", name, str(size)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"bench worker {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> Metrics:
    """Three runs of each worker (five with --full); medians with their ranges."""
    runs = 3 if quick else 5
    turns = 500 if quick else TURNS
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    for _ in range(runs):
        turn = _in_subprocess("turn", turns)
        add("af.turn_us.plain_function", turn["plain_us"])
        add("af.turn_us.adapter", turn["adapter_us"])
        add("af.turn_us.native_asyncio", turn["native_us"])
        add("af.turn_us.added_vs_plain", turn["adapter_us"] - turn["plain_us"])
        add("af.turn_us.added_vs_native", turn["adapter_us"] - turn["native_us"])
        update = _in_subprocess("update", 10 if quick else 40)
        add("af.update_us.added", update["per_update_us"])
        for bridge in ("thread", "trio_asyncio"):
            result = _in_subprocess(f"bridge_{bridge}")
            add(f"af.bridge_call_us.{bridge}", result["call_us"])
            add(f"af.bridge_item_us.{bridge}", result["item_us"])
    metrics = summarize(samples)
    metrics.notes["af.turn"] = f"{turns} sequential turns of a one-word scripted agent (no tools), {runs} runs"
    metrics.notes["af.update"] = f"a {WORDS}-delta streamed turn, adapter minus native asyncio, per delta"
    return metrics


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(WORKERS[sys.argv[2]](int(sys.argv[3]) or TURNS)))
        raise SystemExit(0)
    raise SystemExit(bench_main("agent_framework", run))
