"""The Invocations channel black-box: real HTTP on loopback against `open_host`, httpx under trio."""

from __future__ import annotations

import uuid
from typing import Any

import h11
import httpx
import orjson
import pytest
import trio

from afactors.host import HookRejected, installed_plugins
from afactors.model import Envelope, Reply
from afactors.testing import raw_exchange
from afactors_invocations import InvocationIds, InvocationRequest, InvocationsChannel

from .conftest import GatedAgent, Serve

I02_HEADERS = ("x-agent-invocation-id", "x-agent-session-id", "x-request-id", "x-platform-server")


def assert_i02(resp: httpx.Response) -> None:
    for name in I02_HEADERS:
        assert resp.headers.get(name), f"{resp.request.method} {resp.request.url} lacks {name}"
    assert resp.headers["x-platform-server"].startswith("afactors-invocations/")


def assert_envelope(resp: httpx.Response, status: int, code: str, text: str = "") -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert text in body["error"]["message"]
    assert_i02(resp)


async def invoke(client: httpx.AsyncClient, message: str, **fields: Any) -> httpx.Response:
    headers = fields.pop("headers", None)
    params = fields.pop("params", None)
    return await client.post("/invocations", json={"message": message, **fields}, headers=headers, params=params)


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event, data) per SSE frame."""
    events = []
    for frame in text.strip("\n").split("\n\n"):
        event = None
        data = []
        for line in frame.split("\n"):
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
        events.append((event, "\n".join(data)))
    return events


# ---------------------------------------------------------------- I-01 turns and sessions


async def test_i01_turn_two_of_a_session_sees_turn_one(serve: Serve) -> None:
    async with serve() as client:
        first = await invoke(client, "hello", session_id="s1")
        second = await invoke(client, "again", session_id="s1")
    assert first.status_code == second.status_code == 200
    assert first.json() == {
        "response": "Turn 1. You said: hello",
        "session_id": "s1",
        "invocation_id": first.headers["x-agent-invocation-id"],
    }
    assert second.json()["response"] == "Turn 2. You said: again"
    assert first.json()["invocation_id"] != second.json()["invocation_id"]


async def test_i01_sessions_are_isolated(serve: Serve) -> None:
    async with serve() as client:
        await invoke(client, "remember that the sky is green", session_id="a")
        other = await invoke(client, "what do you remember?", session_id="b")
        same = await invoke(client, "what do you remember?", session_id="a")
    assert other.json()["response"] == "Turn 1. I don't remember anything yet."
    assert same.json()["response"] == "Turn 2. I remember: the sky is green."


async def test_i02_generated_session_id_continues_the_conversation(serve: Serve) -> None:
    async with serve() as client:
        first = await invoke(client, "hi")
        session = first.json()["session_id"]
        second = await invoke(client, "hi", session_id=session)
        fresh = await invoke(client, "hi")
    assert uuid.UUID(session) and first.headers["x-agent-session-id"] == session
    assert second.json()["response"].startswith("Turn 2.")
    assert fresh.json()["response"].startswith("Turn 1.") and fresh.json()["session_id"] != session


async def test_i02_session_query_parameter_wins_over_body(serve: Serve) -> None:
    async with serve() as client:
        await invoke(client, "hi", params={"agent_session_id": "q1"})
        resp = await invoke(client, "hi", session_id="body", params={"agent_session_id": "q1"})
    assert resp.json()["session_id"] == resp.headers["x-agent-session-id"] == "q1"
    assert resp.json()["response"].startswith("Turn 2.")


async def test_i02_session_from_environment(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOUNDRY_AGENT_SESSION_ID", "env-session")
    async with serve() as client:
        await invoke(client, "hi")
        resp = await invoke(client, "hi")
    assert resp.json()["session_id"] == "env-session"
    assert resp.json()["response"].startswith("Turn 2.")


# ---------------------------------------------------------------- I-08 isolation keys


async def test_i08_users_with_the_same_session_are_isolated(serve: Serve) -> None:
    async with serve() as client:
        await invoke(client, "hi", session_id="s", headers={"x-agent-user-id": "alice"})
        bob = await invoke(client, "hi", session_id="s", headers={"x-agent-user-isolation-key": "bob"})
        local = await invoke(client, "hi", session_id="s")
        alice = await invoke(
            client, "hi", session_id="s", headers={"x-agent-user-id": "alice", "x-agent-user-isolation-key": "x"}
        )
    assert [r.json()["response"][:7] for r in (bob, local, alice)] == ["Turn 1.", "Turn 1.", "Turn 2."]


async def test_i08_chat_isolation_key_overrides_the_session(serve: Serve) -> None:
    chat = {"x-agent-chat-isolation-key": "chat-1"}
    async with serve() as client:
        await invoke(client, "hi", session_id="s1", headers=chat)
        resp = await invoke(client, "hi", session_id="s2", headers=chat)
    assert resp.json()["response"].startswith("Turn 2.")
    assert resp.json()["session_id"] == "s2"


# ---------------------------------------------------------------- streaming


async def test_i01_streaming_sends_json_deltas_then_done(serve: Serve) -> None:
    async with serve() as client:
        async with client.stream(
            "POST", "/invocations", json={"message": "hi there", "stream": True, "session_id": "s"}
        ) as resp:
            text = "".join([chunk async for chunk in resp.aiter_text()])
        after = await invoke(client, "next", session_id="s")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-agent-session-id"] == "s"
    assert_i02(resp)
    events = sse_events(text)
    assert events[-1] == (None, "[DONE]")
    deltas = [orjson.loads(data)["delta"] for event, data in events[:-1]]
    assert len(deltas) > 1 and "".join(deltas) == "Turn 1. You said: hi there"
    assert after.json()["response"].startswith("Turn 2.")


async def test_i01_streaming_failure_ends_with_an_error_event_and_no_done(serve: Serve) -> None:
    async def broken(messages: list[Any]) -> Any:
        yield "partial"
        raise RuntimeError("model went away")

    async with serve(broken) as client:
        resp = await invoke(client, "hi", stream=True)
    events = sse_events(resp.text)
    assert (None, "[DONE]") not in events
    event, data = events[-1]
    assert event == "error"
    assert orjson.loads(data) == {"error": {"code": "agent_error", "message": "RuntimeError: model went away"}}


async def test_i06_failing_agent_is_a_500_envelope_without_a_trace(serve: Serve) -> None:
    async def broken(messages: list[Any]) -> str:
        raise RuntimeError("model went away")

    async with serve(broken) as client:
        resp = await invoke(client, "hi")
    assert_envelope(resp, 500, "agent_error", "model went away")
    assert "Traceback" not in resp.text


# ---------------------------------------------------------------- background, poll, cancel


async def test_i03_background_invocation_is_polled_to_completion(serve: Serve, gated: GatedAgent) -> None:
    async with serve(gated) as client:
        accepted = await invoke(
            client, "slow", background=True, session_id="s", headers={"x-agent-invocation-id": "job-1"}
        )
        await gated.entered.wait()
        running = await client.get("/invocations/job-1")
        gated.release()
        await invoke(client, "after", session_id="s")  # queued behind the background turn: it has committed
        done = await client.get("/invocations/job-1")
    assert accepted.status_code == 202
    assert accepted.json() == {"invocation_id": "job-1", "session_id": "s", "status": "queued"}
    assert accepted.headers["location"] == "/invocations/job-1"
    assert running.json()["status"] == "in_progress" and "result" not in running.json()
    assert done.status_code == 200
    assert done.json() == {
        "invocation_id": "job-1",
        "session_id": "s",
        "status": "completed",
        "result": {"response": "Turn 1. slow", "session_id": "s", "invocation_id": "job-1"},
    }
    assert done.headers["x-agent-invocation-id"] == "job-1" and done.headers["x-agent-session-id"] == "s"


async def test_i03_synchronous_invocation_can_be_read_back(serve: Serve) -> None:
    async with serve() as client:
        resp = await invoke(client, "hi", session_id="s")
        got = await client.get(f"/invocations/{resp.json()['invocation_id']}")
    assert got.json()["status"] == "completed"
    assert got.json()["result"] == resp.json()


async def test_i03_cancel_a_running_background_invocation(serve: Serve, gated: GatedAgent) -> None:
    async with serve(gated) as client:
        await invoke(client, "slow", background=True, session_id="s", headers={"x-agent-invocation-id": "job-2"})
        await gated.entered.wait()
        cancelled = await client.post("/invocations/job-2/cancel")
        polled = await client.get("/invocations/job-2")
        again = await client.post("/invocations/job-2/cancel")
        gated.release()
        after = await invoke(client, "next", session_id="s")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["error"]["code"] == "cancelled"
    assert polled.json()["status"] == "cancelled" and "result" not in polled.json()
    assert_envelope(again, 409, "invocation_finished", "cancelled")
    assert after.json()["response"] == "Turn 1. next"  # nothing of the cancelled turn was committed


async def test_i03_cancel_of_a_finished_invocation_is_409(serve: Serve) -> None:
    async with serve() as client:
        resp = await invoke(client, "hi", headers={"x-agent-invocation-id": "done-1"})
        cancel = await client.post("/invocations/done-1/cancel")
    assert resp.status_code == 200
    assert_envelope(cancel, 409, "invocation_finished", "completed")


@pytest.mark.parametrize("where", ["host", "channel"])
async def test_busy_conversation_under_reject_is_409(serve: Serve, gated: GatedAgent, where: str) -> None:
    options: dict[str, Any] = (
        {"busy_policy": "reject"} if where == "host" else {"channel": InvocationsChannel(busy_policy="reject")}
    )
    async with serve(gated, **options) as client:
        await invoke(client, "slow", background=True, session_id="s")
        await gated.entered.wait()
        busy = await invoke(client, "hi", session_id="s")
        other = await invoke(client, "hi", session_id="t", background=True)
        gated.release()
    assert_envelope(busy, 409, "conversation_busy")
    assert busy.headers["x-agent-session-id"] == "s"
    assert other.status_code == 202


async def test_interrupted_synchronous_invocation_is_409(serve: Serve, gated: GatedAgent) -> None:
    answers: dict[str, httpx.Response] = {}
    first_answered = trio.Event()

    async def call(name: str, client: httpx.AsyncClient) -> None:
        answers[name] = await invoke(client, name, session_id="s")
        if name == "first":
            first_answered.set()

    async with serve(gated, busy_policy="interrupt") as client, trio.open_nursery() as nursery:
        nursery.start_soon(call, "first", client)
        await gated.entered.wait()
        nursery.start_soon(call, "second", client)
        await first_answered.wait()  # the second turn interrupted the first, which never passed the gate
        gated.release()
    assert_envelope(answers["first"], 409, "interrupted")
    assert answers["second"].json()["response"] == "Turn 1. second"


# ---------------------------------------------------------------- I-02 headers


async def test_i02_ids_are_echoed_when_valid_and_fresh_otherwise(serve: Serve) -> None:
    async with serve() as client:
        echoed = await invoke(client, "hi", headers={"x-agent-invocation-id": "inv:1.a_b-c", "x-request-id": "req-9"})
        fresh = await invoke(client, "hi", headers={"x-agent-invocation-id": "bad id!", "x-request-id": "x" * 300})
    assert echoed.headers["x-agent-invocation-id"] == echoed.json()["invocation_id"] == "inv:1.a_b-c"
    assert echoed.headers["x-request-id"] == "req-9"
    assert uuid.UUID(fresh.headers["x-agent-invocation-id"]) and uuid.UUID(fresh.headers["x-request-id"])
    assert_i02(fresh)


async def test_i02_reusing_an_invocation_id_is_409(serve: Serve) -> None:
    headers = {"x-agent-invocation-id": "once"}
    async with serve() as client:
        first = await invoke(client, "hi", headers=headers)
        second = await invoke(client, "hi", headers=headers)
        other_user = await invoke(client, "hi", headers={**headers, "x-agent-user-id": "u2"})
    assert first.status_code == other_user.status_code == 200
    assert_envelope(second, 409, "invocation_exists", "once")


# ---------------------------------------------------------------- tenants


async def test_tenants_need_a_key_and_see_only_their_own(serve: Serve) -> None:
    k1, k2 = {"authorization": "Bearer k1"}, {"authorization": "Bearer k2"}
    async with serve(api_keys=["k1", "k2"]) as client:
        anonymous = await invoke(client, "hi")
        wrong = await invoke(client, "hi", headers={"authorization": "Bearer nope"})
        mine = await invoke(client, "hi", session_id="s", headers={**k1, "x-agent-invocation-id": "t-1"})
        theirs = await invoke(client, "hi", session_id="s", headers=k2)
        peek = await client.get("/invocations/t-1", headers=k2)
        stop = await client.post("/invocations/t-1/cancel", headers=k2)
        own = await client.get("/invocations/t-1", headers=k1)
        unauthenticated_get = await client.get("/invocations/t-1")
    assert_envelope(anonymous, 401, "unauthorized", "Bearer")
    assert_envelope(wrong, 401, "unauthorized")
    assert mine.json()["response"] == theirs.json()["response"] == "Turn 1. You said: hi"
    assert_envelope(peek, 404, "not_found")
    assert_envelope(stop, 404, "not_found")
    assert own.json()["status"] == "completed"
    assert_envelope(unauthenticated_get, 401, "unauthorized")


# ---------------------------------------------------------------- bad input: always a 4xx envelope


@pytest.mark.parametrize(
    ("content", "status", "code", "text"),
    [
        (b"", 400, "invalid_json", "empty"),
        (b"not json", 400, "invalid_json", "not valid JSON"),
        (b'{"message": "hi"', 400, "invalid_json", "not valid JSON"),
        (b"\xff\xfe", 400, "invalid_json", "not valid JSON"),
        (b"[]", 422, "invalid_request", "must be a JSON object"),
        (b'"hi"', 422, "invalid_request", "must be a JSON object"),
        (b"{}", 422, "invalid_request", "missing 'message'"),
        (b'{"message": ""}', 422, "invalid_request", "must not be empty"),
        (b'{"message": 5}', 422, "invalid_request", "'message' must be a string"),
        (b'{"message": "hi", "session_id": 5}', 422, "invalid_request", "'session_id' must be a string"),
        (b'{"message": "hi", "session_id": "a b"}', 422, "invalid_request", "'session_id'"),
        (b'{"message": "hi", "stream": "yes"}', 422, "invalid_request", "'stream' must be a boolean"),
        (b'{"message": "hi", "background": 1}', 422, "invalid_request", "'background' must be a boolean"),
        (b'{"message": "hi", "stream": true, "background": true}', 422, "invalid_request", "cannot both"),
    ],
)
async def test_bad_bodies_get_an_envelope(serve: Serve, content: bytes, status: int, code: str, text: str) -> None:
    async with serve() as client:
        resp = await client.post("/invocations", content=content, headers={"content-type": "application/json"})
    assert_envelope(resp, status, code, text)


async def test_bad_query_and_header_values_are_400(serve: Serve) -> None:
    async with serve() as client:
        query = await invoke(client, "hi", params={"agent_session_id": "has space"})
        header = await client.post(
            "/invocations", json={"message": "hi"}, headers=[(b"x-agent-user-id", b"caf\xc3\xa9")]
        )
        long = await invoke(client, "hi", headers={"x-agent-chat-isolation-key": "c" * 2000})
    assert_envelope(query, 400, "invalid_request", "agent_session_id")
    assert_envelope(header, 400, "invalid_header", "x-agent-user-id")
    assert_envelope(long, 400, "invalid_header", "x-agent-chat-isolation-key")


async def test_unknown_invocations_are_404(serve: Serve) -> None:
    async with serve() as client:
        missing = await client.get("/invocations/nope")
        malformed = await client.get("/invocations/bad%20id")
        cancel = await client.post("/invocations/nope/cancel")
    for resp in (missing, malformed, cancel):
        assert_envelope(resp, 404, "not_found")


async def test_wrong_methods_are_405(serve: Serve) -> None:
    async with serve() as client:
        responses = [
            await client.get("/invocations"),
            await client.delete("/invocations/x"),
            await client.get("/invocations/x/cancel"),
            await client.post("/invocations/docs/openapi.json"),
        ]
    for resp in responses:
        assert_envelope(resp, 405, "method_not_allowed")


async def test_unknown_paths_under_the_channel_are_404(serve: Serve) -> None:
    async with serve() as client:
        responses = [await client.post("/invocations/"), await client.get("/invocations/a/b/c")]
    for resp in responses:
        assert_envelope(resp, 404, "not_found", "no route")


async def test_oversized_body_is_413(serve: Serve) -> None:
    # Announce a 17 MiB body and send none: the server must refuse on the length alone, with the envelope.
    head = [("host", "x"), ("content-type", "application/json"), ("content-length", str(17 << 20))]
    async with serve() as client:
        request = h11.Request(method="POST", target="/invocations", headers=head)
        response, body = await raw_exchange(str(client.base_url), request, timeout=5)
    assert response.status_code == 413
    headers = {name.decode(): value.decode() for name, value in response.headers}
    assert orjson.loads(body)["error"]["code"] == "payload_too_large"
    assert all(headers.get(name) for name in I02_HEADERS)


# ---------------------------------------------------------------- I-04 OpenAPI and a replaced body


async def test_i04_default_body_has_an_openapi_doc(serve: Serve) -> None:
    async with serve() as client:
        resp = await client.get("/invocations/docs/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/invocations", "/invocations/{invocation_id}", "/invocations/{invocation_id}/cancel"}
    assert doc["components"]["schemas"]["InvocationRequest"]["required"] == ["message"]
    assert_i02(resp)


def parse_order(body: Any) -> InvocationRequest:
    """A custom body: `{"order": {"item": str, "qty": int}, "customer": str}`."""
    order = body["order"]
    if not isinstance(order.get("qty"), int):
        raise TypeError("'order.qty' must be an integer")
    return InvocationRequest(f"order {order['qty']} x {order['item']}", session_id=body.get("customer"))


def render_order(reply: Reply, ids: InvocationIds) -> dict[str, Any]:
    return {"confirmation": reply.text, "customer": ids.session_id}


def limit_quantity(envelope: Envelope) -> Envelope:
    if "order 0 x" in envelope.input[-1].text:
        raise HookRejected("an order needs at least one item", status=422, code="empty_order")
    return envelope


async def test_custom_parser_renderer_and_run_hook_replace_the_default_body(serve: Serve) -> None:
    channel = InvocationsChannel(parser=parse_order, renderer=render_order, run_hook=limit_quantity)
    async with serve(channel=channel) as client:
        first = await client.post("/invocations", json={"order": {"item": "tea", "qty": 2}, "customer": "c7"})
        second = await client.post("/invocations", json={"order": {"item": "cake", "qty": 1}, "customer": "c7"})
        refused = await client.post("/invocations", json={"order": {"item": "tea", "qty": 0}, "customer": "c7"})
        wrong = await client.post("/invocations", json={"order": {"item": "tea", "qty": "two"}})
        missing = await client.post("/invocations", json={"message": "hi"})
        not_object = await client.post("/invocations", json=[1])
        docs = await client.get("/invocations/docs/openapi.json")
        polled = await client.get(f"/invocations/{first.headers['x-agent-invocation-id']}")
    assert first.json() == {"confirmation": "Turn 1. You said: order 2 x tea", "customer": "c7"}
    assert second.json()["confirmation"] == "Turn 2. You said: order 1 x cake"
    assert_envelope(refused, 422, "empty_order", "at least one item")
    assert_envelope(wrong, 422, "invalid_request", "'order.qty' must be an integer")
    assert_envelope(missing, 422, "invalid_request", "order")
    assert_envelope(not_object, 422, "invalid_request")
    assert_envelope(docs, 404, "not_found", "No OpenAPI spec registered")
    assert polled.json()["result"] == first.json()


async def test_custom_body_with_its_own_openapi_spec(serve: Serve) -> None:
    spec = {"openapi": "3.1.0", "info": {"title": "orders", "version": "1"}, "paths": {}}
    async with serve(
        channel=InvocationsChannel(parser=parse_order, renderer=render_order, openapi_spec=spec)
    ) as client:
        resp = await client.get("/invocations/docs/openapi.json")
    assert resp.json() == spec


def test_plugin_is_found_through_its_entry_point() -> None:
    plugin = installed_plugins()["invocations"]
    assert plugin.name == "invocations" and plugin.needs_credentials is False
    channel = plugin.create(None)  # type: ignore[arg-type]
    assert isinstance(channel, InvocationsChannel) and channel.path == "/invocations"
