"""Helpers for testing and measuring a cluster end to end: N `python -m afactors` nodes on one store and HAProxy
in front on loopback (`running_cluster`), faults (kill -9, SIGSTOP, SIGCONT), a load of many conversations with a
ledger of acknowledgements (`ConversationLoad`), and the check of the store against that ledger (`check`).

The nodes host `counting` (`--target afactors.cluster.testing:counting`). Nothing in the runtime imports this
package.
"""

from afactors.cluster.testing._cluster import (
    HAPROXY,
    SHIPPED_PROXY,
    Cluster,
    ProxyConfig,
    proxy_config,
    running_cluster,
    shipped_proxy,
)
from afactors.cluster.testing._load import NODE_HEADER, Attempt, ConversationLoad, conversation_id
from afactors.cluster.testing._processes import ClusterError, Node, Process, parse_metrics
from afactors.cluster.testing._target import DELAY_ENV, NODE_ENV, CountingTarget, counting, parse_reply, reply_text
from afactors.cluster.testing._verdict import Committed, Entry, Verdict, check, percentile, read_committed, service_gaps

__all__ = [
    "HAPROXY",
    "SHIPPED_PROXY",
    "Cluster",
    "ProxyConfig",
    "proxy_config",
    "shipped_proxy",
    "running_cluster",
    "Attempt",
    "ConversationLoad",
    "NODE_HEADER",
    "conversation_id",
    "ClusterError",
    "Node",
    "Process",
    "parse_metrics",
    "DELAY_ENV",
    "NODE_ENV",
    "CountingTarget",
    "counting",
    "parse_reply",
    "reply_text",
    "Committed",
    "Entry",
    "Verdict",
    "check",
    "percentile",
    "read_committed",
    "service_gaps",
]
