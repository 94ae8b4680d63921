"""examples/agent_framework_agent.py and examples/workflow.py run as documented, also as `--target`s of the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import cli

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run_example(name: str, state_dir: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(state_dir)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.slow
def test_the_agent_example_runs_its_tool_inside_the_turn(tmp_path: Path) -> None:
    assert run_example("agent_framework_agent.py", tmp_path / "state") == [
        "Give me two numbers to add (this is turn 1).",
        "The sum is 5.",
        'tool call: add({"a": 2, "b": 3})',
        "usage: 32 in, 13 out",
    ]


@pytest.mark.slow
def test_the_workflow_example_pauses_for_approval_and_resumes(tmp_path: Path) -> None:
    assert run_example("workflow.py", tmp_path / "state") == [
        "> cats learn to fly",
        "Publish the headline 'BREAKING: CATS LEARN TO FLY'? (yes/no)",
        "> maybe",
        "Publish the headline 'BREAKING: CATS LEARN TO FLY'? (yes/no)",
        "(I could not use that answer: answer yes or no)",
        "> yes",
        "Published: BREAKING: CATS LEARN TO FLY",
    ]


@pytest.mark.slow
def test_the_cli_serves_an_agent_framework_agent_given_as_target(tmp_path: Path) -> None:
    with cli("--target", "agent_framework_agent:agent", "--channel", "responses", "--state-dir", str(tmp_path / "s"),
             path=EXAMPLES) as (_, url):  # fmt: skip
        answer = httpx.post(f"{url}/v1/responses", json={"model": "m", "input": "add 40 and 2"}, timeout=20).json()
    assert answer["status"] == "completed"
    assert answer["output"][0]["content"][0]["text"] == "The sum is 42."
