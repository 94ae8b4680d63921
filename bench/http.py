"""afactors' Responses channel against the bare stack, side by side on loopback (issue 4).

afactors serves non-streaming turns of the echo target with a durable commit every turn; the bare stack is
a quart-trio route on hypercorn (trio worker) returning the same kind of Responses JSON with no state;
`afactors_quart` is afactors with `--no-lean-routes` (every request through Quart, as before the lean route).
Each is measured with 1 and 50 concurrent keep-alive clients, fresh conversation per request: req/s, p50,
p99, server CPU per turn (psutil, server process), afactors/bare req/s and afactors/afactors_quart req/s
(`http.lean_ratio.<clients>`, what serving `POST /v1/responses` in front of Quart gains).

    python -m bench.http [--quick|--full] [--json PATH]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench import servers
from bench.common import Metrics, bench_main, summarize
from bench.harness import Timing, compare

CLIENTS = (1, 50)


def run(quick: bool) -> Metrics:
    """Measure both servers; `http.ratio.<clients>` is afactors req/s over bare req/s (per run, then median)."""
    timing = Timing.of(quick)
    shapes = [timing.shape(str(clients), clients) for clients in CLIENTS]
    quart = servers.afactors(name="afactors_quart", lean=False)
    comparison = compare([servers.afactors(), quart, servers.bare()], shapes, timing.runs)
    metrics = comparison.metrics("http")
    metrics.merge(summarize({f"http.ratio.{c}": comparison.ratio("afactors", "bare", str(c)) for c in CLIENTS}))
    lean = {f"http.lean_ratio.{c}": comparison.ratio("afactors", "afactors_quart", str(c)) for c in CLIENTS}
    metrics.merge(summarize(lean))
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m bench.http [--quick|--full] [--json PATH]`."""
    return bench_main("http", run, argv)


if __name__ == "__main__":
    sys.exit(main())
