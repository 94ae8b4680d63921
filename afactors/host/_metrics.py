"""`GET /metrics`: the host in Prometheus text format (prometheus-client), from frozen statistics snapshots.

Gauges and counters are read from `ActorStats`, `StoreStats`, `DeliveryStats` and a few cheap store counts at
scrape time; turn counts and latency, and store batch sizes and transaction latency, are observed as they happen
(`TurnMonitor` listeners, `Store.on_transaction`). Labels are channel, status, phase, kind, outcome: never a
tenant, conversation or message.

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

import re
from collections import Counter as Tally
from collections.abc import Iterator, Sequence

import attrs
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from quart import Response

from afactors.channel import Meter, Route
from afactors.host._monitor import TurnSummary
from afactors.host._retention import RETAINED_KINDS, Sweeper
from afactors.host._status import StatusSources, store_file_size
from afactors.store import KINDS

TURN_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
FORWARD_SECONDS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
COMMIT_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PHASES = ("queued", "starting", "running", "committing")


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


_STORE_COUNTERS = ("commits", "transactions", "failed_commits", "split_batches", "map_grows", "quarantined", "flushes")


class _Snapshots(Collector):
    """Reads the statistics snapshots at scrape time."""

    def __init__(self, sources: StatusSources, sweeper: Sweeper) -> None:
        self._sources = sources
        self._sweeper = sweeper

    def collect(self) -> Iterator[Metric]:
        system, store = self._sources.system, self._sources.store
        actors = system.statistics()
        yield _gauge("afactors_actors_live", "Conversation actors in memory.", actors.active)
        yield _gauge("afactors_actors_busy", "Actors running or waiting to run a turn.", actors.busy)
        yield _gauge("afactors_actors_recovering", "Inbox rows waiting for recovery.", actors.recovering)
        conversations = store.count("snapshots")
        yield _gauge(
            "afactors_actors_passivated", "Stored conversations whose actor is not in memory.",
            max(0, conversations - actors.active),
        )  # fmt: skip
        for name in ("activations", "passivations", "failures", "restarts", "cancelled", "stopped", "recovered"):
            yield _counter(f"afactors_actor_{name}", f"Actor {name} since start.", getattr(actors, name))
        yield _counter(
            "afactors_actor_fenced_commits", "Commits refused because another cluster node took the conversation.",
            actors.fenced_commits,
        )  # fmt: skip
        yield _counter(
            "afactors_actor_taken_over", "Conversations taken from another cluster node with rows to replay.",
            actors.taken_over,
        )  # fmt: skip
        yield _counter("afactors_turn_dead_letters", "Poison turns dead-lettered since start.", actors.dead_letters)
        depths = [actor.mailbox_depth for actor in system.actors()]
        yield _gauge("afactors_mailbox_depth", "Envelopes queued in all mailboxes.", sum(depths))
        yield _gauge("afactors_mailbox_depth_max", "The deepest mailbox.", max(depths, default=0))
        phases = GaugeMetricFamily("afactors_turns_in_flight", "Accepted turns not ended, by phase.", labels=["phase"])
        in_flight = system.turns_in_flight()
        counted = Tally(turn.phase for turn in in_flight)
        for phase in PHASES:
            phases.add_metric([phase], counted[phase])
        yield phases
        yield _gauge(
            "afactors_background_runs", "Background turns accepted and not ended.",
            sum(1 for turn in in_flight if turn.background),
        )  # fmt: skip
        yield _gauge("afactors_outbox_depth", "Replies waiting for delivery.", store.count("outbox"))
        yield _gauge("afactors_dead_letters", "Dead letters stored.", store.count("dead_letters"))
        outbox = self._sources.outbox()
        if outbox is not None:
            deliveries = CounterMetricFamily("afactors_deliveries", "Outbox pushes by outcome.", labels=["outcome"])
            for outcome, value in attrs.asdict(outbox.statistics()).items():
                deliveries.add_metric([outcome], value)
            yield deliveries
        stats = store.statistics()
        yield _gauge("afactors_store_file_bytes", "Size of the LMDB data file.", store_file_size(store))
        yield _gauge("afactors_store_map_usage_ratio", "Fraction of the LMDB map in use.", store.map_usage())
        records = GaugeMetricFamily("afactors_store_records", "Records by kind.", labels=["kind"])
        for kind in KINDS:
            records.add_metric([kind], store.count(kind))
        yield records
        for name in _STORE_COUNTERS:
            doc = f"Store {name.replace('_', ' ')} since start."
            yield _counter(f"afactors_store_{name}", doc, getattr(stats, name))
        removed = CounterMetricFamily("afactors_retention_removed", "Records deleted by retention.", labels=["kind"])
        for kind in RETAINED_KINDS:
            removed.add_metric([kind], self._sweeper.removed[kind])
        yield removed
        yield _counter("afactors_retention_sweeps", "Retention sweeps finished.", self._sweeper.sweeps)


_METER_NAME = re.compile(r"[a-z][a-z0-9_]*")


@attrs.frozen
class _Meter:
    """A prometheus-client counter or histogram behind the channel contract's `Meter`."""

    metric: Counter | Histogram
    labelled: bool

    def record(self, value: float = 1.0, **labels: str) -> None:
        metric = self.metric.labels(**labels) if self.labelled else self.metric
        if isinstance(metric, Counter):
            metric.inc(value)
        else:
            metric.observe(value)


class HostMetrics:
    """The host's Prometheus registry; `turn_ended` and `transaction` are the event-driven observers."""

    def __init__(self, sources: StatusSources, sweeper: Sweeper) -> None:
        self.registry = CollectorRegistry()
        self._turns = Counter(
            "afactors_turns", "Ended turns by channel and status.", ["channel", "status"], registry=self.registry
        )
        self._turn_seconds = Histogram(
            "afactors_turn_duration_seconds", "Seconds from acceptance (queueing included) to the end of a turn.",
            ["channel"], buckets=TURN_SECONDS, registry=self.registry,
        )  # fmt: skip
        self._batch = Histogram(
            "afactors_store_commit_batch_size", "Commits per LMDB write transaction (group commit).",
            buckets=BATCH_SIZES, registry=self.registry,
        )  # fmt: skip
        self._commit_seconds = Histogram(
            "afactors_store_transaction_seconds", "Seconds per LMDB write transaction, fsync included.",
            buckets=COMMIT_SECONDS, registry=self.registry,
        )  # fmt: skip
        self._forwarded = Counter(
            "afactors_cluster_forwarded_turns", "Turns handed to the node owning their conversation, by channel and "
            "outcome (accepted, refused by the owner, unavailable: no owner accepted in time).",
            ["channel", "outcome"], registry=self.registry,
        )  # fmt: skip
        self._forward_seconds = Histogram(
            "afactors_cluster_forward_seconds", "Seconds from submitting a forwarded turn to its owner's acceptance "
            "(relocations and retries included).", ["channel"], buckets=FORWARD_SECONDS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(_Snapshots(sources, sweeper))
        self._meters: dict[str, _Meter] = {}

    def meter(
        self, channel: str, name: str, description: str, labels: Sequence[str], buckets: Sequence[float] | None
    ) -> Meter:
        """A channel's counter (`buckets` None) or histogram, `afactors_<channel>_<name>`; asking again for the same
        name returns the same metric."""
        full = f"afactors_{channel}_{name}"
        if not _METER_NAME.fullmatch(name) or not _METER_NAME.fullmatch(channel):
            raise ValueError(f"metric names are lower case letters, digits and underscores: {full!r}")
        meter = self._meters.get(full)
        if meter is None:
            metric: Counter | Histogram
            if buckets is None:
                metric = Counter(full, description, labelnames=tuple(labels), registry=self.registry)
            else:
                metric = Histogram(full, description, tuple(labels), buckets=tuple(buckets), registry=self.registry)
            meter = self._meters[full] = _Meter(metric, bool(labels))
        if isinstance(meter.metric, Counter) != (buckets is None):
            raise ValueError(f"metric {full!r} is already a {type(meter.metric).__name__.lower()}")
        return meter

    def turn_ended(self, summary: TurnSummary) -> None:
        self._turns.labels(summary.channel, summary.status).inc()
        self._turn_seconds.labels(summary.channel).observe(summary.duration)

    def forwarded(self, channel: str, outcome: str, seconds: float) -> None:
        self._forwarded.labels(channel, outcome).inc()
        self._forward_seconds.labels(channel).observe(seconds)

    def transaction(self, commits: int, seconds: float) -> None:
        self._batch.observe(commits)
        self._commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def routes(self) -> list[Route]:
        async def metrics() -> Response:
            return Response(self.render(), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

        return [Route("/metrics", metrics, methods=("GET",))]
