"""Inbound authentication on the wire: every kind of bad token is refused before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from afactors.model import ConversationKey, Envelope, Message, ReplyTarget
from afactors_activity.testing import TOKEN_KINDS, FakeConnector

CALLS: list[str] = []


async def recording(messages: Any) -> str:
    CALLS.append(messages[-1].text)
    return "ok"


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


async def test_every_kind_of_bad_credentials_gets_401_and_nothing_runs(serve: Any) -> None:
    async with serve(recording) as bot:
        bad_kinds = [kind for kind in TOKEN_KINDS if kind != "valid"]
        assert len(bad_kinds) == 7
        for kind in bad_kinds:
            answer = await bot.send(bot.client.message("hi"), token=kind)
            assert answer.status_code == 401, kind
            assert answer.json() == {"error": {"code": "Unauthorized", "message": "authentication failed"}}
        body = bot.client.message("hi").model_dump(by_alias=True, exclude_none=True, mode="json")
        assert (await bot.send(body, token=None)).status_code == 401
        for header in ("Basic dXNlcjpwdw==", "Bearer", "Bearer not-a-jwt", "Bearer a.b.c"):
            answer = await bot.client.http.post(bot.client.endpoint, json=body, headers={"Authorization": header})
            assert answer.status_code == 401, header
        unendorsed = await bot.send(bot.client.message("hi", channel_id="slack"))  # the key signs for Teams etc.
        assert unendorsed.status_code == 401
        await trio.sleep(0.1)
        assert CALLS == [] and bot.connector.calls == []


async def test_a_valid_token_is_accepted(serve: Any) -> None:
    async with serve(recording) as bot:
        assert (await bot.say("hi")).status_code == 202
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        assert CALLS == ["hi"]
        assert bot.identity.key_fetches == 1
        assert (await bot.say("again")).status_code == 202
        assert bot.identity.key_fetches == 1  # the keys are cached


async def test_bad_bodies_get_400_but_only_after_authentication(serve: Any) -> None:
    async with serve(recording) as bot:
        url = bot.client.endpoint
        token = bot.identity.token(bot.connector.service_url)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        bad = await bot.client.http.post(url, content=b"{not json", headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadArgument"
        assert (await bot.client.http.post(url, content=b"{not json")).status_code == 401
        no_url = {"type": "message", "channelId": "msteams", "conversation": {"id": "c"}}
        missing = await bot.client.http.post(url, json=no_url, headers=auth)
        assert missing.status_code == 400 and "serviceUrl is required" in missing.json()["error"]["message"]
        no_type = {"serviceUrl": bot.connector.service_url, "channelId": "msteams", "conversation": {"id": "c"}}
        assert (
            "type is required"
            in (await bot.client.http.post(url, json=no_type, headers=auth)).json()["error"]["message"]
        )
        no_conversation = {**no_type, "type": "message", "conversation": {}}
        answer = await bot.client.http.post(url, json=no_conversation, headers=auth)
        assert answer.status_code == 400 and "conversation.id" in answer.json()["error"]["message"]
        assert CALLS == []


async def test_the_path_is_configurable_and_only_post_is_served(serve: Any) -> None:
    async with serve(recording, path="/bots/helper/messages") as bot:
        assert bot.client.endpoint.endswith("/bots/helper/messages")
        assert (await bot.say("hi")).status_code == 202
        assert (await bot.client.http.get(bot.client.endpoint)).status_code == 405
        assert (await bot.client.http.delete(bot.client.endpoint)).status_code == 405


async def test_unreachable_signing_keys_get_503_so_the_service_retries(serve: Any) -> None:
    async with serve(recording, openid_metadata_url="http://127.0.0.1:9/nothing") as bot:
        answer = await bot.say("hi")
        assert answer.status_code == 503 and CALLS == []


async def test_disabled_auth_takes_requests_without_a_token(serve: Any, identity: Any) -> None:
    anonymous = FakeConnector(None)  # expects no Authorization header at all
    async with (
        anonymous.running(),
        serve(
            recording, app_id=None, app_password=None, auth="disabled", service_url_allowlist=(anonymous.base_url,)
        ) as bot,
    ):
        answer = await bot.send(bot.client.message("hi", service_url=anonymous.service_url), token=None)
        assert answer.status_code == 202
        await anonymous.wait_until(lambda: anonymous.delivered())
        assert anonymous.delivered()[0].authorization is None  # B-12: no app id, no token
        assert identity.token_requests == []


def test_jwt_auth_cannot_be_left_without_an_app_id() -> None:
    from afactors_activity import ActivityConfig

    with pytest.raises(ValueError, match="auth='disabled' explicitly"):
        ActivityConfig()
    with pytest.raises(ValueError, match="client secret"):
        ActivityConfig(app_id="x")


async def test_forged_service_url_is_refused_and_never_contacted(serve: Any, identity: Any) -> None:
    async with FakeConnector(identity).running() as forged:
        async with serve(recording) as bot:
            # a token whose serviceurl claim matches the forged URL (as if the service itself were fooled)
            activity = bot.client.message("hi", service_url=forged.service_url)
            answer = await bot.send(activity)
            assert answer.status_code == 401
            # and with auth disabled the allowlist still holds
        async with serve(recording, app_id=None, app_password=None, auth="disabled") as open_bot:
            answer = await open_bot.send(open_bot.client.message("hi", service_url=forged.service_url), token=None)
            assert answer.status_code == 401
        await trio.sleep(0.1)
        assert forged.calls == [] and CALLS == [] and identity.token_requests == []


async def test_a_reply_routed_to_a_forged_service_url_is_dead_lettered_without_a_token(
    serve: Any, identity: Any
) -> None:
    """Another channel (or a background run) routing its reply here cannot make the bot call a forged URL."""
    async with FakeConnector(identity).running() as forged, serve(recording) as bot:
        await bot.say("hi")  # a real conversation first
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        requests_before = len(identity.token_requests)
        ref = bot.channel.reference("activity:msteams:tenant-1:29:user-1")
        assert ref is not None
        address = {**ref.to_dict(), "serviceUrl": forged.service_url}
        envelope = Envelope(ConversationKey("default", "elsewhere"), (Message("user", "hi"),),
                            reply_to=ReplyTarget("activity", address))  # fmt: skip
        await bot.host.system.submit(envelope)
        (dead,) = await bot.dead_lettered()
        assert "allowlist" in dead.error
        assert forged.calls == [] and len(identity.token_requests) == requests_before


async def test_bytes_that_are_not_json_get_a_clean_400(serve: Any) -> None:
    async with serve(recording) as bot:
        answer = await bot.client.http.post(bot.client.endpoint, content=b"\xff\xfe", headers={
            "Authorization": f"Bearer {bot.identity.token(bot.connector.service_url)}"})  # fmt: skip
        assert answer.status_code == 400 and "Traceback" not in answer.text
