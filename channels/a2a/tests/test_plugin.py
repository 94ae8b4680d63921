"""The `a2a` entry point: CLI flags configure the card, the path and the optional features."""

from __future__ import annotations

import pytest

from afactors.channel import installed_plugins
from afactors.cli import build_parser
from afactors_a2a import A2AChannel, Skill


def channel_from(*argv: str) -> A2AChannel:
    plugins = installed_plugins()
    args = build_parser(plugins).parse_args(list(argv))
    channel = plugins["a2a"].create(args)
    assert isinstance(channel, A2AChannel)
    return channel


def test_the_plugin_is_registered_and_needs_no_credentials() -> None:
    plugin = installed_plugins()["a2a"]
    assert plugin.name == "a2a" and plugin.needs_credentials is False
    assert channel_from() == A2AChannel()


def test_flags_configure_the_channel() -> None:
    channel = channel_from(
        "--a2a-path",
        "/agents/a2a",
        "--a2a-name",
        "Helper",
        "--a2a-description",
        "Helps.",
        "--a2a-agent-version",
        "2.1",
        "--a2a-skill",
        "search:Search:Finds things",
        "--a2a-skill",
        "sum",
        "--a2a-public-url",
        "https://agents.example",
        "--a2a-input-mode",
        "text/plain",
        "--a2a-input-mode",
        "image/*",
        "--a2a-no-streaming",
        "--a2a-no-push",
    )
    card = channel.card
    assert channel.path == "/agents/a2a" and channel.public_url == "https://agents.example"
    assert (card.name, card.description, card.version) == ("Helper", "Helps.", "2.1")
    assert card.skills == (Skill("search", "Search", "Finds things", ("search",)), Skill("sum", "sum", "sum", ("sum",)))
    assert card.input_modes == ("text/plain", "image/*") and not card.streaming and not card.push_notifications


def test_a_skill_without_an_id_is_refused() -> None:
    with pytest.raises(SystemExit):
        channel_from("--a2a-skill", ":name")


async def test_the_card_uses_the_configured_path_and_public_url(serve) -> None:
    channel = A2AChannel(path="/agents/a2a", public_url="https://agents.example/")
    async with serve(channel=channel) as served:
        card = (await served.http.get("/.well-known/agent-card.json")).json()
        answer = await served.http.post(
            "/agents/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "ListTasks"}, headers={"A2A-Version": "1.0"}
        )
    assert card["url"] == card["supportedInterfaces"][0]["url"] == "https://agents.example/agents/a2a"
    assert answer.json()["result"]["tasks"] == []
