"""`GET /metrics`, read back with prometheus-client's own text parser."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import afactors
from afactors.channel import ChannelContext, Contribution
from afactors_responses import ResponsesChannel


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_metrics_count_turns_by_channel_and_status_and_read_the_snapshots(state_dir: Path) -> None:
    async def agent(messages: list[object]) -> str:
        if "boom" in str(messages[-1]):
            raise RuntimeError("the target failed")
        return "ok"

    channels = [ResponsesChannel()]
    async with afactors.open_host(agent, state_dir=state_dir, port=0, channels=channels) as host:
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=30) as client:
            for text in ("one", "two"):
                made = await client.post("/v1/responses", json={"input": text, "conversation": "c"})
                assert made.status_code == 200
            failed = await client.post("/v1/responses", json={"input": "boom secret-body"})
            resp = await client.get("/metrics")
    assert failed.json()["status"] == "failed"
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain; version=")
    assert "secret-body" not in resp.text and "conv:c" not in resp.text  # no bodies, no conversation ids
    got = samples(resp.text)
    assert got["afactors_turns_total", (("channel", "responses"), ("status", "completed"))] == 2
    assert got["afactors_turns_total", (("channel", "responses"), ("status", "failed"))] == 1
    assert got["afactors_turn_duration_seconds_count", (("channel", "responses"),)] == 3
    assert got["afactors_actors_live", ()] == 2
    assert got["afactors_actors_passivated", ()] == 0
    assert got["afactors_mailbox_depth", ()] == 0
    assert got["afactors_store_records", (("kind", "turns"),)] == 2  # a failed turn adds no history
    assert got["afactors_store_records", (("kind", "responses"),)] == 3
    transactions = got["afactors_store_transactions_total", ()]
    assert transactions >= 3
    assert got["afactors_store_commit_batch_size_count", ()] == transactions
    assert got["afactors_store_commit_batch_size_sum", ()] == got["afactors_store_commits_total", ()]
    assert got["afactors_store_transaction_seconds_count", ()] == transactions
    assert got["afactors_outbox_depth", ()] == 0
    assert got["afactors_deliveries_total", (("outcome", "delivered"),)] == 0
    assert got["afactors_store_file_bytes", ()] > 0
    assert got["afactors_store_flushes_total", ()] == 0  # durable flushes in every commit: no flusher


async def test_metrics_count_the_fast_flushers_flushes(state_dir: Path) -> None:
    async with afactors.open_host(
        state_dir=state_dir, port=0, channels=[ResponsesChannel()], durability="fast"
    ) as host:
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=30) as client:
            assert (await client.post("/v1/responses", json={"input": "hello"})).status_code == 200
            with trio.fail_after(10):
                while samples((await client.get("/metrics")).text)["afactors_store_flushes_total", ()] < 1:
                    await trio.sleep(0.05)


async def test_metrics_show_queued_turns_background_runs_and_mailbox_depth(state_dir: Path) -> None:
    release = trio.Event()

    async def slow(messages: list[object]) -> str:
        await release.wait()
        return "done"

    async with afactors.open_host(slow, state_dir=state_dir, port=0, channels=[ResponsesChannel()]) as host:
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=10) as client:
            body = {"input": "x", "conversation": "busy", "background": True}
            for _ in range(3):
                await client.post("/v1/responses", json=body)
            with trio.fail_after(5):
                while (got := samples((await client.get("/metrics")).text))[
                    "afactors_turns_in_flight", (("phase", "running"),)
                ] != 1:
                    await trio.sleep(0.01)
            release.set()
    assert got["afactors_turns_in_flight", (("phase", "queued"),)] == 2
    assert got["afactors_background_runs", ()] == 3
    assert got["afactors_mailbox_depth", ()] == 2 and got["afactors_mailbox_depth_max", ()] == 2


async def test_metrics_can_be_turned_off(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, metrics=False) as host:
        async with httpx.AsyncClient(base_url=host.urls[0]) as client:
            assert (await client.get("/metrics")).status_code == 404


class MeteredChannel:
    """A channel that reports its own metrics through the channel contract."""

    name = "probe"
    run_hook = None
    response_hook = None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        self.hits = ctx.counter("hits", "Probe hits by kind.", labels=("kind",))
        self.sizes = ctx.histogram("sizes", "Probe sizes.", (1.0, 10.0))
        assert ctx.counter("hits", "Asked for again.", labels=("kind",)) is self.hits
        with pytest.raises(ValueError, match="already a counter"):
            ctx.histogram("hits", "Another kind.", (1.0,))
        with pytest.raises(ValueError, match="lower case"):
            ctx.counter("Bad-Name", "Not a metric name.")
        return Contribution()


async def test_a_channel_reports_counters_and_histograms_through_its_context(state_dir: Path) -> None:
    channel = MeteredChannel()
    async with afactors.open_host(state_dir=state_dir, port=0, channels=[channel]) as host:
        channel.hits.record(kind="a")
        channel.hits.record(2, kind="b")
        channel.sizes.record(5)
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=30) as client:
            got = samples((await client.get("/metrics")).text)
    assert got["afactors_probe_hits_total", (("kind", "a"),)] == 1
    assert got["afactors_probe_hits_total", (("kind", "b"),)] == 2
    assert got["afactors_probe_sizes_bucket", (("le", "1.0"),)] == 0
    assert got["afactors_probe_sizes_bucket", (("le", "10.0"),)] == 1
    assert got["afactors_probe_sizes_sum", ()] == 5


class QuietChannel:
    """Records into its metrics as it contributes."""

    name = "quiet"
    run_hook = None
    response_hook = None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        ctx.counter("hits", "Hits.", labels=("kind",)).record(kind="a")
        ctx.histogram("sizes", "Sizes.", (1.0,)).record(0.5)
        return Contribution()


async def test_without_metrics_a_channel_reports_to_nothing(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, channels=[QuietChannel()], metrics=False) as host:
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=30) as client:
            assert (await client.get("/metrics")).status_code == 404
        assert host.channels["quiet"] is not None
