"""Authorization profiles: every row of the spec-digest §3.17 decision order, the combinators, startup
validation, and enforcement before the actor on real channels (Telegram fake Bot API, Responses over HTTP)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

import afactors
from afactors.identity import (
    AllOf,
    AllowAll,
    Allowed,
    AnyOf,
    AuthContext,
    CallableAllowlist,
    ChannelAuth,
    ChannelConfigurationError,
    Decision,
    Denied,
    LinkedClaimAllowlist,
    LinkRequired,
    NativeIdAllowlist,
    decide,
    validate,
)
from afactors.model import Identity
from afactors_responses import ResponsesChannel
from afactors_telegram import TelegramChannel
from afactors_telegram.testing import open_fake_bot_api

ALICE = Identity("telegram", "1")
BOB = Identity("telegram", "2")
NATIVE = NativeIdAllowlist({"1"})
CLAIM = LinkedClaimAllowlist("tid", {"corp"})
ABSTAINS = CallableAllowlist(lambda ctx: Decision.ABSTAIN)
ABSTAINS_THEN_DENIES = CallableAllowlist(
    lambda ctx: Decision.ABSTAIN if ctx.phase == "pre_link" else Decision.DENY, requires_linked_claims=True
)
ABSTAINS_ALWAYS = CallableAllowlist(lambda ctx: Decision.ABSTAIN, requires_linked_claims=True)


@pytest.mark.parametrize(
    ("allowlist", "require_link", "who", "linked", "claims", "expected"),
    [
        # open (default)
        (None, False, BOB, None, {}, Allowed("allowed")),
        # forced link: ALLOW, then link required until linked
        (None, True, BOB, None, {}, LinkRequired("link_required")),
        (None, True, BOB, "k", {}, Allowed("allowed")),
        # native allowlist: listed ALLOW, others DENY pre-link
        (NATIVE, False, ALICE, None, {}, Allowed("allowed")),
        (NATIVE, False, BOB, None, {}, Denied("allowlist_denied_pre_link")),
        # native allowlist + require_link: allowed only once linked
        (NATIVE, True, ALICE, None, {}, LinkRequired("link_required")),
        # linked-claim allowlist: ABSTAIN pre-link -> link; post-link by claim
        (CLAIM, True, BOB, None, {}, LinkRequired("allowlist_requires_link")),
        (CLAIM, True, BOB, "k", {"tid": "corp"}, Allowed("allowed_post_link")),
        (CLAIM, True, BOB, "k", {"tid": ["home", "corp"]}, Allowed("allowed_post_link")),
        (CLAIM, True, BOB, "k", {"tid": "home"}, Denied("allowlist_denied_post_link")),
        (CLAIM, True, BOB, "k", {}, Denied("allowlist_denied_post_link")),  # missing claim
        # abstain after link
        (ABSTAINS_ALWAYS, True, BOB, "k", {}, Denied("allowlist_abstain_after_link")),
        (ABSTAINS_THEN_DENIES, True, BOB, "k", {}, Denied("allowlist_denied_post_link")),
        # abstain without any need to link: open
        (ABSTAINS, False, BOB, None, {}, Allowed("abstain_open")),
        # mixed: native hits bypass linking, others are funnelled into linking
        (AnyOf([NATIVE, CLAIM]), False, ALICE, None, {}, Allowed("allowed")),
        (AnyOf([NATIVE, CLAIM]), False, BOB, None, {}, LinkRequired("allowlist_requires_link")),
        (AnyOf([NATIVE, CLAIM]), False, BOB, "k", {"tid": "corp"}, Allowed("allowed_post_link")),
        (AnyOf([NATIVE, CLAIM]), False, BOB, "k", {"tid": "x"}, Denied("allowlist_denied_post_link")),
        # all-of: a DENY anywhere denies
        (AllOf([NATIVE, AllowAll()]), False, BOB, None, {}, Denied("allowlist_denied_pre_link")),
        (AllOf([NATIVE, AllowAll()]), False, ALICE, None, {}, Allowed("allowed")),
    ],
)
async def test_decision_order(allowlist, require_link, who, linked, claims, expected) -> None:  # type: ignore[no-untyped-def]
    assert await decide(allowlist, require_link, who, linked, claims) == expected


@pytest.mark.parametrize(
    ("combinator", "children", "expected"),
    [
        (AnyOf, [], Decision.ABSTAIN),
        (AllOf, [], Decision.ABSTAIN),
        (AnyOf, [Decision.DENY, Decision.ABSTAIN], Decision.ABSTAIN),
        (AnyOf, [Decision.DENY, Decision.DENY], Decision.DENY),
        (AnyOf, [Decision.DENY, Decision.ALLOW], Decision.ALLOW),
        (AllOf, [Decision.ALLOW, Decision.ABSTAIN], Decision.ABSTAIN),
        (AllOf, [Decision.ALLOW, Decision.ALLOW], Decision.ALLOW),
        (AllOf, [Decision.ALLOW, Decision.DENY], Decision.DENY),
    ],
)
async def test_combinators(combinator, children, expected) -> None:  # type: ignore[no-untyped-def]
    lists = [CallableAllowlist(lambda ctx, d=d: d) for d in children]
    assert await combinator(lists).evaluate(AuthContext(ALICE)) == expected


async def test_native_ids_of_another_channel_abstain_and_async_callables_work() -> None:
    async def later(ctx: AuthContext) -> Decision:
        return Decision.ALLOW

    assert await NativeIdAllowlist({"1"}, channel="responses").evaluate(AuthContext(ALICE)) == Decision.ABSTAIN
    assert await CallableAllowlist(later).evaluate(AuthContext(ALICE)) == Decision.ALLOW
    assert AnyOf([NATIVE, AllOf([CLAIM])]).requires_linked_claims


@pytest.mark.parametrize(
    ("default", "per_channel", "message"),
    [
        (CLAIM, {}, "neither requires a link nor emits verified claims"),
        (None, {"telegram": ChannelAuth(CLAIM, require_link=True)}, "no identity linker on this host verifies"),
        (AnyOf([NativeIdAllowlist({"1"}, channel="telegarm")]), {}, "names no channel of this host"),
        (NativeIdAllowlist([]), {}, "can never allow anyone"),
        (None, {"teams": ChannelAuth(NATIVE)}, "unknown channel 'teams'"),
    ],
)
def test_startup_validation(default, per_channel, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ChannelConfigurationError, match=message):
        validate(["telegram", "responses"], default, per_channel)


def test_valid_configurations_pass() -> None:
    validate(["telegram", "responses"], NATIVE, {"responses": ChannelAuth(None)})
    validate(["telegram"], None, {"telegram": ChannelAuth(CLAIM, require_link=True)}, has_claim_linker=True)


async def test_a_bad_configuration_fails_at_startup_not_on_the_first_request(tmp_path: Path) -> None:
    with pytest.raises(ChannelConfigurationError):
        async with afactors.open_host(None, channels=[ResponsesChannel()], state_dir=tmp_path, port=0,
                                      default_allowlist=NativeIdAllowlist([])):  # fmt: skip
            pass  # pragma: no cover


async def test_telegram_native_allowlist_per_message_in_groups(tmp_path: Path) -> None:
    async with open_fake_bot_api() as fake:
        alice, mallory = fake.user("Alice"), fake.user("Mallory")
        group = fake.group("Friends")
        channel = TelegramChannel(token=fake.token, api_base=fake.api_base)
        async with afactors.open_host(None, channels=[channel], state_dir=tmp_path, port=0, durability="unsafe",
                                      default_allowlist=NativeIdAllowlist({alice.id})) as host:  # fmt: skip
            fake.send_text(group, f"{fake.mention} hi", sender=alice)
            [allowed] = await fake.wait_for_messages(group, 1)
            fake.send_text(group, f"{fake.mention} me too", sender=mallory)  # the room is not authorized: she is not
            _, refused = await fake.wait_for_messages(group, 2)
            fake.send_text(mallory, "hello?")
            [dm_refused] = await fake.wait_for_messages(mallory, 1)
            stranger = host.identity.lookup("default", "telegram", str(mallory.id))
    assert allowed["text"] == "Turn 1. You said: hi"
    assert refused["text"] == dm_refused["text"] == "You don't have access to this bot."
    assert stranger is None  # a denied stranger leaves no identity behind


async def test_forced_link_over_responses_then_allowed(tmp_path: Path) -> None:
    async with open_fake_bot_api() as fake:
        alice = fake.user("Alice")
        channel = TelegramChannel(token=fake.token, api_base=fake.api_base)
        auth = {"responses": ChannelAuth(require_link=True)}
        async with (
            afactors.open_host(
                None,
                channels=[channel, ResponsesChannel()],
                state_dir=tmp_path,
                port=0,
                durability="unsafe",
                channel_auth=auth,
            ) as host,  # fmt: skip
            httpx.AsyncClient(base_url=host.urls[0]) as http,
        ):
            body = {"input": "hi", "safety_identifier": "alice"}
            before = await http.post("/v1/responses", json=body)
            anonymous = await http.post("/v1/responses", json={"input": "hi"})
            fake.send_text(alice, "/link")
            [answer] = await fake.wait_for_messages(alice, 1)
            code = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}", answer["text"])
            assert code is not None
            link = {"channel": "responses", "user": "alice", "code": code.group(0)}
            assert (await http.post("/v1/identity/links", json=link)).status_code == 200
            after = await http.post("/v1/responses", json={**body, "session": "identity"})
    assert before.status_code == 403 and before.json()["error"]["code"] == "link_required"
    assert anonymous.status_code == 403
    assert after.status_code == 200 and after.json()["output"][0]["content"][0]["text"] == "Turn 1. You said: hi"


async def test_telegram_forced_link_in_a_group_sends_the_challenge_privately(tmp_path: Path) -> None:
    async with open_fake_bot_api() as fake:
        alice = fake.user("Alice")
        group = fake.group("Friends")
        channel = TelegramChannel(token=fake.token, api_base=fake.api_base)
        auth = {"telegram": ChannelAuth(require_link=True)}
        async with afactors.open_host(None, channels=[channel], state_dir=tmp_path, port=0, durability="unsafe",
                                      channel_auth=auth):  # fmt: skip
            fake.send_text(alice, "/start")  # she opened a private chat with the bot once
            await fake.wait_for_messages(alice, 1)
            fake.send_text(group, f"{fake.mention} hi", sender=alice)
            [pointer] = await fake.wait_for_messages(group, 1)
            _, challenge = await fake.wait_for_messages(alice, 2)
    assert pointer["text"] == "Please link your account first: I sent you the details in a private chat."
    assert challenge["text"].startswith("Please link your account to continue")
