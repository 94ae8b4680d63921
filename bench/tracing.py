"""What turn spans cost: turns/s of one actor system with traces off, then on, alternating in one run.

`python -m bench.tracing [--quick|--full] [--json PATH]` (needs the `otel` extra).

* `tracing.turns_per_s.off` / `.on`: turns/s of an echo target, 200 conversations each sending its next turn as
  soon as the last one is answered, durability `unsafe` (so the disk does not drown what is measured). "On" is an
  SDK `TracerProvider` with a `BatchSpanProcessor` and an exporter that drops the spans (span creation, attributes,
  context propagation and the batch queue are measured, not a collector).
* `tracing.on_off_ratio`: on / off per pair of adjacent phases (1.0: free).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from afactors._tracing import Tracing
from afactors.actors import ActorSystem
from afactors.host._otel import OtelTracing
from afactors.model import ConversationKey, Envelope, Message
from afactors.store import Store
from afactors.targets import as_agent
from bench.common import bench_main, summarize

CONVERSATIONS = 200


class Dropped(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def echo(messages: Sequence[Message]) -> str:
    return "ok"


async def _phase(system: ActorSystem, seconds: float) -> float:
    """Turns/s of `CONVERSATIONS` conversations talking for `seconds`."""
    done = 0
    stop = trio.current_time() + seconds

    async def talk(name: str) -> None:
        nonlocal done
        envelope = Envelope(ConversationKey("bench", name), (Message("user", "hello"),))
        while trio.current_time() < stop:
            await (await system.submit(envelope)).reply()
            done += 1

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for n in range(CONVERSATIONS):
            nursery.start_soon(talk, f"c{n}")
    return done / (time.perf_counter() - start)


async def _measure(pairs: int, seconds: float) -> dict[str, list[float]]:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    modes = {"off": Tracing(), "on": OtelTracing(provider, lambda turn_id, envelope: "bench", "enqueue")}
    samples: dict[str, list[float]] = {"off": [], "on": [], "ratio": []}
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as state:
        async with (
            Store.open(state, durability="unsafe") as store,
            ActorSystem.open(store, as_agent(echo), history_turns=2) as system,
        ):
            await _phase(system, 0.5)  # warm up: every actor active
            for n in range(pairs):
                order = ("off", "on") if n % 2 == 0 else ("on", "off")
                for mode in order:
                    system.tracing = modes[mode]
                    samples[mode].append(await _phase(system, seconds))
                samples["ratio"].append(samples["on"][-1] / samples["off"][-1])
    provider.shutdown()
    return samples


def run(quick: bool) -> Mapping[str, float]:
    samples = trio.run(_measure, 3 if quick else 6, 2.0 if quick else 5.0)
    return summarize({f"tracing.turns_per_s.{m}": samples[m] for m in ("off", "on")} | {
        "tracing.on_off_ratio": samples["ratio"]
    })  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(bench_main("tracing", run, sys.argv[1:]))
