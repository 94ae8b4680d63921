"""The agent card (A-01) at `/.well-known/agent-card.json` (and the pre-0.3 `/.well-known/agent.json`). Pure.

The card is a v1 card (`supportedInterfaces` with one JSON-RPC interface per protocol version, both at the same
URL) with the v0.3 top-level fields (`url`, `preferredTransport`, `protocolVersion`) beside it, so v0.3 clients
find the endpoint too; v1 clients read `supportedInterfaces` only. Capabilities say exactly what is served.
"""

from __future__ import annotations

from typing import Any

import attrs

from afactors_a2a.versions import V03, V1


@attrs.frozen
class Skill:
    """One skill the card lists."""

    id: str
    name: str
    description: str
    tags: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
        }
        if self.examples:
            rendered["examples"] = list(self.examples)
        return rendered


DEFAULT_SKILL = Skill("chat", "Chat", "Answers messages in a conversation (one context per conversation).", ("chat",))


@attrs.frozen
class CardSettings:
    """What the card says about the agent; `streaming` and `push_notifications` switch those features."""

    name: str = "afactors agent"
    description: str = "An agent hosted by afactors."
    version: str = "1.0.0"
    skills: tuple[Skill, ...] = (DEFAULT_SKILL,)
    input_modes: tuple[str, ...] = ("text/plain", "application/json")
    output_modes: tuple[str, ...] = ("text/plain", "application/json")
    streaming: bool = True
    push_notifications: bool = True
    documentation_url: str | None = None


def render_card(settings: CardSettings, url: str, *, bearer: bool) -> dict[str, Any]:
    """The card for the JSON-RPC endpoint at `url`; `bearer`: the host wants `Authorization: Bearer <key>`."""
    card: dict[str, Any] = {
        "name": settings.name,
        "description": settings.description,
        "version": settings.version,
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": V1},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": V03},
        ],
        "capabilities": {
            "streaming": settings.streaming,
            "pushNotifications": settings.push_notifications,
            "extendedAgentCard": False,
        },
        "defaultInputModes": list(settings.input_modes),
        "defaultOutputModes": list(settings.output_modes),
        "skills": [skill.render() for skill in settings.skills],
        # v0.3 readers:
        "url": url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": f"{V03}.0",
    }
    if settings.documentation_url is not None:
        card["documentationUrl"] = settings.documentation_url
    if bearer:
        card["securitySchemes"] = {"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}}
        card["securityRequirements"] = [{"schemes": {"bearer": {"list": []}}}]
    return card
