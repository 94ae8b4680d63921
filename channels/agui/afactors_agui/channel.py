"""`AguiChannel`: the AG-UI protocol as an afactors channel, and its plugin (CLI flags)."""

from __future__ import annotations

import argparse
from typing import ClassVar

import attrs

from afactors.channel import ChannelContext, Contribution, ResponseHook, RunHook
from afactors.model import BUSY_POLICIES, BusyPolicy
from afactors_agui.transport import AguiRoutes

DEFAULT_PATH = "/agui"


def _check_path(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not value.startswith("/") or "<" in value or "?" in value or "#" in value:
        raise ValueError(f"the AG-UI path must be a plain URL path starting with '/', not {value!r}")


@attrs.define
class AguiChannel:
    """Serves `POST <path>` (default `/agui`): a `RunAgentInput` in, the run's AG-UI events out as SSE.

    `threadId` names the conversation (one actor per tenant and thread: its runs are serialised), each run is
    one turn. `busy_policy` overrides the host's for this channel's turns; `run_hook` may rewrite or refuse
    envelopes (`HookRejected` becomes its 4xx), `response_hook` may rewrite finished replies.
    """

    name: ClassVar[str] = "agui"

    path: str = attrs.field(default=DEFAULT_PATH, validator=_check_path)
    busy_policy: BusyPolicy | None = None
    run_hook: RunHook | None = None
    response_hook: ResponseHook | None = None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        return Contribution(routes=AguiRoutes(ctx, self.path, self.busy_policy).routes())


class AguiPlugin:
    """The `afactors.channels` entry point: `--agui-path`, `--agui-busy-policy`; no credentials needed."""

    name = "agui"
    needs_credentials = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("agui channel")
        group.add_argument(
            "--agui-path",
            default=DEFAULT_PATH,
            metavar="PATH",
            help="URL path of the AG-UI endpoint (default: %(default)s)",
        )
        group.add_argument(
            "--agui-busy-policy",
            choices=sorted(BUSY_POLICIES),
            default=None,
            help="what a run does while its thread is busy (default: the host's --busy-policy)",
        )

    def create(self, args: argparse.Namespace) -> AguiChannel:
        return AguiChannel(path=args.agui_path, busy_policy=args.agui_busy_policy)


plugin = AguiPlugin()
