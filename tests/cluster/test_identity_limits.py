"""Identity rate limits on two cluster nodes (real hosts on loopback, one throwaway PostgreSQL schema): link codes
per identity and failed redemptions per sender are counted in the store, so the limit holds across the nodes."""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from afactors.identity import IdentityConfig, IdentityService, LinkFailed
from afactors.identity._window import StoredWindow
from afactors.model import Identity
from afactors.store import Put, RateWindow, Store
from afactors.store.pg_server import PgServer
from tests.cluster.test_cluster_writes import two_nodes

LIMIT = 3
LIMITED = IdentityConfig(codes_per_window=LIMIT, failures_per_window=LIMIT)


@pytest.fixture
def url(pg_server: PgServer) -> str:
    return pg_server.new_store_url()


async def test_the_link_code_past_the_limit_is_refused_whichever_node_is_asked(url: str) -> None:
    async with two_nodes(url, identity=LIMITED) as (a, b), httpx.AsyncClient(timeout=30) as http:
        answers = [
            await http.post(f"{node.url}/v1/identity/link_codes", json={"channel": "responses", "user": "alice"})
            for node in (a, b, a, b)
        ]
        other = await http.post(f"{a.url}/v1/identity/link_codes", json={"channel": "responses", "user": "bob"})
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]  # 4 x 200 when counted per node
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert other.status_code == 200  # per identity


async def test_the_failed_redemption_past_the_limit_is_refused_whichever_node_is_asked(url: str) -> None:
    async with two_nodes(url, identity=LIMITED) as (a, b), httpx.AsyncClient(timeout=30) as http:
        code = await http.post(f"{a.url}/v1/identity/link_codes", json={"channel": "responses", "user": "alice"})
        wrong = {"channel": "responses", "user": "mallory", "code": "AAAA-AAAA"}
        answers = [await http.post(f"{node.url}/v1/identity/links", json=wrong) for node in (b, a, b)]
        right = {**wrong, "code": code.json()["code"]}
        locked_out = await http.post(f"{a.url}/v1/identity/links", json=right)  # even the right code
    assert [answer.json()["error"]["code"] for answer in answers] == ["invalid_code"] * LIMIT
    assert (locked_out.status_code, locked_out.json()["error"]["code"]) == (429, "rate_limited")


async def test_link_codes_asked_on_two_nodes_at_once_are_issued_up_to_the_limit(url: str) -> None:
    outcomes: list[str] = []
    async with two_nodes(url, identity=LIMITED) as (a, b):
        alice = Identity("responses", "alice")
        await a.host.identity.resolve("default", alice)

        async def ask(service: IdentityService) -> None:
            try:
                await service.issue_code("default", alice)
                outcomes.append("issued")
            except LinkFailed as failed:
                outcomes.append(failed.code)

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(ask, (a, b)[n % 2].host.identity)
    assert sorted(outcomes) == ["issued"] * LIMIT + ["rate_limited"] * (10 - LIMIT)


async def test_retention_removes_the_windows_whose_events_have_all_left_them(url: str) -> None:
    now = time.time()
    async with two_nodes(url, identity=LIMITED) as (a, _):
        await a.host.store.commit([Put("limits", "codes/default/old", RateWindow((now - 700,), now - 100)),
                                   Put("limits", "codes/default/new", RateWindow((now - 10,), now + 590))])  # fmt: skip
        removed = await a.host.sweeper.sweep(now)
        left = [key for key, _ in a.host.store.scan("limits")]
    assert removed["limits"] == 1 and left == ["codes/default/new"]


async def test_a_stored_window_forgets_events_that_left_it_and_keeps_only_the_newest(url: str) -> None:
    async with Store.open(url, durability="unsafe", node="a") as store:
        window = StoredWindow(store, "codes", limit=2, window=10.0)
        taken = [await window.take("k", at) for at in (0.0, 5.0, 9.0)]
        full = window.full("k", 9.0), window.full("k", 10.5), window.full("other", 9.0)
        again = await window.take("k", 10.5)  # the event at 0 left the window
        await window.add("k", 11.0)  # a failure counted past the limit
        record = store.get("limits", "codes/k")
    assert taken == [True, True, False] and full == (True, False, False) and again
    assert record == RateWindow((10.5, 11.0), 21.0)  # the newest two: all "full" needs
