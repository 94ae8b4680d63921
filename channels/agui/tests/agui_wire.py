"""Checks AG-UI wire JSON with whatever `ag-ui-protocol` is installed beside it (no afactors imports).

`test_protocol_versions` runs it in a throwaway environment with `ag-ui-protocol==1.0.0`, since the workspace
holds the 0.1.x models Agent Framework's client pins:

    python agui_wire.py inputs            RunAgentInput bodies built by these (1.0) models, as JSON on stdout
    python agui_wire.py events FILE       every event in FILE (a JSON array of arrays) parsed by these models
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any

import ag_ui.core as agui
from pydantic import TypeAdapter


def inputs() -> list[dict[str, Any]]:
    """What a client of these models sends: the version declared, media parts, a front-end tool round trip."""
    declared = {"protocol_version": agui.PROTOCOL_VERSION}
    media = agui.UserMessage(
        id="u1",
        content=[
            agui.TextPart(text="what is the weather?"),
            agui.ImagePart(source=agui.UrlSource(value="https://example.org/i.png", mime_type="image/png")),
            agui.DocumentPart(source=agui.FileSource(value="file-1", provider="openai", mime_type="application/pdf")),
        ],
    )
    call = agui.ToolCall(id="confirm_1", function=agui.FunctionCall(name="confirm", arguments='{"question": "Go?"}'))
    tool = agui.Tool(name="confirm", description="Ask the user", parameters={"type": "object"})
    bodies = [
        agui.RunAgentInput(thread_id="v1", run_id="r1", messages=[media], state={"city": "Paris"}, **declared),
        agui.RunAgentInput(
            thread_id="v1",
            run_id="r2",
            messages=[
                agui.UserMessage(id="u2", content="please confirm"),
                agui.AssistantMessage(id="a2", tool_calls=[call]),
                agui.ToolMessage(id="t2", tool_call_id="confirm_1", content="yes"),
            ],
            tools=[tool],
            **declared,
        ),
    ]
    return [body.model_dump(mode="json", by_alias=True, exclude_none=True) for body in bodies]


def check_events(streams: list[list[dict[str, Any]]]) -> int:
    """Parse every event; every key must be a field its model declares. Returns how many were checked."""
    adapter: TypeAdapter[Any] = TypeAdapter(agui.Event)
    checked = 0
    for events in streams:
        for event in events:
            model = adapter.validate_python(event)
            declared = {field.alias or name for name, field in type(model).model_fields.items()}
            unknown = set(event) - declared
            if unknown:
                raise SystemExit(f"{event['type']} has fields these models do not declare: {sorted(unknown)}")
            checked += 1
    return checked


if __name__ == "__main__":
    if sys.argv[1] == "inputs":
        print(json.dumps(inputs()))
    else:
        with open(sys.argv[2]) as file:
            count = check_events(json.load(file))
        print(f"{count} events valid under ag-ui-protocol {version('ag-ui-protocol')}")
