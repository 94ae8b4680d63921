"""The `mcp` entry point: CLI flags configure the channel; bad values stop the CLI with a clear message."""

from __future__ import annotations

import argparse

import pytest

from afactors.channel import installed_plugins
from afactors_mcp import McpChannel, plugin


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    plugin.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_plugin_is_registered_and_on_by_default() -> None:
    assert installed_plugins()["mcp"] is plugin and not plugin.needs_credentials
    channel = plugin.create(parse())
    assert isinstance(channel, McpChannel) and channel.config.path == "/mcp" and channel.config.tool.name == "ask_agent"


def test_flags_configure_the_channel() -> None:
    channel = plugin.create(parse(
        "--mcp-path", "/tools/mcp", "--mcp-tool-name", "ask_bob", "--mcp-tool-description", "Bob knows.",
        "--mcp-allow-origin", "https://a.example", "--mcp-allow-origin", "https://b.example",
        "--mcp-max-sessions", "5", "--mcp-session-idle-timeout", "60", "--mcp-stateless",
    ))  # fmt: skip
    config = channel.config
    assert (config.path, config.tool.name, config.tool.description) == ("/tools/mcp", "ask_bob", "Bob knows.")
    assert config.allowed_origins == ("https://a.example", "https://b.example")
    assert (config.max_sessions, config.session_idle_timeout, config.stateless) == (5, 60.0, True)
    assert not plugin.create(parse()).config.stateless


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [(("--mcp-path", "mcp"), "path"), (("--mcp-path", "/mcp/"), "path"), (("--mcp-tool-name", "a b"), "tool name"),
     (("--mcp-max-sessions", "0"), "max_sessions"), (("--mcp-session-idle-timeout", "0"), "session_idle_timeout")],
)  # fmt: skip
def test_bad_flags_exit_with_a_message(flags: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(SystemExit, match=f"mcp: .*{fragment}"):
        plugin.create(parse(*flags))
