"""Three nodes on one PostgreSQL, HAProxy in front, under steady load on 100 conversations: one node is killed with
kill -9, another stopped (SIGSTOP) past its lease and resumed. Judged from the clients' acknowledgements and from
the store afterwards: no acknowledged turn lost, none committed twice or out of order, none committed by a node
that had lost the conversation, and every conversation served again soon after each fault."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import trio

from afactors.channel import installed_plugins
from afactors.cli import build_parser
from afactors.cluster.testing import (
    DELAY_ENV,
    HAPROXY,
    SHIPPED_PROXY,
    Attempt,
    Cluster,
    Committed,
    ConversationLoad,
    check,
    percentile,
    read_committed,
    running_cluster,
    service_gaps,
    shipped_proxy,
)
from afactors.store import Store
from afactors.store.pg_server import PgServer

LEASE = 5.0
"""Seconds a node's leases last without a heartbeat (`--lease-seconds`)."""

CONVERSATIONS = 100
CLIENT_TIMEOUT = 0.7 * LEASE
"""Seconds a client waits for an answer before it gives up and sends its next number: less than a lease, so a request
stuck in a stopped node's socket (its kernel accepted it) is retried within the lease, once HAProxy's health check
has taken the node out (2 to 3 s)."""


def cluster_support() -> str | None:
    """Why this afactors cannot run a cluster node, or None when it can."""
    help_text = build_parser(installed_plugins()).format_help()
    missing = [flag for flag in ("--node-id", "--advertise", "--lease-seconds") if flag not in help_text]
    return f"`python -m afactors` has no {', '.join(missing)}: the cluster nodes are not built" if missing else None


async def steady_load_through_faults(cluster: Cluster, load: ConversationLoad) -> dict[str, float]:
    """Load on; a fault-free instant (the baseline); kill -9 n1; once its conversations have moved, SIGSTOP n2 for
    twice the lease, then SIGCONT. Returns the wall-clock time of each."""
    faults: dict[str, float] = {}
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(load.run, stop)
        await trio.sleep(5.0)
        faults["baseline"] = time.time()
        await trio.sleep(5.0)  # more than the gaps of a fault-free instant, so none spans both
        faults["kill"] = time.time()
        cluster.node("n1").kill()
        await trio.sleep(LEASE + 4.0)
        faults["pause"] = time.time()
        cluster.node("n2").pause()
        await trio.sleep(2 * LEASE)
        cluster.node("n2").resume()
        faults["resume"] = time.time()
        await trio.sleep(LEASE + 3.0)
        stop.set()
    return faults


def back_after(attempts: list[Attempt], fault: float, node: str) -> list[float]:
    """Seconds from `fault` to the first acknowledgement after it of each conversation whose last turn acknowledged
    before it ran on `node` (the faulty node's conversations), sorted; `math.inf` for one never served again."""
    last: dict[str, tuple[float, str | None]] = {}
    first: dict[str, float] = {}
    for attempt in attempts:
        if not attempt.acked:
            continue
        if attempt.ended <= fault:
            if attempt.ended > last.get(attempt.conversation, (-math.inf, None))[0]:
                last[attempt.conversation] = (attempt.ended, attempt.ran_on)
        else:
            first[attempt.conversation] = min(first.get(attempt.conversation, math.inf), attempt.ended)
    return sorted(first.get(c, math.inf) - fault for c, (_, ran_on) in last.items() if ran_on == node)


@pytest.mark.slow
def test_kill_and_pause_lose_no_acknowledged_turn_and_commit_none_twice(pg_server: PgServer) -> None:
    reason = cluster_support()
    if reason is not None:
        pytest.skip(reason)
    url = pg_server.new_store_url()
    proxy = shipped_proxy if Path(HAPROXY).exists() and SHIPPED_PROXY.exists() else None
    node_args = ["--lease-seconds", str(LEASE)]
    with running_cluster(url, 3, node_args=node_args, env={DELAY_ENV: "20"}, proxy=proxy) as cluster:
        names = {node.url: node.name for node in cluster.nodes}
        load = ConversationLoad(cluster.entries, CONVERSATIONS, timeout=CLIENT_TIMEOUT, names=names)
        faults = trio.run(steady_load_through_faults, cluster, load)
        fenced = cluster.node("n2").status()["actors"]["fenced_commits"]
        cluster.stop()

        async def stored() -> tuple[dict[str, Committed], list[tuple[str, object]]]:
            async with Store.open(url) as store:
                return read_committed(store), store.scan("leases")

        committed, leases = trio.run(stored)
    verdict = check(load.attempts, committed)
    gaps = {fault: service_gaps(load.attempts, faults[fault]) for fault in ("baseline", "kill", "pause")}
    report = {fault: (percentile(list(g.values()), 0.5), percentile(list(g.values()), 0.99), max(g.values()))
              for fault, g in gaps.items()}  # fmt: skip
    print(f"chaos: {verdict.metrics('cluster.chaos')}, n2 fenced commits {fenced}, gaps (p50, p99, max) {report}")
    back = {fault: back_after(load.attempts, faults[fault], node) for fault, node in (("kill", "n1"), ("pause", "n2"))}
    for fault, node in (("kill", "n1"), ("pause", "n2")):
        print(
            f"chaos: {fault}: p99 gap {report[fault][1]:.1f} s = baseline {report['baseline'][1]:.1f} s "
            f"+ {report[fault][1] - report['baseline'][1]:.1f} s (lease {LEASE:.0f} s); {node}'s {len(back[fault])} "
            f"conversations served again after {percentile(back[fault], 0.5):.1f} s (median), "
            f"{percentile(back[fault], 0.9):.1f} s (p90), {back[fault][-1]:.1f} s (max)"
        )
    print(f"chaos: late {verdict.late[:10]}")
    assert verdict.failures() == []
    assert verdict.conversations == CONVERSATIONS and verdict.acknowledged > 5 * CONVERSATIONS
    for fault in ("kill", "pause"):
        never = [c for c, gap in gaps[fault].items() if math.isinf(gap)]
        assert never == [], f"after the {fault}, {len(never)} conversations were never served again: {never[:5]}"
        # The gap of a fault-free instant is the load's own cadence (long on a busy 2-core machine); a fault adds
        # the time until the survivors hold the faulty node dead and take its conversations: within the lease.
        limit = report["baseline"][1] + LEASE
        assert report[fault][1] <= limit, f"p99 gap after the {fault}: {report[fault][1]:.2f} s > {limit:.2f} s"
        # The faulty node's conversations: the survivors hold it dead within about 0.6 of a lease and take them. After
        # the SIGSTOP a client whose request sits in the stopped node's socket waits for its own timeout first.
        served, within = percentile(back[fault], 0.5), LEASE if fault == "kill" else CLIENT_TIMEOUT + LEASE / 2
        assert served <= within, f"after the {fault} the faulty node's conversations came back after {served:.2f} s"
    assert not [key for key, lease in leases if getattr(lease, "owner", None) == "n1"]  # the dead node kept none
