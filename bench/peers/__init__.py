"""The peers benchmark: afactors against the bare stack and Microsoft's published hosting helpers.

Same machine, same load generator, same request (`{"model": "m", "input": "hello"}` POST /v1/responses,
non-streaming). Peers:

* `bare`: a quart-trio route on hypercorn (trio worker) returning a Responses object (`bench.bare_server`);
* `g3`: `agent-framework-hosting-responses` around a real `agent_framework.Agent` with an offline stub chat
  client, on Starlette + uvicorn, in its own venv (`bench/peers/install.py`, pins in requirements.txt);
* `afactors`: `python -m afactors` with the echo target, durable commit every turn; `afactors_fast`: the
  same with `--durability fast`. Skipped, with the reason, while `python -m afactors` cannot serve.

Shapes, fresh server per run: 1 and 50 clients with a fresh conversation per request, and 50 clients each
continuing its own conversation (`previous_response_id` of its previous response; chains grow for the whole
measurement, so a peer whose turn cost grows with history shows lower numbers in --full than in --quick). Metrics:
`peers.<peer>.{rps,p50_ms,p99_ms,cpu_ms_per_turn}.{1,50,50_continue}`, `peers.<peer>.failures`.

One conversation, many writers: 20 clients x 10 turns all on one `conversation`, the model taking 10 ms per
turn (`bench.targets.slow_echo`, the stub's `--delay-ms`) as any real model takes time, so turns overlap;
then one more turn reports how many user turns the history holds. A peer that keeps every turn shows 200:
`peers.one_conversation.final_turns.<peer>`. (With a model that never yields to the event loop, G3's
get-run-set cannot interleave and keeps all 200; from 1 ms on it keeps about one turn per round of writers.)

    python -m bench.peers [--quick|--full] [--json PATH]
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from bench import servers
from bench.common import Metrics, parse_turn, summarize
from bench.harness import (
    ServerSpec,
    ServerUnavailable,
    Shape,
    Timing,
    compare,
    measure,
    output_text,
    post_json,
    progress,
    running,
)
from bench.loadgen import REQUEST
from bench.peers.install import ensure_venv, installed_versions
from bench.targets import SLOW_ECHO_SECONDS

G3_SERVER = Path(__file__).with_name("g3_server.py")
ONE_CONVERSATION_CLIENTS = 20
ONE_CONVERSATION_TURNS = 10


def g3(python: Path, delay_ms: float = 0.0) -> ServerSpec:
    """Microsoft's G3 helpers (`g3_server.py`) run by the peers' venv interpreter `python`."""
    return ServerSpec(
        "g3",
        lambda port, scratch: [str(python), str(G3_SERVER), "--port", str(port), "--delay-ms", str(delay_ms)],
    )


def final_turns(spec: ServerSpec) -> tuple[int | None, int]:
    """Run 20 clients x 10 turns on one conversation, then one more turn; (turns the history held, failures).

    The turn count is None when the extra turn fails or its reply carries no `turn N`; that counts as a failure.
    """
    with running(spec) as server:
        conversation = f"conv_bench{secrets.token_hex(12)}"
        shape = Shape(
            "one_conversation",
            ONE_CONVERSATION_CLIENTS,
            f"conversation={conversation}",
            requests=ONE_CONVERSATION_TURNS,
        )
        sample = measure(server, shape)
        status, body = post_json(server.url, {**REQUEST, "conversation": conversation})
    try:
        turn = parse_turn(output_text(body)) if 200 <= status < 300 else None
    except (ValueError, AttributeError):
        turn = None
    return (None, sample.failures + 1) if turn is None else (turn - 1, sample.failures)


def _one_conversation(specs: list[ServerSpec], runs: int) -> Metrics:
    samples: dict[str, list[float]] = {}
    notes: dict[str, str] = {
        "peers.one_conversation.bare": "not measured: the bare route keeps no conversation",
    }
    failures: dict[str, float] = {}
    for run in range(1, runs + 1):
        for spec in specs:
            if f"peers.one_conversation.{spec.name}" in notes:
                continue
            try:
                turns, failed = final_turns(spec)
            except ServerUnavailable as exc:
                notes[f"peers.one_conversation.{spec.name}"] = f"skipped: {exc}"
                progress(f"  {spec.name}: one conversation skipped: {exc}")
                continue
            progress(f"  run {run}/{runs} {spec.name:<14} one conversation: history holds {turns} turns")
            failures[f"peers.one_conversation.failures.{spec.name}"] = (
                failures.get(f"peers.one_conversation.failures.{spec.name}", 0.0) + failed
            )
            if turns is not None:
                samples.setdefault(f"peers.one_conversation.final_turns.{spec.name}", []).append(turns)
    metrics = summarize(samples)
    metrics.update(failures)
    metrics.notes.update(notes)
    return metrics


def run(quick: bool) -> Metrics:
    """Throughput of every peer, then what each peer's history keeps of one conversation under 20 writers."""
    timing = Timing.of(quick)
    notes: dict[str, str] = {}
    throughput = [servers.bare()]
    one_conversation = []
    delay_ms = SLOW_ECHO_SECONDS * 1000.0
    try:
        python = ensure_venv()
        versions = installed_versions()
    except (OSError, subprocess.CalledProcessError) as exc:
        notes["peers.g3.skipped"] = f"could not set up bench/.peers/venv: {exc}"
    else:
        notes["peers.g3.versions"] = ", ".join(f"{name}=={version}" for name, version in versions.items())
        throughput.append(g3(python))
        one_conversation.append(g3(python, delay_ms))
    throughput += [servers.afactors("durable"), servers.afactors("fast", name="afactors_fast")]
    one_conversation += [
        servers.afactors("durable", "bench.targets:slow_echo"),
        servers.afactors("fast", "bench.targets:slow_echo", name="afactors_fast"),
    ]
    shapes = [timing.shape("1", 1), timing.shape("50", 50), timing.shape("50_continue", 50, "chain")]
    metrics = compare(throughput, shapes, timing.runs).metrics("peers")
    metrics.merge(_one_conversation(one_conversation, timing.runs))
    metrics.notes.update(notes)
    return metrics
