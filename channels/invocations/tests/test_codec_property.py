"""The Invocations request decoders on any input: a request or an `InvocationError` (a 4xx envelope)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afactors_invocations import InvocationRequest
from afactors_invocations.codec import InvocationError, decode_json, parse_default

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
body = st.dictionaries(st.sampled_from(["message", "session_id", "stream", "background", "other"]), json_values)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(body, json_values))
def test_parse_default_answers_a_request_or_a_4xx_refusal(value: Any) -> None:
    try:
        parsed = parse_default(value)
    except InvocationError as exc:
        assert 400 <= exc.status < 500
    else:
        assert isinstance(parsed, InvocationRequest)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=60), json_values.map(lambda v: json.dumps(v).encode())))
def test_decode_json_answers_json_or_a_400(raw: bytes) -> None:
    try:
        decode_json(raw)
    except InvocationError as exc:
        assert exc.status == 400
