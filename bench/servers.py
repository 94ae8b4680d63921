"""The server commands the benchmarks measure: the bare stack and afactors' Responses channel."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.harness import ServerSpec


def bare() -> ServerSpec:
    """The bare quart-trio route on hypercorn (trio worker): `bench.bare_server`."""
    return ServerSpec("bare", lambda port, scratch: [sys.executable, "-m", "bench.bare_server", "--port", str(port)])


def afactors(
    durability: str = "durable", target: str = "bench.targets:echo", name: str = "afactors", *, lean: bool = True
) -> ServerSpec:
    """`python -m afactors` serving `target` over the Responses channel, state in the run's scratch dir;
    `lean=False`: every request through Quart (`--no-lean-routes`), to measure what the lean route saves."""

    def argv(port: int, scratch: Path) -> list[str]:
        return [
            sys.executable, "-m", "afactors",
            "--target", target,
            "--port", str(port),
            "--state-dir", str(scratch / "state"),
            "--durability", durability,
            "--channel", "responses",
            *(() if lean else ("--no-lean-routes",)),
        ]  # fmt: skip

    return ServerSpec(name, argv)
