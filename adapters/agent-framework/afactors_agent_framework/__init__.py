"""afactors target adapter: Microsoft Agent Framework agents and workflows.

Installed, it registers `adapter` in the `afactors.targets` entry-point group, so `--target mod:agent` and
`open_host(agent)` accept an Agent Framework agent (anything implementing `SupportsAgentRun`), a `Workflow` or a
`WorkflowBuilder` directly. Embed by hand with `AgentFrameworkAgent(agent)` / `WorkflowAgent(workflow)`.

Importing this package does not import Agent Framework (its import takes a second or more): the adapter only looks
at a target once Agent Framework is loaded in the process, which any object of its kinds implies.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

from afactors.model import Agent

_LAZY = {
    "ActorHistory": "afactors_agent_framework.agent",
    "AgentFrameworkAgent": "afactors_agent_framework.agent",
    "AsyncioThread": "afactors_agent_framework.bridge",
    "BridgeClosed": "afactors_agent_framework.bridge",
    "ConversationCheckpoints": "afactors_agent_framework.checkpoints",
    "WorkflowAgent": "afactors_agent_framework.workflow",
    "WorkflowFailed": "afactors_agent_framework.workflow",
    "timer_tools": "afactors_agent_framework.timers",
}


class _AgentFrameworkAdapter:
    """Detects Agent Framework targets by the framework's own types: `Workflow`/`WorkflowBuilder` instances,
    and agents implementing its `SupportsAgentRun` protocol (id, name, description, run, create_session,
    get_session), never by a `run` attribute alone."""

    shape = "an Agent Framework agent (SupportsAgentRun), Workflow or WorkflowBuilder"

    def accepts(self, target: object) -> bool:
        if isinstance(target, type) or "agent_framework" not in sys.modules:
            return False
        from agent_framework import SupportsAgentRun, Workflow, WorkflowBuilder

        return isinstance(target, (Workflow, WorkflowBuilder, SupportsAgentRun))

    def adapt(self, target: object) -> Agent:
        from agent_framework import Workflow, WorkflowBuilder

        from afactors_agent_framework.agent import AgentFrameworkAgent
        from afactors_agent_framework.workflow import WorkflowAgent

        if isinstance(target, (Workflow, WorkflowBuilder)):
            return WorkflowAgent(target)
        return AgentFrameworkAgent(target)  # type: ignore[arg-type]


adapter = _AgentFrameworkAdapter()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'afactors_agent_framework' has no attribute {name!r}")


__all__ = [
    "ActorHistory",
    "AgentFrameworkAgent",
    "AsyncioThread",
    "BridgeClosed",
    "ConversationCheckpoints",
    "WorkflowAgent",
    "WorkflowFailed",
    "adapter",
    "timer_tools",
]
