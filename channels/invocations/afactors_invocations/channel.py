"""`InvocationsChannel`: the Foundry hosted-agent Invocations protocol as an afactors channel, and its plugin."""

from __future__ import annotations

import argparse
from typing import Any, ClassVar

import attrs

from afactors.channel import ChannelContext, Contribution, ResponseHook, RunHook
from afactors.model import BusyPolicy
from afactors_invocations.codec import Parser, Renderer, parse_default, render_default
from afactors_invocations.openapi import default_openapi
from afactors_invocations.transport import InvocationsRoutes


@attrs.define
class InvocationsChannel:
    """Serves `POST <path>`, `GET <path>/<invocation_id>`, `POST <path>/<invocation_id>/cancel` and the OpenAPI doc.

    `parser` (request JSON -> `InvocationRequest`) and `renderer` (`Reply`, ids -> response JSON) replace the
    default body `{"message", "session_id"?, "stream"?, "background"?}` -> `{"response", "session_id",
    "invocation_id"}`. `openapi_spec` documents a replaced body; without one only the default body has a doc.
    `local_user` is the user key when a request carries no isolation headers (local development).
    `busy_policy` overrides the host's for this channel's turns.
    """

    name: ClassVar[str] = "invocations"

    path: str = "/invocations"
    parser: Parser = parse_default
    renderer: Renderer = render_default
    openapi_spec: dict[str, Any] | None = None
    run_hook: RunHook | None = None
    response_hook: ResponseHook | None = None
    local_user: str = "local"
    busy_policy: BusyPolicy | None = None

    def openapi(self) -> dict[str, Any] | None:
        """The spec to serve: the given one, the default body's, or None for a replaced body without a spec."""
        if self.openapi_spec is not None:
            return self.openapi_spec
        if self.parser is parse_default and self.renderer is render_default:
            return default_openapi(self.path)
        return None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        return Contribution(routes=InvocationsRoutes(self, ctx).routes())


class InvocationsPlugin:
    """The `afactors.channels` entry point: no flags and no credentials needed."""

    name = "invocations"
    needs_credentials = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Invocations takes no CLI flags."""

    def create(self, args: argparse.Namespace) -> InvocationsChannel:
        return InvocationsChannel()


plugin = InvocationsPlugin()
