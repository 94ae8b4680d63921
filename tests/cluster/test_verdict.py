"""The cluster check on synthetic ledgers and stores: each invariant it reports, and the service gap across a fault."""

from __future__ import annotations

import math

from afactors.cluster.testing import Attempt, Committed, Entry, check, parse_reply, percentile, reply_text, service_gaps


def acked(conversation: str, seq: int, ended: float = 0.0, node: str = "n1") -> Attempt:
    return Attempt(conversation, seq, "http://n", ended - 0.01, ended, True, node, node)


def failed(conversation: str, seq: int, ended: float = 0.0) -> Attempt:
    return Attempt(conversation, seq, "http://n", ended - 0.01, ended, False, error="ConnectError")


def stored(*entries: tuple[int, str, float]) -> Committed:
    """A conversation whose state and turn records agree: each entry (seq, node, started)."""
    return Committed(tuple(Entry(*e) for e in entries), tuple((seq, started) for seq, _, started in entries))


def test_a_clean_run_breaks_no_invariant() -> None:
    attempts = [acked("a", 1), acked("a", 2), failed("a", 3), acked("a", 4), acked("b", 1)]
    committed = {"a": stored((1, "n1", 1.0), (2, "n1", 2.0), (4, "n2", 4.0)), "b": stored((1, "n2", 1.5))}
    verdict = check(attempts, committed)
    assert verdict.failures() == []
    assert (verdict.conversations, verdict.sent, verdict.acknowledged, verdict.committed) == (2, 5, 4, 4)


def test_an_unacknowledged_turn_may_be_committed_once() -> None:
    attempts = [acked("a", 1), failed("a", 2), acked("a", 3)]
    assert check(attempts, {"a": stored((1, "n1", 1.0), (2, "n1", 2.0), (3, "n2", 3.0))}).failures() == []


def test_an_acknowledged_turn_missing_from_the_store_is_lost() -> None:
    verdict = check([acked("a", 1), acked("a", 2)], {"a": stored((1, "n1", 1.0))})
    assert verdict.lost == (("a", 2),)
    assert verdict.failures() == ["1 acknowledged turns lost: [('a', 2)]"]


def test_an_acknowledged_turn_in_the_state_but_without_its_turn_record_is_lost() -> None:
    record = Committed((Entry(1, "n1", 1.0), Entry(2, "n1", 2.0)), ((1, 1.0),))
    verdict = check([acked("a", 1), acked("a", 2)], {"a": record})
    assert verdict.lost == (("a", 2),)
    assert verdict.disagreeing == ("a",)


def test_a_turn_committed_twice_is_reported_once_per_extra_copy() -> None:
    verdict = check([acked("a", 1), failed("a", 2)], {"a": stored((1, "n1", 1.0), (2, "n1", 2.0), (2, "n2", 3.0))})
    assert verdict.duplicated == (("a", 2),)
    assert verdict.out_of_order == () and verdict.late == ()  # a copy is a duplicate, not a reordering


def test_an_acknowledged_number_committed_after_a_higher_one_is_out_of_order() -> None:
    attempts = [acked("a", 1), acked("a", 2), acked("a", 3)]
    verdict = check(attempts, {"a": stored((1, "n1", 1.0), (3, "n2", 3.0), (2, "n1", 3.5))})
    assert verdict.out_of_order == (("a", 2),)
    assert verdict.duplicated == ()


def test_a_request_given_up_on_that_runs_after_the_next_one_is_late_not_a_failure() -> None:
    attempts = [acked("a", 1), failed("a", 2), acked("a", 3)]
    verdict = check(attempts, {"a": stored((1, "n1", 1.0), (3, "n2", 3.0), (2, "n2", 3.5))})
    assert verdict.late == (("a", 2),)
    assert verdict.out_of_order == ()
    assert verdict.failures() == []


def test_a_turn_committed_after_one_that_began_later_is_a_fenced_nodes_commit() -> None:
    # n1 began turn 2 at t=2.0, was paused past its lease; n2 took over and committed 3 and 4; n1 resumed and its
    # late commit of 2 went in last: exactly what the epoch check must stop.
    attempts = [acked("a", 1), failed("a", 2), acked("a", 3), acked("a", 4)]
    verdict = check(attempts, {"a": stored((1, "n1", 1.0), (3, "n2", 5.0), (4, "n2", 6.0), (2, "n1", 2.0))})
    assert verdict.stale == (("a", 2),)
    assert any("fenced node" in line for line in verdict.failures())


def test_a_late_commit_seen_only_in_the_turn_records_is_stale_too() -> None:
    # The stale commit replaced the snapshot with the fenced node's own older view: the state alone looks tidy.
    record = Committed((Entry(1, "n1", 1.0), Entry(2, "n1", 2.0)), ((1, 1.0), (3, 5.0), (2, 2.0)))
    verdict = check([acked("a", 1), failed("a", 2), acked("a", 3)], {"a": record})
    assert verdict.stale == (("a", 2),)
    assert verdict.lost == (("a", 3),)
    assert verdict.disagreeing == ("a",)


def test_a_committed_turn_nobody_sent_is_reported() -> None:
    verdict = check([acked("a", 1)], {"a": stored((1, "n1", 1.0), (7, "n1", 2.0))})
    assert verdict.unsent == (("a", 7),)


def test_metrics_name_every_count() -> None:
    metrics = check([acked("a", 1), acked("a", 2)], {"a": stored((1, "n1", 1.0))}).metrics("cluster.chaos")
    assert metrics["cluster.chaos.lost"] == 1.0
    assert metrics["cluster.chaos.acknowledged"] == 2.0
    assert metrics["cluster.chaos.stale"] == 0.0


def test_service_gap_runs_from_the_last_ack_before_the_fault_to_the_first_after() -> None:
    attempts = [
        acked("a", 1, ended=9.0), acked("a", 2, ended=9.5), failed("a", 3, ended=12.0), acked("a", 4, ended=13.5),
        acked("b", 1, ended=9.9), acked("b", 2, ended=10.1),
        acked("c", 1, ended=8.0), failed("c", 2, ended=15.0),
        acked("d", 1, ended=11.0),
    ]  # fmt: skip
    gaps = service_gaps(attempts, fault=10.0)
    assert gaps["a"] == 4.0
    assert math.isclose(gaps["b"], 0.2)
    assert gaps["c"] == math.inf  # never served again
    assert "d" not in gaps  # nothing before the fault


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))


def test_the_counting_targets_answer_round_trips() -> None:
    assert parse_reply(reply_text(42, "n2")) == (42, "n2")
    assert parse_reply("seq x node n1") is None
    assert parse_reply("not a number") is None
