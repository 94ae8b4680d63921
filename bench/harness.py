"""Run server commands against load shapes: the engine shared by `bench.http` and `bench.peers`.

Each server is a command started as its own process (pinned to `SERVER_CPU`) on a free loopback port with
a fresh scratch directory; it is ready once a POST of the standard request answers 2xx. Each load shape runs
`python -m bench.loadgen` as another process (pinned to `LOAD_CPU`), and the server's CPU time is read with
psutil before and after. `compare` interleaves servers inside every run and rotates their order (run 1:
A, B, C; run 2: B, C, A; ...) so slow drift of a noisy machine spreads over all of them, and starts a fresh
server for every run.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import psutil

from bench.common import LOAD_CPU, MIN_RUNS, REPO_ROOT, SERVER_CPU, Metrics, pin, summarize
from bench.loadgen import REQUEST, LoadResult

RESPONSES_PATH = "/v1/responses"


class ServerUnavailable(Exception):
    """A server command that could not serve: it exited, answered non-2xx, or never answered."""


@attrs.frozen
class ServerSpec:
    """How to start one server: `argv(port, scratch_dir)` is the command; it must serve POST `path`."""

    name: str
    argv: Callable[[int, Path], list[str]]
    env: Mapping[str, str] = attrs.field(factory=dict)
    path: str = RESPONSES_PATH
    startup_timeout: float = 60.0


@attrs.frozen
class Shape:
    """A load shape: `connections` clients sending `body` requests for `duration` s (or `requests` each)."""

    name: str
    connections: int
    body: str = "fresh"
    duration: float | None = None
    warmup: float = 0.0
    requests: int | None = None


@attrs.frozen
class Timing:
    """How long each measurement lasts and how often it is repeated."""

    duration: float
    warmup: float
    runs: int

    @classmethod
    def of(cls, quick: bool) -> Timing:
        """Quick: 1.5 s measured after 0.5 s warmup, 3 runs. Full: 10 s after 2 s, 5 runs."""
        return cls(1.5, 0.5, MIN_RUNS) if quick else cls(10.0, 2.0, 5)

    def shape(self, name: str, connections: int, body: str = "fresh") -> Shape:
        """A duration-based shape with this timing."""
        return Shape(name, connections, body, duration=self.duration, warmup=self.warmup)


@attrs.frozen
class Sample:
    """One shape measured once against one server."""

    result: LoadResult
    server_cpu_seconds: float

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU time per response, warmup included on both sides."""
        return self.server_cpu_seconds * 1000.0 / self.result.total if self.result.total else 0.0

    @property
    def failures(self) -> int:
        """Socket errors plus non-2xx responses."""
        return self.result.errors + self.result.non_2xx


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` and its children (those alive now) have used so far."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@attrs.define
class RunningServer:
    """A started, ready server process."""

    spec: ServerSpec
    process: subprocess.Popen[bytes]
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process (and any children) has used so far."""
        return tree_cpu_seconds(self.process.pid)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_json(url: str, body: Mapping[str, object], timeout: float = 10.0) -> tuple[int, bytes]:
    """POST `body` as JSON to `url` on a new connection; (status, response body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def output_text(response_body: bytes) -> str:
    """The assistant text of a Responses object (all output_text parts joined)."""
    reply = json.loads(response_body)
    return "".join(
        part.get("text", "")
        for item in reply.get("output", [])
        if item.get("type") == "message"
        for part in item.get("content", [])
        if part.get("type") == "output_text"
    )


def _tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log, on one line."""
    last = [line.strip() for line in path.read_text(errors="replace").strip().splitlines()[-lines:]]
    return " | ".join(last) if last else "(no output)"


def _wait_ready(process: subprocess.Popen[bytes], spec: ServerSpec, url: str, log: Path, command: str) -> None:
    deadline = time.monotonic() + spec.startup_timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise ServerUnavailable(f"`{command}` exited with code {code} before serving; output: {_tail(log)}")
        try:
            status, body = post_json(url, REQUEST, timeout=5.0)
        except OSError:
            time.sleep(0.05)  # not listening yet
            continue
        if 200 <= status < 300:
            return
        raise ServerUnavailable(f"`{command}` answered POST {spec.path} with {status}: {body[:300]!r}")
    raise ServerUnavailable(f"`{command}` did not answer within {spec.startup_timeout:.0f} s; output: {_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def running(spec: ServerSpec) -> Iterator[RunningServer]:
    """Start `spec` on a free port with a fresh scratch dir, pinned to SERVER_CPU; stop it (SIGTERM) after."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec.name}-") as scratch:
        port = free_port()
        argv = spec.argv(port, Path(scratch))
        command = " ".join(argv)
        log = Path(scratch) / "server.log"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **spec.env}
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            pin(process.pid, SERVER_CPU)
            url = f"http://127.0.0.1:{port}{spec.path}"
            _wait_ready(process, spec, url, log, command)
            yield RunningServer(spec, process, url)
        finally:
            _stop(process)


def _loadgen_argv(url: str, shape: Shape) -> list[str]:
    argv = [sys.executable, "-m", "bench.loadgen", url, "-c", str(shape.connections), "--body", shape.body]
    if shape.requests is not None:
        argv += ["-n", str(shape.requests)]
    else:
        argv += ["-d", str(shape.duration), "--warmup", str(shape.warmup)]
    return [*argv, "--latencies"]


def measure(server: RunningServer, shape: Shape) -> Sample:
    """Run one load shape against a running server in a separate, pinned load-generator process."""
    limit = (shape.duration or 0) + shape.warmup + 120
    cpu_before = server.cpu_seconds()
    process = subprocess.Popen(
        _loadgen_argv(server.url, shape), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    pin(process.pid, LOAD_CPU)
    try:
        out, err = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    cpu_after = server.cpu_seconds()
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode}): {err.decode(errors='replace')[-600:]}")
    return Sample(LoadResult.from_json(json.loads(out)), cpu_after - cpu_before)


@attrs.define
class Comparison:
    """Samples per (server name, shape name), and the servers that were skipped with the reason."""

    samples: dict[tuple[str, str], list[Sample]] = attrs.field(factory=lambda: defaultdict(list))
    skipped: dict[str, str] = attrs.field(factory=dict)

    def servers(self) -> list[str]:
        """Names of the servers that were measured, in first-measured order."""
        return list(dict.fromkeys(server for server, _ in self.samples))

    def _runs(self, server: str) -> list[list[Sample]]:
        """Per run, the samples of every shape of `server` (shapes of one run share a server process)."""
        per_shape = [v for (name, _), v in self.samples.items() if name == server]
        count = max((len(v) for v in per_shape), default=0)
        return [[v[i] for v in per_shape if len(v) > i] for i in range(count)]

    def ratio(self, server: str, baseline: str, shape: str) -> list[float]:
        """Per run: `server` req/s over `baseline` req/s on `shape` (servers of one run ran back to back)."""
        pairs = zip(self.samples.get((server, shape), []), self.samples.get((baseline, shape), []), strict=False)
        return [a.result.rps / b.result.rps for a, b in pairs if b.result.rps > 0]

    def metrics(self, prefix: str) -> Metrics:
        """Medians (with min-max) of `<prefix>.<server>.{rps,p50_ms,p99_ms,cpu_ms_per_turn}.<shape>`, plus
        `<prefix>.<server>.cpu_ms_per_turn` over all shapes, `<prefix>.<server>.failures` (sum of socket errors
        and non-2xx over all runs), and a note for each skipped server."""
        samples: dict[str, list[float]] = defaultdict(list)
        for (server, shape), runs in self.samples.items():
            base = f"{prefix}.{server}"
            for sample in runs:
                samples[f"{base}.rps.{shape}"].append(sample.result.rps)
                samples[f"{base}.p50_ms.{shape}"].append(sample.result.percentile_ms(0.50))
                samples[f"{base}.p99_ms.{shape}"].append(sample.result.percentile_ms(0.99))
                samples[f"{base}.cpu_ms_per_turn.{shape}"].append(sample.cpu_ms_per_request)
        for server in self.servers():
            for run in self._runs(server):
                total = sum(s.result.total for s in run)
                cpu = sum(s.server_cpu_seconds for s in run)
                samples[f"{prefix}.{server}.cpu_ms_per_turn"].append(cpu * 1000.0 / total if total else 0.0)
        out = summarize(samples)
        for server in self.servers():
            out[f"{prefix}.{server}.failures"] = float(sum(s.failures for run in self._runs(server) for s in run))
        for server, reason in self.skipped.items():
            out.notes[f"{prefix}.{server}.skipped"] = reason
        return out


def progress(message: str) -> None:
    """A progress line on stderr (stdout is for the table)."""
    print(message, file=sys.stderr, flush=True)


def compare(servers: Sequence[ServerSpec], shapes: Sequence[Shape], runs: int) -> Comparison:
    """Measure every shape against every server, `runs` times, a fresh server per run.

    A server that cannot serve is skipped (its reason kept in `skipped`) and not tried again.
    """
    comparison = Comparison()
    for run in range(1, runs + 1):
        turn = (run - 1) % max(len(servers), 1)  # rotate the order so no server always goes first
        for spec in [*servers[turn:], *servers[:turn]]:
            if spec.name in comparison.skipped:
                continue
            try:
                with running(spec) as server:
                    for shape in shapes:
                        sample = measure(server, shape)
                        comparison.samples[(spec.name, shape.name)].append(sample)
                        result = sample.result
                        progress(
                            f"  run {run}/{runs} {spec.name:<14} {shape.name:<12} {result.rps:9,.0f} req/s  "
                            f"p50 {result.percentile_ms(0.5):7.2f} ms  p99 {result.percentile_ms(0.99):7.2f} ms  "
                            f"cpu {sample.cpu_ms_per_request:.3f} ms/req  failures {sample.failures}"
                        )
            except ServerUnavailable as exc:
                comparison.skipped[spec.name] = str(exc)
                progress(f"  {spec.name}: skipped: {exc}")
    return comparison
