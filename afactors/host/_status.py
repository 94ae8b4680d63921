"""The status report behind `/status.json` (and the `/status` page): built from frozen statistics snapshots.

Counts are global; conversations, turns and background runs are those of the caller's tenant when the host has
API keys (every tenant's when it has none). No message bodies.

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs

from afactors import __version__
from afactors.actors import ActorSystem
from afactors.host._background import BackgroundTurns
from afactors.host._delivery import Outbox
from afactors.host._monitor import TurnMonitor
from afactors.store import KINDS, Store

RECENT_TURNS = 20
"""Ended turns the report lists, newest first."""

LIVE_ACTORS = 100
"""Live actors the report lists, most recently active first."""


@attrs.frozen
class StatusSources:
    """Everything a status report reads; `channels` returns the served channel names."""

    system: ActorSystem
    store: Store
    background: BackgroundTurns
    monitor: TurnMonitor
    channels: Callable[[], list[str]]
    outbox: Callable[[], Outbox | None]
    started_at: float = attrs.field(factory=time.time)
    cluster: Callable[[], dict[str, Any] | None] = lambda: None
    """A cluster node's view (`ClusterNode.summary`); None on a single host."""


def store_file_size(store: Store) -> int:
    """Bytes the store takes on disk (LMDB: its data file; 0 when it cannot be read)."""
    return store.disk_bytes()


def status_report(sources: StatusSources, tenant: str | None) -> dict[str, Any]:
    """The host's status for `tenant` (None: every tenant), as JSON-able data."""
    system, store = sources.system, sources.store
    actors = system.statistics()
    mine = (lambda t: True) if tenant is None else (lambda t: t == tenant)
    live = [info for info in system.actors() if mine(info.key.tenant)]
    live.sort(key=lambda info: info.last_activity, reverse=True)
    in_flight = [turn for turn in system.turns_in_flight() if mine(turn.key.tenant)]
    progress = sources.background.progress()
    outbox = sources.outbox()
    delivery = None if outbox is None else outbox.statistics()
    store_stats = store.statistics()
    return {
        "version": __version__,
        "now": time.time(),
        "uptime": time.time() - sources.started_at,
        "channels": sources.channels(),
        "actors": attrs.asdict(actors),
        "cluster": sources.cluster(),
        "live": [
            {
                "conversation": info.key.conversation,
                "status": info.status,
                "mailbox_depth": info.mailbox_depth,
                "turns": info.turns,
                "restarts": info.restarts,
                "last_activity": info.last_activity,
            }
            for info in live[:LIVE_ACTORS]
        ],
        "in_flight": [
            {
                "turn_id": turn.turn_id,
                "conversation": turn.key.conversation,
                "phase": turn.phase,
                "accepted_at": turn.accepted_at,
                "background": turn.background,
            }
            for turn in in_flight
        ],
        "background": [
            {
                "turn_id": turn.turn_id,
                "conversation": turn.key.conversation,
                "phase": turn.phase,
                "updates": progress.get(turn.turn_id, 0),
            }
            for turn in in_flight
            if turn.background
        ],
        "recent_turns": [
            {
                "turn_id": s.turn_id,
                "conversation": s.conversation,
                "channel": s.channel,
                "status": s.status,
                "ended_at": s.ended_at,
                "duration": round(s.duration, 6),
            }
            for s in reversed(sources.monitor.recent)
            if mine(s.tenant)
        ][:RECENT_TURNS],
        "outbox": {
            "pending": store.count("outbox"),
            "dead_letters": store.count("dead_letters"),
            **({} if delivery is None else attrs.asdict(delivery)),
        },
        "store": {
            "file_bytes": store_file_size(store),
            "map_usage": round(store.map_usage(), 4),
            "records": {kind: store.count(kind) for kind in KINDS},
            **attrs.asdict(store_stats),
        },
    }
