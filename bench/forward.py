"""What forwarding costs per turn: the same turns sent to the node that owns their conversations (`direct`) and to
another node that forwards them there (`forwarded`), side by side.

Each server is one process holding two hosts, B (owns every conversation) and A (forwards every turn to B over
loopback HTTP, `afactors.cluster.Forwarder`), both durable LMDB, the `bench.targets:echo` target, Responses
channel. `direct` puts the load on B; `forwarded` on A. So both modes pay for the same process shape, and the
forwarded mode pays for both nodes' work on one pinned CPU: its CPU per turn is the whole cluster's. A forwarded turn
also carries an idempotency key, so B writes it to its inbox before it answers (the price of never losing an accepted
forwarded turn): part of what is measured.

Metrics: `forward.<mode>.{rps,p50_ms,p99_ms,cpu_ms_per_turn}.<clients>` with 1 and 16 keep-alive clients (fresh
conversation per request) and `forward.ratio.<clients>` (forwarded req/s over direct req/s, per run, then median).

    python -m bench.forward [--quick|--full] [--json PATH]
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from bench.common import Metrics, bench_main, summarize
from bench.harness import ServerSpec, Timing, compare

CLIENTS = (1, 16)
SECRET = "bench-forward-secret"


def _spec(mode: str) -> ServerSpec:
    def argv(port: int, scratch: Path) -> list[str]:
        return [sys.executable, "-m", "bench.forward", "--serve", mode, "--port", str(port), "--scratch", str(scratch)]

    return ServerSpec(mode, argv)


def run(quick: bool) -> Metrics:
    """Measure both modes; `forward.ratio.<clients>` is forwarded req/s over direct req/s."""
    timing = Timing.of(quick)
    shapes = [timing.shape(str(clients), clients) for clients in CLIENTS]
    comparison = compare([_spec("direct"), _spec("forwarded")], shapes, timing.runs)
    metrics = comparison.metrics("forward")
    metrics.merge(summarize({f"forward.ratio.{c}": comparison.ratio("forwarded", "direct", str(c)) for c in CLIENTS}))
    return metrics


async def _serve(mode: str, port: int, scratch: Path) -> None:
    """Hosts B and A until SIGTERM; the load's port is B's in `direct` mode, A's in `forwarded` mode."""
    import afactors
    from afactors.cluster import Peer
    from afactors.model import ConversationKey
    from afactors_responses import ResponsesChannel
    from bench.targets import echo

    class Static:
        """Every conversation is `owner`'s."""

        def __init__(self, node_id: str, owner: Peer | None) -> None:
            self._node_id, self._owner = node_id, owner

        @property
        def node_id(self) -> str:
            return self._node_id

        async def locate(self, key: ConversationKey) -> Peer | None:
            return self._owner

    settings: dict[str, Any] = {"cluster_secret": SECRET, "durability": "durable", "web_ui": False}
    b_port, a_port = (port, 0) if mode == "direct" else (0, port)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with afactors.open_host(echo, channels=[ResponsesChannel()], port=b_port, state_dir=scratch / "b",
                                      locator=Static("b", None), **settings) as b:  # fmt: skip
            owner = Peer("b", b.urls[0])
            async with afactors.open_host(echo, channels=[ResponsesChannel()], port=a_port, state_dir=scratch / "a",
                                          locator=Static("a", owner), **settings):  # fmt: skip
                async for _ in signals:
                    return


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m bench.forward [--quick|--full] [--json PATH]` (`--serve MODE` is the server it starts)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:
        parser = argparse.ArgumentParser(prog="python -m bench.forward --serve")
        parser.add_argument("--serve", choices=("direct", "forwarded"), required=True)
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--scratch", type=Path, required=True)
        args = parser.parse_args(argv)
        trio.run(_serve, args.serve, args.port, args.scratch)
        return 0
    return bench_main("forward", run, argv)


if __name__ == "__main__":
    sys.exit(main())
