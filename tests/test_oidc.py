"""The OIDC linker against a local provider on loopback (tests/oidc_provider.py): authorization code + PKCE,
signed state bound to the identity, nonce, ID-token signature checked against the JWKS. Verified claims are
recorded and merge identities that present the same one; every forged or broken step is a clear 4xx and links
nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import afactors
from afactors.host import Host
from afactors.identity import ChannelAuth, ChannelConfigurationError, LinkedClaimAllowlist
from afactors.identity.oidc import OidcConfig, OidcError, open_state, sign_state
from afactors_responses import ResponsesChannel
from afactors_telegram import TelegramChannel
from afactors_telegram.testing import FakeBotApi
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider
from tests.telegram_fake import CHANNEL_LIMITS, telegram_host

URL = re.compile(r"(http://\S+)")


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with running_provider() as running:
        yield running


def oidc(provider: Provider) -> OidcConfig:
    return OidcConfig(provider.issuer, CLIENT_ID, CLIENT_SECRET, claims=("email", "name", "oid", "tid"))


def hosted(provider: Provider, fake: FakeBotApi, state: Path,
           **host: Any) -> AbstractAsyncContextManager[tuple[Host, httpx.AsyncClient]]:  # fmt: skip
    return telegram_host(fake, state, oidc=oidc(provider), **host)


async def start(http: httpx.AsyncClient, user: str) -> str:
    answer = await http.post("/v1/identity/oidc/start", json={"channel": "responses", "user": user})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["url"])


async def sign_in(url: str) -> str:
    """What a browser does: open the provider's URL, follow its redirect back; the callback URL."""
    async with httpx.AsyncClient(timeout=20) as browser:
        at_provider = await browser.get(url)
    assert at_provider.status_code == 302, at_provider.text
    return str(at_provider.headers["location"])


async def test_sign_in_records_verified_claims_and_merges_same_email(
    provider: Provider, fake: FakeBotApi, tmp_path: Path
) -> None:
    alice = fake.user("Alice")
    async with hosted(provider, fake, tmp_path / "state") as (host, http):
        fake.send_text(alice, "/login")
        [sent] = await fake.wait_for_messages(alice, 1)
        match = URL.search(sent["text"])
        assert match is not None, sent["text"]
        done = await http.get(await sign_in(match.group(1)))
        provider.login_as = {"sub": "user-1", "email": "Alice@Example.com", "email_verified": True, "oid": "o-1"}
        web = await http.get(await sign_in(await start(http, "alice-web")))
        on_telegram = host.identity.lookup("default", "telegram", str(alice.id))
        on_web = host.identity.lookup("default", "responses", "alice-web")
        assert on_web is not None
        audit = [a.action for a in host.identity.audit("default", on_web.key)]
    assert done.status_code == 200 and "Linked telegram with alice@example.com" in done.text
    assert web.status_code == 200
    assert on_telegram is not None and on_web is not None and on_telegram.key == on_web.key
    assert sorted(on_web.members) == ["responses/alice-web", f"telegram/{alice.id}"]
    assert on_web.claims["email"] == "alice@example.com" and on_web.claims["oid"] == "o-1"
    assert on_web.claims["iss"] == provider.issuer and on_web.claims["sub"] == "user-1"
    assert audit.count("claims") == 2 and "link" in audit


async def test_different_accounts_stay_apart_and_unverified_email_does_not_merge(
    provider: Provider, fake: FakeBotApi, tmp_path: Path
) -> None:
    async with hosted(provider, fake, tmp_path / "state") as (host, http):
        provider.login_as = {"sub": "a", "email": "shared@example.com", "email_verified": True}
        await http.get(await sign_in(await start(http, "one")))
        provider.login_as = {"sub": "b", "email": "shared@example.com", "email_verified": False}
        await http.get(await sign_in(await start(http, "two")))
        one = host.identity.lookup("default", "responses", "one")
        two = host.identity.lookup("default", "responses", "two")
    assert one is not None and two is not None and one.key != two.key
    assert "email" not in two.claims and two.claims["sub"] == "b"


def nothing_linked(host: Host, user: str) -> bool:
    found = host.identity.lookup("default", "responses", user)
    return found is None or (not found.claims and len(found.members) == 1)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("audience", "issued for another client"),
        ("signature", "not valid (InvalidSignatureError)"),
        ("expired", "has expired"),
        ("nonce", "nonce mismatch"),
    ],
)
async def test_a_bad_id_token_is_a_4xx_and_links_nothing(
    provider: Provider, fake: FakeBotApi, tmp_path: Path, tamper: str, message: str
) -> None:
    async with hosted(provider, fake, tmp_path / "state") as (host, http):
        callback = await sign_in(await start(http, "mallory"))
        provider.tamper = tamper
        answer = await http.get(callback)
        assert nothing_linked(host, "mallory")
    assert answer.status_code == 400 and message in answer.text, answer.text


async def test_forged_replayed_and_pkce_mismatched_callbacks_are_4xx(
    provider: Provider, fake: FakeBotApi, tmp_path: Path
) -> None:
    async with hosted(provider, fake, tmp_path / "state") as (host, http):
        callback = await sign_in(await start(http, "bob"))
        query = parse_qs(urlsplit(callback).query)
        code, state = query["code"][0], query["state"][0]
        forged_state = sign_state(b"not the host's key", {"t": "default", "c": "responses", "u": "bob", "x": 9e9})
        forged = await http.get("/v1/identity/oidc/callback", params={"code": code, "state": forged_state})
        edited = await http.get("/v1/identity/oidc/callback", params={"code": code, "state": state[:-2] + "xx"})
        missing = await http.get("/v1/identity/oidc/callback", params={"code": code})
        assert nothing_linked(host, "bob")
        first = await http.get(callback)
        replayed = await http.get(callback)
        # PKCE: the code is exchanged with the verifier of another sign-in's state
        other = parse_qs(urlsplit(await sign_in(await start(http, "carol"))).query)
        third = parse_qs(urlsplit(await sign_in(await start(http, "carol"))).query)
        mixed = await http.get("/v1/identity/oidc/callback", params={"code": other["code"][0],
                                                                     "state": third["state"][0]})  # fmt: skip
        refused = await http.get("/v1/identity/oidc/callback", params={"error": "access_denied",
                                                                       "state": other["state"][0]})  # fmt: skip
        assert nothing_linked(host, "carol")
    assert forged.status_code == 400 and "not valid" in forged.text
    assert edited.status_code == 400 and missing.status_code == 400
    assert first.status_code == 200
    assert replayed.status_code == 400 and "already completed" in replayed.text
    assert mixed.status_code == 400 and "refused the code (invalid_grant)" in mixed.text
    assert refused.status_code == 400 and "refused: access_denied" in refused.text


async def test_start_route_refuses_bad_input(provider: Provider, fake: FakeBotApi, tmp_path: Path) -> None:
    async with hosted(provider, fake, tmp_path / "state", api_keys=("key",)) as (_, http):
        anonymous = await http.post("/v1/identity/oidc/start", json={"channel": "responses", "user": "x"})
        auth = {"Authorization": "Bearer key"}
        telegram = await http.post("/v1/identity/oidc/start", json={"channel": "telegram", "user": "1"},
                                   headers=auth)  # fmt: skip
        not_json = await http.post("/v1/identity/oidc/start", content=b"{", headers=auth)
        no_user = await http.post("/v1/identity/oidc/start", json={"channel": "responses"}, headers=auth)
    assert anonymous.status_code == 401
    assert telegram.status_code == 400 and telegram.json()["error"]["param"] == "channel"
    assert not_json.status_code == 400 and no_user.status_code == 400
    assert no_user.json()["error"]["code"] == "missing_required_parameter"


async def test_login_without_a_linker_and_in_groups(fake: FakeBotApi, tmp_path: Path) -> None:
    alice, group = fake.user("Alice"), fake.group("G")
    telegram = TelegramChannel(token=fake.token, api_base=fake.api_base, limits=CHANNEL_LIMITS)
    async with afactors.open_host(None, channels=[telegram], state_dir=tmp_path / "s", port=0, durability="unsafe"):
        fake.send_text(alice, "/login")
        fake.send_text(group, "/login", sender=alice)
        [private] = await fake.wait_for_messages(alice, 1)
        [in_group] = await fake.wait_for_messages(group, 1)
    assert private["text"] == "Sign-in is not configured for this bot."
    assert in_group["text"] == "Send /login to me in a private chat."


async def test_a_linked_claim_allowlist_needs_the_linker_and_admits_signed_in_users(
    provider: Provider, fake: FakeBotApi, tmp_path: Path
) -> None:
    auth = {"responses": ChannelAuth(LinkedClaimAllowlist("email", {"alice@example.com"}), require_link=True)}
    with pytest.raises(ChannelConfigurationError, match="no identity linker"):
        async with afactors.open_host(None, channels=[ResponsesChannel()], state_dir=tmp_path / "x", port=0,
                                      channel_auth=auth):  # fmt: skip
            pass
    async with hosted(provider, fake, tmp_path / "state", channel_auth=auth) as (_, http):
        ask = {"model": "m", "input": "hi", "user": "alice-web"}
        before = await http.post("/v1/responses", json=ask)
        await http.get(await sign_in(await start(http, "alice-web")))
        after = await http.post("/v1/responses", json=ask)
    assert before.status_code == 403 and before.json()["error"]["code"] == "link_required"
    assert after.status_code == 200, after.text


def test_state_is_signed_and_expires() -> None:
    secret = b"k" * 32
    state = sign_state(secret, {"t": "a", "x": 100.0})
    assert open_state(secret, state, 99.0)["t"] == "a"
    with pytest.raises(OidcError, match="expired"):
        open_state(secret, state, 100.0)
    for bad in ("", "1.x", "2" + state[1:], state + "a", "1.e30.AAAA", state.replace(".", "..", 1)):
        with pytest.raises(OidcError) as error:
            open_state(secret, bad, 0.0)
        assert error.value.code == "invalid_state"


def test_the_core_imports_without_the_oidc_extra() -> None:
    code = "import sys, afactors, afactors.host, afactors.identity.oidc; assert 'jwt' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
