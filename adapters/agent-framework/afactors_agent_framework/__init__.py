"""afactors target adapter: Microsoft Agent Framework agents and workflows.

Installed, it registers `adapter` in the `afactors.targets` entry-point group, so `--target mod:agent` and
`open_host(agent)` accept an Agent Framework agent (anything implementing `SupportsAgentRun`), a `Workflow` or a
`WorkflowBuilder` directly. Embed by hand with `AgentFrameworkAgent(agent)` / `WorkflowAgent(workflow)`.
"""

from __future__ import annotations

from agent_framework import SupportsAgentRun, Workflow, WorkflowBuilder

from afactors.model import Agent
from afactors_agent_framework.agent import ActorHistory, AgentFrameworkAgent
from afactors_agent_framework.bridge import AsyncioThread, BridgeClosed
from afactors_agent_framework.checkpoints import ConversationCheckpoints
from afactors_agent_framework.workflow import WorkflowAgent, WorkflowFailed


class _AgentFrameworkAdapter:
    """Detects Agent Framework targets by the framework's own types: `Workflow`/`WorkflowBuilder` instances,
    and agents implementing its `SupportsAgentRun` protocol (id, name, description, run, create_session,
    get_session), never by a `run` attribute alone."""

    shape = "an Agent Framework agent (SupportsAgentRun), Workflow or WorkflowBuilder"

    def accepts(self, target: object) -> bool:
        if isinstance(target, type):
            return False
        return isinstance(target, (Workflow, WorkflowBuilder, SupportsAgentRun))

    def adapt(self, target: object) -> Agent:
        if isinstance(target, (Workflow, WorkflowBuilder)):
            return WorkflowAgent(target)
        return AgentFrameworkAgent(target)  # type: ignore[arg-type]


adapter = _AgentFrameworkAdapter()

__all__ = [
    "ActorHistory",
    "AgentFrameworkAgent",
    "AsyncioThread",
    "BridgeClosed",
    "ConversationCheckpoints",
    "WorkflowAgent",
    "WorkflowFailed",
    "adapter",
]
