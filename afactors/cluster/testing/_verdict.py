"""What the store holds of a `ConversationLoad`'s conversations, checked against what the clients were told: no
acknowledged turn lost, none committed twice or out of order, none committed late by a node that had lost the
conversation; and how long each conversation went unserved across a fault."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise

import attrs

from afactors.cluster.testing._load import Attempt
from afactors.store import Snapshot, Store, TurnRecord

Ref = tuple[str, int]
"""(conversation, sequence number)."""


@attrs.frozen
class Entry:
    """One committed turn of the counting target: the number it was sent, the node that ran it, when it began."""

    seq: int
    node: str
    started: float


@attrs.frozen
class Committed:
    """One conversation in the store: the counting target's `state["seen"]` (every turn it committed, in commit
    order) and its turn records' inputs with their start times, in turn order. The two must agree."""

    seen: tuple[Entry, ...] = ()
    turns: tuple[tuple[int, float], ...] = ()


def read_committed(store: Store, prefix: str = "conv_") -> dict[str, Committed]:
    """Every conversation whose id starts with `prefix`, as the store holds it."""
    seen: dict[str, tuple[Entry, ...]] = {}
    for key, snapshot in store.scan("snapshots"):
        conversation = _conversation(key, prefix)
        if conversation is not None and isinstance(snapshot, Snapshot):
            seen[conversation] = tuple(Entry(int(s), str(n), float(t)) for s, n, t in snapshot.state.get("seen", ()))
    turns: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for key, turn in store.scan("turns"):
        conversation = _conversation(key, prefix)
        text = turn.input[-1].text.strip() if isinstance(turn, TurnRecord) and turn.input else ""
        if conversation is not None and text.isdigit():
            turns[conversation].append((int(text), turn.created_at))
    return {c: Committed(seen.get(c, ()), tuple(turns.get(c, ()))) for c in sorted({*seen, *turns})}


def _conversation(key: str, prefix: str) -> str | None:
    """The conversation id in a store key (`tenant/[scheme:]conversation[/...]`: the Responses channel keeps the
    conversation `c` as `conv:c`), if it starts with `prefix`."""
    parts = key.split("/")
    conversation = parts[1].rpartition(":")[2] if len(parts) > 1 else ""
    return conversation if conversation.startswith(prefix) else None


@attrs.frozen
class Verdict:
    """The invariants of a load against the store. Each tuple lists the offending (conversation, seq) pairs.

    A client sends its next number only once the last is answered or given up on (a timeout, an error), so an
    acknowledged turn committed after a higher number is `out_of_order`. A request the client gave up on may
    still run later, after the client's next one (it waited in a paused node's socket, or in a forward): `late`
    lists those; they are reported, not failures.
    """

    conversations: int
    sent: int
    acknowledged: int
    committed: int
    lost: tuple[Ref, ...] = ()
    duplicated: tuple[Ref, ...] = ()
    out_of_order: tuple[Ref, ...] = ()
    stale: tuple[Ref, ...] = ()
    late: tuple[Ref, ...] = ()
    unsent: tuple[Ref, ...] = ()
    disagreeing: tuple[str, ...] = ()

    def failures(self) -> list[str]:
        """One line per broken invariant (empty: all hold)."""
        found = {
            "acknowledged turns lost": self.lost,
            "turns committed twice": self.duplicated,
            "turns committed out of order": self.out_of_order,
            "turns committed after a turn that began later (a fenced node's commit)": self.stale,
            "committed turns never sent": self.unsent,
            "conversations whose turn records and state disagree": self.disagreeing,
        }
        return [f"{len(refs)} {what}: {list(refs)[:10]}" for what, refs in found.items() if refs]

    def metrics(self, prefix: str) -> dict[str, float]:
        """The counts as `<prefix>.<name>` metrics."""
        counts = {"conversations": self.conversations, "sent": self.sent, "acknowledged": self.acknowledged}
        counts |= {"committed": self.committed, "lost": len(self.lost), "duplicated": len(self.duplicated)}
        counts |= {"out_of_order": len(self.out_of_order), "stale": len(self.stale), "late": len(self.late)}
        return {f"{prefix}.{name}": float(value) for name, value in counts.items()}


def check(attempts: Iterable[Attempt], committed: Mapping[str, Committed]) -> Verdict:
    """Judge the store's `committed` conversations against every `attempt` the clients made."""
    attempts = list(attempts)
    sent = {(a.conversation, a.seq) for a in attempts}
    acked = {(a.conversation, a.seq) for a in attempts if a.acked}
    stored: set[Ref] = set()
    duplicated: list[Ref] = []
    out_of_order: list[Ref] = []
    late: list[Ref] = []
    stale: list[Ref] = []
    disagreeing: list[str] = []
    total = 0
    for conversation, record in committed.items():
        seqs = [entry.seq for entry in record.seen]
        total += len(seqs)
        stored.update((conversation, seq) for seq in seqs)
        duplicated += [(conversation, seq) for seq, n in Counter(seqs).items() for _ in range(n - 1)]
        highest = -math.inf
        for seq in seqs:
            if seq < highest:
                (out_of_order if (conversation, seq) in acked else late).append((conversation, seq))
            highest = max(highest, seq)
        starts = [(entry.seq, entry.started) for entry in record.seen]
        early = {later for (_, began), (later, begun) in pairwise(starts) if begun < began}
        early |= {later for (_, began), (later, begun) in pairwise(record.turns) if begun < began}
        stale += [(conversation, seq) for seq in sorted(early)]
        if seqs != [seq for seq, _ in record.turns]:
            disagreeing.append(conversation)
    in_turns = {(c, s) for c, record in committed.items() for s, _ in record.turns}
    return Verdict(
        conversations=len({a.conversation for a in attempts}),
        sent=len(sent),
        acknowledged=len(acked),
        committed=total,
        lost=tuple(sorted(acked - (stored & in_turns))),
        duplicated=tuple(sorted(duplicated)),
        out_of_order=tuple(sorted(out_of_order)),
        late=tuple(sorted(late)),
        stale=tuple(sorted(stale)),
        unsent=tuple(sorted((stored | in_turns) - sent)),
        disagreeing=tuple(sorted(disagreeing)),
    )


def service_gaps(attempts: Iterable[Attempt], fault: float) -> dict[str, float]:
    """Per conversation acknowledged before `fault` (wall clock): seconds from its last acknowledgement at or before
    the fault to its first after it; `math.inf` for one never acknowledged after it."""
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    for attempt in attempts:
        if not attempt.acked:
            continue
        if attempt.ended <= fault:
            before[attempt.conversation] = max(before.get(attempt.conversation, -math.inf), attempt.ended)
        else:
            after[attempt.conversation] = min(after.get(attempt.conversation, math.inf), attempt.ended)
    return {c: after.get(c, math.inf) - last for c, last in before.items()}


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 < q <= 1) of `values` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
