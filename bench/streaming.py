"""Streaming side by side: the bare stack, Microsoft's G3 helpers and afactors, one stream and many.

`python -m bench.streaming [--quick|--full] [--json PATH]`. Every server runs fresh per run, pinned to
SERVER_CPU; the client (`bench.stream_client`, raw sockets) runs pinned to LOAD_CPU. Peers:

* `trio`: `bench.trio_stream`, the same events on raw trio sockets with no HTTP framework: the floor of any trio
  server (a `trio.sleep` wake-up and one socket write per event);
* `bare`: `bench.bare_stream`, the quart-trio route on hypercorn writing one event per yield;
* `g3`: `bench/peers/g3_server.py`, `responses_from_streaming_run` over a real Agent on uvicorn (its own venv);
* `afactors`: `python -m afactors --target bench.targets:stream`, durable, Responses channel.

Each produces the same text: N deltas `d0 `, `d1 `, ..., either as fast as it can (a checkpoint between
deltas) or one every 20 ms, like a model.

(a) One stream of 10,000 deltas (quick: 5,000), as fast as each peer can: `streaming.<peer>.events_per_s.one`
    (delta events the client received per second, request to end of stream) and
    `streaming.<peer>.cpu_us_per_event.one` (server CPU per delta event, the whole request included).
(b) 1,000 concurrent streams (quick: 200), each 50 deltas 20 ms apart, all opened at once:
    `streaming.<peer>.ttfb_p50_ms|ttfb_p99_ms.<C>` (request sent to first delta received),
    `streaming.afactors.ttfb_added_p50_ms|ttfb_added_p99_ms.<C>` (afactors minus the bare stack of the same run),
    `streaming.<peer>.wall_vs_ideal.<C>` (first request sent to last stream ended, over 50 x 20 ms),
    `streaming.<peer>.rss_kb_per_stream.<C>` (server RSS peak while the streams are open minus before, per
    stream) and `streaming.<peer>.cpu_us_per_event.<C>` (server CPU per delta asked, the whole requests included:
    times 50 x C it is the CPU seconds the shape needs per second of streaming). A stream that did not complete
    counts in `streaming.<peer>.failures`.
(c) The same kind of streams rendered live in Telegram (drafts, a preview message and its edits) against the fake
    Bot API and its flood limits: `streaming.telegram.*`, see `bench.streaming_telegram`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import psutil

from bench import servers, streaming_telegram
from bench.common import LOAD_CPU, MIN_RUNS, REPO_ROOT, Metrics, bench_main, pin, summarize
from bench.harness import RunningServer, ServerSpec, ServerUnavailable, progress, running
from bench.peers import G3_SERVER
from bench.peers.install import ensure_venv

PACED_DELTAS = 50
PACED_INTERVAL_MS = 20.0


def _specs(deltas: int, interval_ms: float, g3_python: Path | None) -> list[ServerSpec]:
    shape = ["--deltas", str(deltas), "--interval-ms", str(interval_ms)]
    specs = [
        ServerSpec("trio", lambda port, _: [sys.executable, "-m", "bench.trio_stream", "--port", str(port), *shape]),
        ServerSpec("bare", lambda port, _: [sys.executable, "-m", "bench.bare_stream", "--port", str(port), *shape]),
    ]
    if g3_python is not None:
        specs.append(ServerSpec("g3", lambda port, _: [str(g3_python), str(G3_SERVER), "--port", str(port), *shape]))
    env = {"BENCH_STREAM_DELTAS": str(deltas), "BENCH_STREAM_INTERVAL_MS": str(interval_ms)}
    afactors = servers.afactors("durable", "bench.targets:stream")
    specs.append(ServerSpec(afactors.name, afactors.argv, env=env))
    return specs


def _client(url: str, connections: int, timeout: float = 300.0) -> dict[str, object]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.stream_client", url, "-c", str(connections), "--timeout", str(timeout)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pin(process.pid, LOAD_CPU)
    out, err = process.communicate(timeout=timeout + 30)
    if process.returncode != 0:
        raise RuntimeError(f"stream client failed: {err.decode(errors='replace')[-600:]}")
    return dict(json.loads(out))


def _rss(server: RunningServer) -> int:
    return int(psutil.Process(server.process.pid).memory_info().rss)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _one(server: RunningServer, deltas: int) -> tuple[float, float, int]:
    """(events/s, server CPU µs per event, failures) of one stream, after one warm-up stream."""
    _client(server.url, 1)
    cpu = server.cpu_seconds()
    stream = _client(server.url, 1)["streams"][0]  # type: ignore[index]
    cpu = server.cpu_seconds() - cpu
    got = int(stream["deltas"])
    failed = int(not stream["completed"] or got != deltas)
    return got / float(stream["done_s"] or 1e9), cpu * 1e6 / max(got, 1), failed


def _many(server: RunningServer, connections: int) -> dict[str, float]:
    """TTFB percentiles, wall over ideal, RSS per open stream, server CPU per delta and failures of
    `connections` paced streams."""
    _client(server.url, 1)
    before = _rss(server)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _rss(server))

    sampler = threading.Thread(target=sample)
    sampler.start()
    cpu = server.cpu_seconds()
    try:
        result = _client(server.url, connections)
    finally:
        done.set()
        sampler.join()
    cpu = server.cpu_seconds() - cpu
    streams = result["streams"]
    assert isinstance(streams, list)
    ttfb = [float(s["first_delta_s"]) * 1000.0 for s in streams if s["first_delta_s"] is not None]
    failures = sum(1 for s in streams if not s["completed"] or s["deltas"] != PACED_DELTAS)
    return {
        "ttfb_p50_ms": _percentile(ttfb, 0.50) if ttfb else float("nan"),
        "ttfb_p99_ms": _percentile(ttfb, 0.99) if ttfb else float("nan"),
        "wall_vs_ideal": float(result["wall_s"]) / (PACED_DELTAS * PACED_INTERVAL_MS / 1000.0),  # type: ignore[arg-type]
        "rss_kb_per_stream": (peak - before) / 1024.0 / connections,
        "cpu_us_per_event": cpu * 1e6 / (connections * PACED_DELTAS),
        "failures": float(failures),
    }


def _rotated(specs: list[ServerSpec], run: int) -> list[ServerSpec]:
    turn = (run - 1) % len(specs)
    return [*specs[turn:], *specs[:turn]]


def run(quick: bool) -> Metrics:
    """(a) one fast stream per peer, (b) many paced streams per peer, (c) Telegram; medians of MIN_RUNS runs."""
    deltas, connections, runs = (5_000, 200, MIN_RUNS) if quick else (10_000, 1_000, MIN_RUNS)
    notes = {
        "streaming.sizes": f"(a) {deltas:,} deltas on one stream; (b) {connections:,} streams x "
        f"{PACED_DELTAS} deltas {PACED_INTERVAL_MS:.0f} ms apart" + (" (quick sizes)" if quick else "")
    }
    try:
        g3_python: Path | None = ensure_venv()
    except (OSError, subprocess.CalledProcessError) as exc:
        g3_python = None
        notes["streaming.g3.skipped"] = f"could not set up bench/.peers/venv: {exc}"
    samples: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, float] = defaultdict(float)
    skipped: set[str] = set()
    for label, specs in (
        ("one", _specs(deltas, 0.0, g3_python)),
        (str(connections), _specs(PACED_DELTAS, PACED_INTERVAL_MS, g3_python)),
    ):
        for number in range(1, runs + 1):
            ttfb: dict[str, dict[str, float]] = {}
            for spec in _rotated(specs, number):
                if spec.name in skipped:
                    continue
                base = f"streaming.{spec.name}"
                try:
                    with running(spec) as server:
                        if label == "one":
                            rate, cpu_us, failed = _one(server, deltas)
                            samples[f"{base}.events_per_s.one"].append(rate)
                            samples[f"{base}.cpu_us_per_event.one"].append(cpu_us)
                            failures[f"{base}.failures"] += failed
                            progress(
                                f"  run {number}/{runs} {spec.name:<9} one stream  {rate:9,.0f} events/s  "
                                f"cpu {cpu_us:6.1f} us/event  failures {failed}"
                            )
                        else:
                            many = _many(server, connections)
                            ttfb[spec.name] = many
                            failures[f"{base}.failures"] += many.pop("failures")
                            for name, value in many.items():
                                samples[f"{base}.{name}.{label}"].append(value)
                            progress(
                                f"  run {number}/{runs} {spec.name:<9} {label} streams  ttfb p50 "
                                f"{many['ttfb_p50_ms']:7.1f} p99 {many['ttfb_p99_ms']:7.1f} ms  wall/ideal "
                                f"{many['wall_vs_ideal']:.2f}  rss {many['rss_kb_per_stream']:.1f} KB/stream  "
                                f"cpu {many['cpu_us_per_event']:.1f} us/event"
                            )
                except ServerUnavailable as exc:
                    skipped.add(spec.name)
                    notes[f"streaming.{spec.name}.skipped"] = str(exc)
                    progress(f"  {spec.name}: skipped: {exc}")
            if "afactors" in ttfb and "bare" in ttfb:
                for q in ("p50", "p99"):
                    added = ttfb["afactors"][f"ttfb_{q}_ms"] - ttfb["bare"][f"ttfb_{q}_ms"]
                    samples[f"streaming.afactors.ttfb_added_{q}_ms.{label}"].append(added)
        if label == "one":
            for peer in ("afactors", "bare"):
                for a, g in zip(
                    samples[f"streaming.{peer}.events_per_s.one"],
                    samples["streaming.g3.events_per_s.one"],
                    strict=False,
                ):
                    samples[f"streaming.{peer}.events_vs_g3.one"].append(a / g)
    metrics = summarize(samples)
    metrics.update(failures)
    metrics["streaming.load_average"] = psutil.getloadavg()[0]
    metrics.notes.update(notes)
    metrics.merge(streaming_telegram.run(quick))
    return metrics


if __name__ == "__main__":
    sys.exit(bench_main("streaming", run))
