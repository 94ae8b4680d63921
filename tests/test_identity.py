"""The identity service on a real LMDB store: keys, resolvers, one-time-code linking, unlink, /new, tenants."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from afactors.identity import (
    ExplicitPairs,
    IdentityConfig,
    IdentityRefused,
    IdentityService,
    LinkFailed,
    LinkPolicy,
    allow_all_links,
    deny_all_links,
    same_tier_only,
)
from afactors.identity._codes import normalize
from afactors.model import Identity
from afactors.store import Store

ALICE_TG = Identity("telegram", "1001")
ALICE_WEB = Identity("responses", "alice@example.com")


async def test_first_contact_issues_a_key_that_survives_a_restart(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)
        first = await service.resolve("default", ALICE_TG, {"chat_id": 1001})
        assert (await service.resolve("default", ALICE_TG)).key == first.key
        assert first.key != (await service.resolve("default", ALICE_WEB)).key
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)
        again = await service.resolve("default", ALICE_TG)
        record = service.record("default", again.key)
    assert again == first
    assert record is not None and record.members["telegram/1001"].address == {"chat_id": 1001}
    assert record.last == "telegram/1001" and record.members["telegram/1001"].last_seen_at is not None


async def test_racing_first_contacts_get_one_key(state_dir: Path) -> None:
    keys: list[str] = []
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)

        async def contact() -> None:
            keys.append((await service.resolve("default", ALICE_TG)).key)

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(contact)
    assert len(set(keys)) == 1


async def test_last_seen_follows_the_channel_the_person_used_last(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)
        code = await service.issue_code("default", ALICE_TG)
        await service.redeem("default", ALICE_WEB, code.code)
        await service.resolve("default", ALICE_TG)
        key = (await service.resolve("default", ALICE_TG)).key
        assert service.record("default", key).last == "telegram/1001"  # type: ignore[union-attr]
        await service.resolve("default", ALICE_WEB)
        assert service.record("default", key).last == "responses/alice@example.com"  # type: ignore[union-attr]


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_custom_resolver_names_keys_or_refuses(state_dir: Path, is_async: bool) -> None:
    def decide(tenant: str, who: Identity) -> str | None:
        return None if who.user_id == "mallory" else f"app-{who.user_id}"

    async def decide_async(tenant: str, who: Identity) -> str | None:
        await trio.lowlevel.checkpoint()
        return decide(tenant, who)

    config = IdentityConfig(resolver=decide_async if is_async else decide)
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store, config)
        assert (await service.resolve("default", Identity("telegram", "7"))).key == "app-7"
        with pytest.raises(IdentityRefused) as refused:
            await service.resolve("default", Identity("telegram", "mallory"))
    assert refused.value.message == "You don't have access to this bot."


async def test_a_resolver_returning_a_bad_key_is_an_error(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store, IdentityConfig(resolver=lambda tenant, who: "a/b"))
        with pytest.raises(ValueError, match="isolation key"):
            await service.resolve("default", ALICE_TG)


async def test_a_code_merges_two_identities_once_with_an_audit_record(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)
        tg = await service.resolve("default", ALICE_TG)
        web = await service.resolve("default", ALICE_WEB)
        code = await service.issue_code("default", ALICE_TG)
        assert normalize(code.code) is not None and len(code.code) == 9
        merged = await service.redeem("default", ALICE_WEB, code.code.lower().replace("-", " "))
        assert merged.key == tg.key and set(merged.members) == {"telegram/1001", "responses/alice@example.com"}
        after = await service.resolve("default", ALICE_WEB)
        assert after == tg  # the web identity now continues the Telegram conversation
        assert service.record("default", web.key) == service.record("default", tg.key)  # merged_into followed
        with pytest.raises(LinkFailed) as reused:
            await service.redeem("default", Identity("responses", "bob"), code.code)
        audit = [(a.action, a.channel) for a in service.audit("default", tg.key)]
    assert reused.value.code == "invalid_code"
    assert audit == [("link", "responses")]
    async with Store.open(state_dir, durability="unsafe") as store:  # durable
        assert (await IdentityService(store).resolve("default", ALICE_WEB)).key == tg.key


async def test_wrong_malformed_and_expired_codes_fail(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store, IdentityConfig(code_ttl=-1.0))  # every code is born expired
        code = await service.issue_code("default", ALICE_TG)
        failures = []
        for attempt in ("ABCD-EFGH", "not a code", "", code.code, code.code):
            with pytest.raises(LinkFailed) as failed:
                await service.redeem("default", ALICE_WEB, attempt)
            failures.append(failed.value.code)
        assert service.lookup("default", "responses", ALICE_WEB.user_id).members.keys() == {  # type: ignore[union-attr]
            "responses/alice@example.com"
        }
    assert failures == ["invalid_code", "invalid_code", "invalid_code", "expired_code", "invalid_code"]


async def test_codes_and_failed_redemptions_are_rate_limited(state_dir: Path) -> None:
    config = IdentityConfig(codes_per_window=2, failures_per_window=3)
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store, config)
        for _ in range(2):
            await service.issue_code("default", ALICE_TG)
        with pytest.raises(LinkFailed) as too_many_codes:
            await service.issue_code("default", ALICE_TG)
        good = await service.issue_code("default", Identity("telegram", "2002"))
        for _ in range(3):
            with pytest.raises(LinkFailed):
                await service.redeem("default", ALICE_WEB, "AAAA-AAAA")
        with pytest.raises(LinkFailed) as locked_out:  # even the right code, until the window passes
            await service.redeem("default", ALICE_WEB, good.code)
    assert too_many_codes.value.code == "rate_limited"
    assert locked_out.value.code == "rate_limited"


async def test_concurrent_redemptions_of_one_code_exactly_one_wins(state_dir: Path) -> None:
    wins: list[str] = []
    losses: list[str] = []
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)
        code = await service.issue_code("default", ALICE_TG)

        async def redeem(n: int) -> None:
            try:
                await service.redeem("default", Identity("responses", f"user{n}"), code.code)
                wins.append(f"user{n}")
            except LinkFailed as failed:
                losses.append(failed.code)

        async with trio.open_nursery() as nursery:
            for n in range(25):
                nursery.start_soon(redeem, n)
        record = service.lookup("default", "telegram", "1001")
    assert len(wins) == 1 and losses == ["invalid_code"] * 24
    assert record is not None and set(record.members) == {"telegram/1001", f"responses/{wins[0]}"}


async def test_tenants_never_cross(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)
        a = await service.resolve("tenant-a", ALICE_TG)
        b = await service.resolve("tenant-b", ALICE_TG)
        code = await service.issue_code("tenant-a", ALICE_TG)
        with pytest.raises(LinkFailed) as crossed:
            await service.redeem("tenant-b", ALICE_WEB, code.code)
        assert service.lookup("tenant-b", "responses", ALICE_WEB.user_id) is not None
        assert service.lookup("tenant-a", "responses", ALICE_WEB.user_id) is None
    assert a.key != b.key and crossed.value.code == "invalid_code"


async def test_unlink_and_revoke_give_a_fresh_identity(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)
        assert not await service.unlink("default", "telegram", "1001")  # unknown
        code = await service.issue_code("default", ALICE_TG)
        merged = await service.redeem("default", ALICE_WEB, code.code)
        assert await service.unlink("default", "responses", ALICE_WEB.user_id)
        alone = await service.resolve("default", ALICE_WEB)
        assert alone.key != merged.key and alone.conversation != merged.conversation
        assert not await service.unlink("default", "responses", ALICE_WEB.user_id)  # nothing left to unlink
        code = await service.issue_code("default", ALICE_TG)
        await service.redeem("default", ALICE_WEB, code.code)
        assert await service.unlink("default", "telegram", "1001", action="revoke")
        actions = [a.action for a in service.audit("default", merged.key)]
    assert actions == ["link", "unlink", "link", "revoke"]


async def test_new_conversation_moves_every_linked_channel(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store)
        code = await service.issue_code("default", ALICE_TG)
        before = await service.redeem("default", ALICE_WEB, code.code)
        fresh = await service.new_conversation("default", ALICE_WEB)
        assert fresh != before.conversation and fresh.startswith(before.conversation + "#")
        assert (await service.resolve("default", ALICE_TG)).conversation == fresh


def test_codes_normalize_case_spaces_and_dashes_and_refuse_the_rest() -> None:
    assert normalize(" k7qm-2xpa ") == normalize("K7QM 2XPA") == "K7QM2XPA"
    assert [normalize(bad) for bad in ("K7QM-2XP", "K7QM-2XPAA", "K7QM-2XP0", "I0O1-AAAA", "")] == [None] * 5


async def test_sliding_window_forgets_old_events() -> None:
    from afactors.identity._window import SlidingWindow

    window = SlidingWindow(limit=2, window=10.0)
    await window.add("a", 0.0)
    await window.add("a", 5.0)
    assert window.full("a", 9.0) and not window.full("b", 9.0)
    assert not window.full("a", 10.5)  # the first event left the window


@pytest.mark.parametrize(
    ("policy", "linked"),
    [
        (allow_all_links, True),
        (deny_all_links, False),
        (same_tier_only, False),
        (ExplicitPairs({("corp", "public")}), False),  # directed: the code's channel is the source
        (ExplicitPairs({("public", "corp")}), True),
    ],
)
async def test_link_policy_and_tiers_decide_which_channels_may_link(
    state_dir: Path, policy: LinkPolicy, linked: bool
) -> None:
    config = IdentityConfig(tiers={"telegram": "public", "responses": "corp"}, link_policy=policy)
    async with Store.open(state_dir, durability="unsafe") as store:
        service = IdentityService(store, config)
        code = await service.issue_code("default", ALICE_TG)
        if linked:
            await service.redeem("default", ALICE_WEB, code.code)
        else:
            with pytest.raises(LinkFailed) as refused:
                await service.redeem("default", ALICE_WEB, code.code)
            assert refused.value.code == "policy"
        record = service.lookup("default", "responses", ALICE_WEB.user_id)
    assert record is not None and ("telegram/1001" in record.members) is linked
