"""The internal route a node is forwarded to: the cluster secret, the forwarded-by mark (no loops, never forwarded
again), and a clear 4xx for every kind of bad body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import afactors
from afactors.channel import installed_plugins
from afactors.cli import build_parser, load_settings
from afactors.cluster._wire import FORWARDED_BY, ForwardRequest, encode_request
from afactors.host import ServerLimits
from afactors.model import ConversationKey, Envelope, Message
from tests.cluster.conftest import SECRET, Cluster, OpenNodes

GOOD = {"authorization": f"Bearer {SECRET}", FORWARDED_BY: "a", "content-type": "application/json"}


def body(conversation: str = "b-1", **changes: Any) -> bytes:
    envelope = Envelope(ConversationKey("default", conversation), (Message("user", "hi"),), turn_id="t-" + conversation,
                        idempotency_key="t-" + conversation)  # fmt: skip
    data = orjson.loads(encode_request(ForwardRequest(envelope, "responses")))
    return orjson.dumps({**data, **changes})


async def post(url: str, content: bytes, headers: dict[str, str], path: str = "/v1/cluster/turns") -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url + path, content=content, headers=headers)


def events(answer: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in answer.text.splitlines() if line.strip()]


async def test_an_authenticated_forwarded_turn_is_answered_in_ndjson(nodes: OpenNodes) -> None:
    async with nodes() as n:
        answer = await post(n.b_url, body(), GOOD)
        again = await post(n.b_url, body(), GOOD)  # the same idempotency key: answered from the store
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-ndjson"
    accepted, finished = events(answer)
    assert accepted == {"accepted": "t-b-1"}
    assert finished["reply"]["messages"][0]["contents"][0]["text"] == "Turn 1. You said: hi"
    assert events(again)[0] == {"accepted": "t-b-1", "done": True} and events(again)[1] == finished


async def chunked(content: bytes) -> Any:
    yield content  # no content-length: served by the Quart view, not the lean one


async def test_a_chunked_request_gets_the_same_answers_from_the_quart_view(nodes: OpenNodes) -> None:
    async with nodes() as n, httpx.AsyncClient(timeout=10) as client:
        url = n.b_url + "/v1/cluster/turns"
        plain = await client.post(url, content=body("b-3"), headers=GOOD)
        streamed = await client.post(url, content=chunked(body("b-4")), headers=GOOD)
        again = await client.post(url, content=chunked(body("b-3")), headers=GOOD)
        refused = await client.post(url, content=chunked(b"[]"), headers=GOOD)
        unauthorized = await client.post(url, content=chunked(body("b-5")), headers={FORWARDED_BY: "a"})
    assert "content-length" not in streamed.request.headers
    assert [event.keys() for event in events(plain)] == [event.keys() for event in events(streamed)]
    assert events(streamed)[0] == {"accepted": "t-b-4"} and streamed.headers["content-type"] == "application/x-ndjson"
    assert events(again) == [{"accepted": "t-b-3", "done": True}, events(plain)[1]]
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_request"
    assert unauthorized.status_code == 401 and unauthorized.json()["error"]["code"] == "unauthorized"


REFUSED_HEADERS = [
    ({FORWARDED_BY: "a"}, 401, "unauthorized"),
    ({"authorization": "Basic abc", FORWARDED_BY: "a"}, 401, "unauthorized"),
    ({"authorization": "Bearer wrong", FORWARDED_BY: "a"}, 403, "forbidden"),
    ({"authorization": f"Bearer {SECRET}x", FORWARDED_BY: "a"}, 403, "forbidden"),
    ({"authorization": f"Bearer {SECRET}"}, 400, "bad_request"),
    ({"authorization": f"Bearer {SECRET}", FORWARDED_BY: "b"}, 508, "loop_detected"),
]


async def test_the_secret_and_the_forwarded_mark_are_checked(nodes: OpenNodes) -> None:
    async with nodes() as n:
        for headers, status, code in REFUSED_HEADERS:
            answer = await post(n.b_url, body(), headers)
            cancel = await post(n.b_url, b"", headers, "/v1/cluster/turns/t-x/cancel")
            for refused in (answer, cancel):
                error = refused.json()["error"]
                assert refused.status_code == status and error["code"] == code, (headers, refused.text)
                assert error["message"]
        assert n.b.system.snapshot("default/b-1").seq == 0


async def test_a_node_never_forwards_a_forwarded_turn_it_does_not_own(nodes: OpenNodes) -> None:
    async with nodes() as n:
        answer = await post(n.b_url, body("a-1"), GOOD)  # B is asked to run a conversation A owns
        assert n.a.system.snapshot("default/a-1").seq == 0 and n.b.system.snapshot("default/a-1").seq == 0
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_owner"
    assert "a does" in answer.json()["error"]["message"]
    assert [node for node, _ in n.cluster.located] == ["b"]  # B asked only itself, and sent nothing on


BAD_BODIES = [
    (b"not json", "bad_json"),
    (b"[1, 2]", "bad_request"),
    (body(schema=2), "unsupported_schema"),
    (body(schema=None), "unsupported_schema"),
    (body(extra=1), "bad_request"),
    (body(channel=""), "bad_request"),
    (body(stream="yes"), "bad_request"),
    (body(envelope={"key": {"tenant": "t"}}), "bad_envelope"),
    (body(envelope=None), "bad_envelope"),
    (body(channel="nope"), "unknown_channel"),
    (body(envelope={"key": {"tenant": "default", "conversation": "b-2"}}), "bad_envelope"),  # no idempotency key
]


async def test_a_bad_body_is_a_400_with_a_message(nodes: OpenNodes) -> None:
    async with nodes() as n:
        for content, code in BAD_BODIES:
            answer = await post(n.b_url, content, GOOD)
            assert answer.status_code == 400 and answer.json()["error"]["code"] == code, (content, answer.text)
            assert answer.json()["error"]["message"]
        assert n.b.system.snapshot("default/b-2").seq == 0


async def test_an_oversized_body_is_a_413(nodes: OpenNodes) -> None:
    async with nodes(limits=ServerLimits(max_body_bytes=4096)) as n:
        answer = await post(n.b_url, body(envelope={"pad": "x" * 10_000}), GOOD)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "payload_too_large"


async def test_cancel_of_a_turn_the_node_does_not_hold_says_so(nodes: OpenNodes) -> None:
    async with nodes() as n:
        answer = await post(n.b_url, b"", GOOD, "/v1/cluster/turns/nope/cancel")
    assert answer.status_code == 200 and answer.json() == {"cancelled": False}


async def test_without_a_cluster_secret_there_is_no_internal_route(tmp_path: Path) -> None:
    async with afactors.open_host(None, port=0, state_dir=tmp_path / "solo", durability="unsafe") as host:
        answer = await post(host.urls[0], body(), GOOD)
    assert answer.status_code == 404


async def test_a_locator_without_a_secret_is_refused_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cluster secret"):
        async with afactors.open_host(None, port=0, state_dir=tmp_path / "x", locator=Cluster().locator("a")):
            pass


def test_the_cli_takes_the_cluster_secret_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = installed_plugins()
    monkeypatch.setenv("AFACTORS_CLUSTER_SECRET", "from-env")
    assert load_settings(build_parser(plugins), plugins, []).host.cluster_secret == "from-env"
    flagged = load_settings(build_parser(plugins), plugins, ["--cluster-secret", "from-flag"])
    assert flagged.host.cluster_secret == "from-flag" and "from-flag" not in repr(flagged.host)


def test_the_configuration_file_sets_the_forward_policy(tmp_path: Path) -> None:
    plugins = installed_plugins()
    path = tmp_path / "afactors.toml"
    path.write_text("[host.forward]\nwait = 3.0\nattempts = 2\n[host.forward.backoff]\nbase = 0.1\ncap = 0.5\n")
    forward = load_settings(build_parser(plugins), plugins, ["--config", str(path)]).host.forward
    assert (forward.wait, forward.attempts, forward.backoff.base, forward.silence) == (3.0, 2, 0.1, 15.0)
    path.write_text("[host.forward]\nattempts = 0\n")
    with pytest.raises(Exception, match="attempts"):
        load_settings(build_parser(plugins), plugins, ["--config", str(path)])


async def test_following_a_turn_the_node_does_not_run_is_a_404_and_bad_follows_are_4xx(nodes: OpenNodes) -> None:
    path = "/v1/cluster/turns/resp_none/follow"
    async with nodes() as n:
        missing = await post(n.b_url, b'{"schema": 1, "updates": true}', GOOD, path)
        unauthenticated = await post(n.b_url, b'{"schema": 1}', {FORWARDED_BY: "a"}, path)
        bad = [
            await post(n.b_url, content, GOOD, path)
            for content in (b"{", b'{"schema": 2}', b'{"schema": 1, "updates": "yes"}', b'{"schema": 1, "x": 1}')
        ]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_running"
    assert unauthenticated.status_code == 401
    assert [(answer.status_code, answer.json()["error"]["code"]) for answer in bad] == [
        (400, "bad_json"),
        (400, "unsupported_schema"),
        (400, "bad_request"),
        (400, "bad_request"),
    ]
