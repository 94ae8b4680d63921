"""afactors channel: the Foundry hosted-agent Invocations protocol (`POST /invocations` and friends)."""

from afactors_invocations.channel import InvocationsChannel, InvocationsPlugin, plugin
from afactors_invocations.codec import InvocationError, InvocationIds, InvocationRequest, Parser, Renderer

__all__ = [
    "InvocationError",
    "InvocationIds",
    "InvocationRequest",
    "InvocationsChannel",
    "InvocationsPlugin",
    "Parser",
    "Renderer",
    "plugin",
]
