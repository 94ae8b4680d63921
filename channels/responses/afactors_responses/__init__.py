"""afactors channel: the OpenAI Responses API (`POST /v1/responses` and friends).

`plugin` is what the `afactors.channels` entry point names; embed with `ResponsesChannel()`.
"""

from __future__ import annotations

import argparse

from afactors_responses.transport import ResponsesChannel


class _Plugin:
    """CLI wiring: no flags and no credentials needed (API keys are the host's `--api-key`)."""

    name = "responses"
    needs_credentials = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def create(self, args: argparse.Namespace) -> ResponsesChannel:
        return ResponsesChannel()


plugin = _Plugin()

__all__ = ["ResponsesChannel", "plugin"]
