"""afactors channel: OpenAI Chat Completions (`POST /v1/chat/completions`) and Models (`GET /v1/models`).

`plugin` is what the `afactors.channels` entry point names; embed with `ChatChannel()`.
"""

from __future__ import annotations

import argparse

from afactors_chat.transport import ChatChannel


class _Plugin:
    """CLI wiring: no flags of its own; the host's `--model` name is listed as a model too."""

    name = "chat"
    needs_credentials = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def create(self, args: argparse.Namespace) -> ChatChannel:
        model = getattr(args, "model", None)
        return ChatChannel(models=("afactors", model) if model else ("afactors",))


plugin = _Plugin()

__all__ = ["ChatChannel", "plugin"]
