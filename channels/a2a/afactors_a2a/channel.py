"""`A2AChannel`: A2A 1.0 (JSON-RPC binding, with v0.3 compatibility) as an afactors channel, and its CLI plugin."""

from __future__ import annotations

import argparse
from typing import ClassVar

import attrs

from afactors.channel import ChannelContext, Contribution, ResponseHook, RunHook
from afactors.model import BusyPolicy
from afactors_a2a.card import DEFAULT_SKILL, CardSettings, Skill
from afactors_a2a.transport import A2ARoutes


@attrs.define
class A2AChannel:
    """Serves the agent card and the A2A JSON-RPC endpoint at `path` (see docs/channels/a2a.md).

    `card`: name, description, skills, modes and which optional features (streaming, push notifications) are on;
    the card advertises exactly those. `public_url`: the base URL clients reach this host at, for the card
    (default: the URL of the request that fetched the card). `busy_policy` overrides the host's for this
    channel's turns (`reject` answers a message to a busy context with -32004 instead of queueing it).
    """

    name: ClassVar[str] = "a2a"

    path: str = "/a2a"
    card: CardSettings = attrs.Factory(CardSettings)
    public_url: str | None = None
    busy_policy: BusyPolicy | None = None
    run_hook: RunHook | None = None
    response_hook: ResponseHook | None = None

    def contribute(self, ctx: ChannelContext) -> Contribution:
        routes = A2ARoutes(self, ctx)
        return Contribution(routes=routes.routes(), deliver=routes.pusher.deliver, on_shutdown=[routes.pusher.close])


def _skill(text: str) -> Skill:
    """`id:name:description` (name and description optional) as a skill."""
    skill_id, _, rest = text.partition(":")
    name, _, description = rest.partition(":")
    if not skill_id:
        raise argparse.ArgumentTypeError(f"a skill looks like id[:name[:description]], got {text!r}")
    return Skill(skill_id, name or skill_id, description or name or skill_id, (skill_id,))


class A2APlugin:
    """The `afactors.channels` entry point: card and path flags, no credentials needed."""

    name = "a2a"
    needs_credentials = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("a2a channel")
        defaults = CardSettings()
        group.add_argument("--a2a-path", default="/a2a", help="JSON-RPC endpoint path (default: /a2a)")
        group.add_argument("--a2a-name", default=defaults.name, help="agent name on the card")
        group.add_argument("--a2a-description", default=defaults.description, help="agent description on the card")
        group.add_argument("--a2a-agent-version", default=defaults.version, help="agent version on the card")
        group.add_argument(
            "--a2a-skill",
            action="append",
            type=_skill,
            metavar="ID[:NAME[:DESCRIPTION]]",
            help="a skill on the card (repeatable; default: one chat skill)",
        )
        group.add_argument("--a2a-public-url", help="base URL clients use, for the card (default: the request's)")
        group.add_argument(
            "--a2a-input-mode",
            action="append",
            metavar="MEDIA_TYPE",
            help="accepted input media type, wildcards allowed (repeatable; default: text/plain, application/json)",
        )
        group.add_argument("--a2a-no-streaming", action="store_true", help="do not offer streaming methods")
        group.add_argument("--a2a-no-push", action="store_true", help="do not offer push notifications")

    def create(self, args: argparse.Namespace) -> A2AChannel:
        defaults = CardSettings()
        card = CardSettings(
            name=args.a2a_name,
            description=args.a2a_description,
            version=args.a2a_agent_version,
            skills=tuple(args.a2a_skill or (DEFAULT_SKILL,)),
            input_modes=tuple(args.a2a_input_mode or defaults.input_modes),
            streaming=not args.a2a_no_streaming,
            push_notifications=not args.a2a_no_push,
        )
        return A2AChannel(path=args.a2a_path, card=card, public_url=args.a2a_public_url)


plugin = A2APlugin()
