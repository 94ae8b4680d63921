"""Targets: what a host runs for each turn, and adapters that turn functions and endpoints into agents."""

from afactors._tracing import outgoing_headers
from afactors.targets.adapt import FunctionAgent, TargetError, as_agent, load_target
from afactors.targets.demo import DemoAgent
from afactors.targets.openai_chat import OpenAIChatAgent, UpstreamError

__all__ = [
    "DemoAgent", "FunctionAgent", "OpenAIChatAgent", "TargetError", "UpstreamError", "as_agent", "load_target",
    "outgoing_headers",
]  # fmt: skip
