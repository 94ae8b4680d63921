"""`running_cluster`: N nodes on one store (and optionally HAProxy in front) on loopback, stopped whatever happens."""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from afactors.cluster.testing._processes import ClusterError, Node, Process, node_argv
from afactors.cluster.testing._target import NODE_ENV
from afactors.store.pg_server import free_port

TARGET = "afactors.cluster.testing:counting"
"""The target every node hosts unless told otherwise."""

HAPROXY = "/usr/sbin/haproxy"

SECRET_ENV = "AFACTORS_CLUSTER_SECRET"
"""The environment variable the nodes of a cluster read the secret of their forwarded turns from."""

ProxyConfig = Callable[[int, Sequence[Node]], str]
"""Renders an HAProxy configuration: the port to listen on (127.0.0.1) and the nodes to route to."""


SHIPPED_PROXY = Path(__file__).resolve().parents[3] / "deploy" / "haproxy.cfg"
"""The front proxy's configuration as shipped (in a source checkout)."""


def proxy_config(port: int, servers: Mapping[str, str]) -> str:
    """`deploy/haproxy.cfg` with only its addresses rewritten: the listener on 127.0.0.1:`port`, one `server` line
    per node (`servers`: node id -> host:port). `ClusterError` if the file is absent or no longer has that shape."""
    try:
        text = SHIPPED_PROXY.read_text()
    except FileNotFoundError:
        raise ClusterError(f"the front proxy's configuration {SHIPPED_PROXY} is absent") from None
    text, binds = re.subn(r"^    bind \S+$", f"    bind 127.0.0.1:{port}", text, flags=re.M)
    lines = "".join(f"    server {name} {address}\n" for name, address in servers.items())
    text, blocks = re.subn(r"(^    server \S+ \S+\n)+", lines, text, flags=re.M)
    if (binds, blocks) != (1, 1):
        raise ClusterError(f"{SHIPPED_PROXY} has not one `bind` line and one block of `server` lines")
    return text


def shipped_proxy(port: int, nodes: Sequence[Node]) -> str:
    """The `ProxyConfig` of the shipped configuration: `proxy_config` routing to `nodes`."""
    return proxy_config(port, {node.name: node.url.removeprefix("http://") for node in nodes})


@attrs.define(eq=False)
class Cluster:
    """Running nodes (`nodes`, in start order) and the proxy in front of them, if any; `directory` holds the logs."""

    store: str
    nodes: list[Node]
    directory: Path
    proxy: Process | None = None
    proxy_url: str | None = None

    def node(self, name: str) -> Node:
        """The node called `name`."""
        found = next((node for node in self.nodes if node.name == name), None)
        if found is None:
            raise KeyError(name)
        return found

    @property
    def live(self) -> list[Node]:
        """The nodes running and not paused."""
        return [node for node in self.nodes if node.running and not node.paused]

    def entries(self) -> list[str]:
        """Base URLs a client may send to: the proxy's alone when there is one, else every node's."""
        return [self.proxy_url] if self.proxy_url else [node.url for node in self.nodes]

    def metrics(self) -> dict[str, dict[str, float]]:
        """Each live node's `/metrics` samples, by node name."""
        return {node.name: node.metrics() for node in self.live}

    def stop(self) -> None:
        """Stop the proxy, then every node (SIGCONT, SIGTERM, SIGKILL after a while); safe to call twice."""
        if self.proxy is not None:
            self.proxy.stop()
        for node in self.nodes:
            node.stop()


@contextmanager
def running_cluster(
    store: str,
    nodes: int = 3,
    *,
    cluster: bool = True,
    target: str = TARGET,
    node_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    proxy: ProxyConfig | None = None,
) -> Iterator[Cluster]:
    """Start `nodes` nodes called n1, n2, ... on `store` (a `postgresql://` URL; "" for an LMDB state directory
    each, which only makes sense for one node) with `--node-id`/`--advertise` and a fresh `$AFACTORS_CLUSTER_SECRET`
    when `cluster`; then HAProxy with the configuration `proxy` renders, if given. Yields once all serve; stops
    everything on the way out, also when the block raises or a start fails (each process runs in its own process
    group, so nothing outlives the block).
    """
    if proxy is not None and not Path(HAPROXY).exists():
        raise ClusterError(f"HAProxy is not installed ({HAPROXY}): `apt-get install haproxy`")
    directory = Path(tempfile.mkdtemp(prefix="afactors-cluster-"))
    started = Cluster(store, [], directory)
    secret = {SECRET_ENV: secrets.token_hex(16)} if cluster else {}
    try:
        try:
            for n in range(1, nodes + 1):
                name, port = f"n{n}", free_port()
                argv = node_argv(name, port, store, cluster=cluster, target=target, state_dir=directory / name)
                node = Node(name, [*argv, *node_args], directory / f"{name}.log", f"http://127.0.0.1:{port}/readiness",
                            {NODE_ENV: name, **secret, **(env or {})}, url=f"http://127.0.0.1:{port}")  # fmt: skip
                started.nodes.append(node)
                node.start()
            if proxy is not None:
                port = free_port()
                config = directory / "haproxy.cfg"
                config.write_text(proxy(port, started.nodes))
                started.proxy_url = f"http://127.0.0.1:{port}"
                started.proxy = Process("haproxy", [HAPROXY, "-db", "-f", str(config)], directory / "haproxy.log",
                                        f"{started.proxy_url}/readiness")  # fmt: skip
                started.proxy.start()
            yield started
        finally:
            started.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
