"""The chat page, the status page and `/status.json`, through a real host on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

import afactors
from afactors.actors import EndedTurn
from afactors.host._monitor import TurnMonitor
from afactors.model import ConversationKey, Envelope, Identity, ReplyTarget
from afactors_responses import ResponsesChannel


async def test_pages_and_their_scripts_are_served_from_the_package(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0) as host:
        async with httpx.AsyncClient(base_url=host.urls[0]) as client:
            chat = await client.get("/")
            status = await client.get("/status")
            scripts = {name: await client.get(f"/ui/{name}") for name in ("common.js", "chat.js", "status.js")}
            css = await client.get("/ui/style.css")
    assert chat.status_code == 200 and chat.headers["content-type"].startswith("text/html")
    assert "/ui/chat.js" in chat.text and "New conversation" in chat.text
    assert status.status_code == 200 and "/ui/status.js" in status.text
    for r in scripts.values():
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http" not in chat.text.replace("http-equiv", "")  # no CDN: everything comes from this host


async def test_unknown_or_unsafe_asset_names_are_404(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0) as host:
        async with httpx.AsyncClient(base_url=host.urls[0]) as client:
            for name in ("nope.js", ".hidden.js", "_web.py", "chat", "__init__.py"):
                resp = await client.get(f"/ui/{name}")
                assert resp.status_code == 404, name
                assert resp.json()["error"]["type"] == "not_found"
            assert (await client.get("/ui/..%2F_web.py")).status_code == 404


async def test_web_ui_can_be_turned_off(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, web_ui=False) as host:
        async with httpx.AsyncClient(base_url=host.urls[0]) as client:
            assert (await client.get("/")).status_code == 404
            assert (await client.get("/status.json")).status_code == 404


async def test_status_json_shows_a_finished_conversation(state_dir: Path) -> None:
    async with afactors.open_host(state_dir=state_dir, port=0, channels=[ResponsesChannel()]) as host:
        async with httpx.AsyncClient(base_url=host.urls[0]) as client:
            made = await client.post("/v1/responses", json={"input": "hello", "conversation": "c1"})
            status = (await client.get("/status.json")).json()
    assert made.status_code == 200
    assert status["channels"] == ["responses"]
    assert status["actors"]["turns"] == 1
    assert [(a["conversation"], a["turns"]) for a in status["live"]] == [("conv:c1", 1)]
    [recent] = status["recent_turns"]
    assert (recent["turn_id"], recent["conversation"], recent["channel"], recent["status"]) == (
        made.json()["id"], "conv:c1", "responses", "completed",
    )  # fmt: skip
    assert recent["duration"] >= 0
    assert "hello" not in str(status)  # no message bodies
    assert status["store"]["records"]["responses"] == 1
    assert status["store"]["file_bytes"] > 0
    assert status["outbox"] == {
        "pending": 0,
        "dead_letters": 0,
        "delivered": 0,
        "retried": 0,
        "dead_lettered": 0,
        "redriven": 0,
    }


async def test_status_json_lists_a_queued_turn_and_a_background_run(state_dir: Path) -> None:
    release = trio.Event()

    async def slow(messages: list[object]) -> str:
        await release.wait()
        return "done"

    async with afactors.open_host(slow, state_dir=state_dir, port=0, channels=[ResponsesChannel()]) as host:
        async with httpx.AsyncClient(base_url=host.urls[0], timeout=10) as client, trio.open_nursery() as nursery:
            body = {"input": "x", "conversation": "busy", "background": True}
            first = (await client.post("/v1/responses", json=body)).json()
            second = (await client.post("/v1/responses", json=body)).json()
            with trio.fail_after(5):
                while True:
                    status = (await client.get("/status.json")).json()
                    phases = {t["turn_id"]: t["phase"] for t in status["in_flight"]}
                    if phases.get(first["id"]) == "running":
                        break
                    await trio.sleep(0.01)
            assert phases[second["id"]] == "queued"
            assert {b["turn_id"] for b in status["background"]} == {first["id"], second["id"]}
            assert status["live"][0]["mailbox_depth"] == 1
            release.set()
            nursery.cancel_scope.cancel()


async def test_status_json_needs_a_key_and_shows_only_that_tenant(state_dir: Path) -> None:
    async with afactors.open_host(
        state_dir=state_dir, port=0, api_keys=["k1", "k2"], channels=[ResponsesChannel()]
    ) as host:
        async with httpx.AsyncClient(base_url=host.urls[0]) as client:
            missing = await client.get("/status.json")
            wrong = await client.get("/status.json", headers={"Authorization": "Bearer nope"})
            page = await client.get("/status")
            one = {"Authorization": "Bearer k1"}
            await client.post("/v1/responses", json={"input": "a", "conversation": "mine"}, headers=one)
            mine = (await client.get("/status.json", headers=one)).json()
            theirs = (await client.get("/status.json", headers={"Authorization": "Bearer k2"})).json()
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "unauthorized"
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
    assert page.status_code == 200  # the page itself asks for the key
    assert [a["conversation"] for a in mine["live"]] == ["conv:mine"] and len(mine["recent_turns"]) == 1
    assert theirs["live"] == [] and theirs["recent_turns"] == []
    assert theirs["actors"]["turns"] == 1  # counts are global


def test_monitor_labels_turns_nobody_announced_by_their_envelope() -> None:
    monitor = TurnMonitor(keep=2)
    seen: list[str] = []
    monitor.listeners.append(lambda s: seen.append(s.channel))
    key = ConversationKey("t", "c")
    monitor.submitted("a", "responses")
    for turn_id, envelope in [
        ("a", Envelope(key)),
        ("b", Envelope(key, reply_to=ReplyTarget("telegram"))),
        ("c", Envelope(key, identity=Identity("a2a", "u"))),
        ("d", Envelope(key)),
    ]:
        monitor.ended(EndedTurn(turn_id, envelope, "completed", 1.0, 2.5))
    assert seen == ["responses", "telegram", "a2a", "unknown"]
    assert [s.turn_id for s in monitor.recent] == ["c", "d"] and monitor.recent[-1].duration == 1.5
