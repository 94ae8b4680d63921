"""The admin HTTP API of a running host: off by default, its own key, the operator commands on the live store."""

from __future__ import annotations

from pathlib import Path

import httpx

import afactors
from afactors.model import ConversationKey, Envelope
from afactors.store import DeadLetter, Put
from afactors_responses import ResponsesChannel

ADMIN = {"Authorization": "Bearer admin-secret"}


async def test_admin_api_is_off_by_default(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0) as host:
        async with httpx.AsyncClient(base_url=host.urls[0]) as client:
            assert (await client.get("/admin/inspect", headers=ADMIN)).status_code == 404


async def test_admin_api_needs_its_own_key_and_works_on_the_live_store(state_dir: Path) -> None:
    async with afactors.open_host(
        state_dir=state_dir, port=0, api_keys=["user-key"], admin_key="admin-secret", channels=[ResponsesChannel()]
    ) as host:
        user = {"Authorization": "Bearer user-key"}
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=30) as client:
            for headers in ({}, user):
                refused = await client.get("/admin/inspect", headers=headers)
                assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"
            await client.post("/v1/responses", json={"input": "hi", "conversation": "c"}, headers=user)
            inspect = (await client.get("/admin/inspect", headers=ADMIN)).json()
            [conversation] = inspect["conversations"]
            path = conversation["conversation"]
            tenant, conv = path.split("/", 1)
            shown = await client.get(f"/admin/conversations/{tenant}/{conv}", headers=ADMIN)
            assert shown.status_code == 200 and shown.json()["history"][0]["input"] == "user: hi"
            missing = await client.get("/admin/conversations/x/y", headers=ADMIN)
            assert missing.status_code == 404 and missing.json()["error"]["message"] == "no conversation 'x/y'"

            letter = DeadLetter(Envelope(ConversationKey(tenant, "poison")), "failed twice", failed_at=1.0)
            await host.store.commit([Put("dead_letters", f"{tenant}/poison/turn_x", letter)])
            listed = (await client.get("/admin/dead-letters", headers=ADMIN)).json()
            assert [d["key"] for d in listed] == [f"{tenant}/poison/turn_x"]
            nope = await client.post("/admin/dead-letters/replay", params={"key": "nope"}, headers=ADMIN)
            assert nope.status_code == 404
            purged = await client.delete("/admin/dead-letters", headers=ADMIN)
            assert purged.json() == {"purged": 1}

            gone = await client.delete(f"/admin/conversations/{tenant}/{conv}", headers=ADMIN)
            assert gone.status_code == 200 and gone.json()["turns"] == 1 and gone.json()["snapshots"] == 1
            assert (await client.get(f"/admin/conversations/{tenant}/{conv}", headers=ADMIN)).status_code == 404
            again = await client.post("/v1/responses", json={"input": "hi", "conversation": "c"}, headers=user)
            assert again.json()["output"][0]["content"][0]["text"].startswith("Turn 1.")  # forgotten


async def test_admin_api_lists_cancels_and_purges_timers_of_the_live_host(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, admin_key="admin-secret") as host:
        for conversation, timer_id in [("a", "t1"), ("a", "t2"), ("b", "t3")]:
            await host.timers.schedule(ConversationKey("default", conversation), after=3600, id=timer_id)
        async with httpx.AsyncClient(base_url=host.urls[0], headers=ADMIN) as client:

            async def ids(**params: str) -> list[str]:
                return [t["id"] for t in (await client.get("/admin/timers", params=params)).json()]

            assert await ids() == ["t1", "t2", "t3"] and await ids(conversation="default/a") == ["t1", "t2"]
            assert (await client.get("/admin/inspect")).json()["timers"]["pending"] == 3
            shown = (await client.get("/admin/conversations/default/b")).json()
            assert [(t["id"], t["status"]) for t in shown["timers"]] == [("t3", "pending")]

            refusals = [
                ("GET", {"conversation": "no-slash"}, 400, "must be TENANT/CONVERSATION"),
                ("GET", {"conversation": "default/zz"}, 404, "no conversation 'default/zz'"),
                ("DELETE", {"id": "t1"}, 400, "id needs conversation"),
                ("DELETE", {"conversation": "default/a", "id": "nope"}, 404, "has no pending timer 'nope'"),
            ]
            for method, params, status, message in refusals:
                refused = await client.request(method, "/admin/timers", params=params)
                assert refused.status_code == status and message in refused.json()["error"]["message"]

            cancel = await client.delete("/admin/timers", params={"conversation": "default/a", "id": "t1"})
            assert cancel.json() == {"cancelled": 1} and [
                t.id for t in host.timers.list(ConversationKey("default", "a"))
            ] == ["t2"]
            assert (await client.delete("/admin/timers", params={"conversation": "default/a"})).json() == {"purged": 1}
            assert await ids() == ["t3"]
            assert (await client.delete("/admin/timers")).json() == {"purged": 1}
            assert host.timers.count() == 0 and host.store.count("timers") == 0
