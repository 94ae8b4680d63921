"""The cluster harness on one node: faults under a conversation load leave a store the check passes, the node's
status and metrics are readable, and no process outlives the block, also when it raises."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trio

from afactors.cluster.testing import (
    HAPROXY,
    SHIPPED_PROXY,
    Cluster,
    Committed,
    ConversationLoad,
    Node,
    check,
    parse_metrics,
    read_committed,
    running_cluster,
    shipped_proxy,
)
from afactors.store import Store
from afactors.store.pg_server import PgServer


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def load_through_faults(cluster: Cluster, load: ConversationLoad) -> None:
    """Turns flow; the node is killed -9 and started again, then paused and resumed, while they do."""
    node = cluster.nodes[0]
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(load.run, stop)
        await trio.sleep(1.0)
        node.kill()
        await trio.to_thread.run_sync(node.start)
        await trio.sleep(1.0)
        node.pause()
        await trio.sleep(0.5)
        node.resume()
        await trio.sleep(1.0)
        stop.set()


@pytest.mark.slow
def test_a_killed_and_paused_node_loses_no_acknowledged_turn() -> None:
    with running_cluster("", 1, cluster=False) as cluster:
        node = cluster.nodes[0]
        load = ConversationLoad(cluster.entries, 20, timeout=3.0, names={node.url: node.name})
        trio.run(load_through_faults, cluster, load)
        assert node.status()["store"]["records"]["turns"] > 0
        completed = cluster.metrics()["n1"]['afactors_turns_total{channel="responses",status="completed"}']
        assert completed > 0  # the second process's own count
        assert node.stop() == 0
        assert len(node.pids) == 2

        async def committed() -> dict[str, Committed]:
            async with Store.open(cluster.directory / "n1") as store:
                return read_committed(store)

        verdict = check(load.attempts, trio.run(committed))
    assert verdict.failures() == []
    assert verdict.acknowledged > 20
    assert verdict.sent > verdict.acknowledged  # requests failed while the node was down
    assert all(a.ran_on == "n1" and not a.forwarded for a in load.attempts if a.acked)


@pytest.mark.slow
def test_no_process_outlives_a_block_that_raises(pg_server: PgServer) -> None:
    with pytest.raises(RuntimeError, match="the test failed"):
        with running_cluster(pg_server.new_store_url(), 1, cluster=False) as cluster:
            pids = [pid for node in cluster.nodes for pid in node.pids]
            cluster.nodes[0].pause()  # even a stopped one
            raise RuntimeError("the test failed")
    assert pids and not any(alive(pid) for pid in pids)
    assert not cluster.directory.exists()


def test_the_shipped_proxy_config_is_rewritten_to_the_nodes_and_haproxy_accepts_it(tmp_path: Path) -> None:
    if not SHIPPED_PROXY.exists() or not Path(HAPROXY).exists():
        pytest.skip(f"needs {SHIPPED_PROXY} and {HAPROXY}")
    nodes = [Node(f"n{n}", [], tmp_path / "log", "", url=f"http://127.0.0.1:{9000 + n}") for n in (1, 2)]
    config = shipped_proxy(8123, nodes)
    lines = config.splitlines()
    assert [line.strip() for line in lines if line.strip().startswith("server ")] == [
        "server n1 127.0.0.1:9001",
        "server n2 127.0.0.1:9002",
    ]
    assert [line.strip() for line in lines if line.strip().startswith("bind ")] == ["bind 127.0.0.1:8123"]
    (tmp_path / "haproxy.cfg").write_text(config)
    checked = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_metrics_are_read_by_name_and_sorted_labels() -> None:
    text = (
        "# HELP afactors_turns Turns.\n# TYPE afactors_turns counter\n"
        'afactors_turns_total{status="completed",channel="responses"} 3.0\n'
        "# HELP afactors_up Up.\n# TYPE afactors_up gauge\nafactors_up 1.0\n"
    )
    assert parse_metrics(text) == {
        'afactors_turns_total{channel="responses",status="completed"}': 3.0,
        "afactors_up": 1.0,
    }
