"""`python -m afactors --channel X` imports only the plugins of the channels it names (a faster start)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from afactors.cli import named_channels

CHANNEL_MODULES = """
import sys
from afactors.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted({name.split(".")[0] for name in sys.modules if name.startswith("afactors_")})))
"""


def imported_channels(*args: str) -> str:
    done = subprocess.run([sys.executable, "-c", CHANNEL_MODULES, *args], capture_output=True, text=True, timeout=60)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--channel", "responses"], {"responses"}),
        (["--port", "1", "--channel=chat", "--channel", "responses"], {"chat", "responses"}),
        (["--port", "1"], None),  # no --channel: every configured channel, so every plugin
        (["--channel", "responses", "--config", "afactors.toml"], None),  # the file may configure any channel
        (["--channel", "responses", "--config=afactors.toml"], None),
        (["--channel", "responses", "--help"], None),  # lists every channel's flags
    ],
)
def test_the_channels_named_on_the_command_line(argv: list[str], names: set[str] | None) -> None:
    assert named_channels(argv) == names


def test_naming_a_channel_imports_no_other_channel() -> None:
    assert imported_channels("--channel", "responses", "--version") == "afactors_responses"


def test_without_channel_every_installed_plugin_is_loaded() -> None:
    assert {"afactors_responses", "afactors_telegram"} <= set(imported_channels("--version").split())


def test_a_flag_of_a_channel_not_named_is_still_accepted() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "afactors", "--channel", "responses", "--telegram-token", "1:x", "--target", "nope:x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unrecognized arguments" not in done.stderr
    assert "nope" in done.stderr  # got as far as loading the target: the flags were accepted
