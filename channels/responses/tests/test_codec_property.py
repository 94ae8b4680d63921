"""`parse_create` on any JSON: a request or an `ApiError` (a 4xx envelope), never another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afactors_responses.codec import ApiError
from afactors_responses.codec.request import CreateRequest, parse_create

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
KEYS = ["model", "input", "instructions", "previous_response_id", "conversation", "stream", "background", "store",
        "metadata", "tools", "tool_choice", "text", "reasoning", "temperature", "top_p", "max_output_tokens",
        "parallel_tool_calls", "truncation", "user", "include"]  # fmt: skip
item = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output", "input_text", "x"])},
    optional={
        "role": json_values,
        "content": json_values,
        "call_id": json_values,
        "name": json_values,
        "arguments": json_values,
        "output": json_values,
        "text": json_values,
    },
)
body = st.dictionaries(
    st.sampled_from(KEYS),
    st.one_of(json_values, st.lists(st.one_of(item, json_values), max_size=3), st.text(max_size=10)),
    max_size=8,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(body, json_values))
def test_parse_create_answers_a_request_or_a_4xx_refusal(value: Any) -> None:
    try:
        parsed = parse_create(value)
    except ApiError as exc:
        assert 400 <= exc.status < 500
    else:
        assert isinstance(parsed, CreateRequest)
