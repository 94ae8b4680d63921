"""Whatever JSON a client sends, the codecs answer with a message or a protocol error, never another exception."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from afactors_mcp.jsonrpc import Message, RpcError, parse_message, parse_value
from afactors_mcp.modern import check_envelope
from afactors_mcp.protocol import ToolSpec, parse_call, parse_initialize

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error", "name", "arguments", "prompt",
                        "session_id", "_meta", "progressToken", "protocolVersion", "clientInfo"])  # fmt: skip
fast = settings(max_examples=60, deadline=None)  # pure functions; no deadline on a shared, noisy machine
objects = st.dictionaries(keys | st.text(max_size=4), json_values | st.just("2.0") | st.just("ask_agent"), max_size=6)


def answered(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except RpcError as error:
        assert error.status in (200, 400) and error.body()["error"]["message"]


@fast
@given(json_values | objects)
def test_any_json_value_is_a_message_or_an_rpc_error(value: Any) -> None:
    try:
        assert isinstance(parse_value(value), Message)
    except RpcError as error:
        assert error.status == 400


@fast
@given(st.binary(max_size=64))
def test_any_bytes_are_a_message_or_an_rpc_error(body: bytes) -> None:
    answered(parse_message, body)


@fast
@given(objects, objects)
def test_any_params_are_a_call_or_an_rpc_error(params: dict[str, Any], arguments: dict[str, Any]) -> None:
    answered(parse_call, params, ToolSpec())
    answered(parse_call, {"name": "ask_agent", "arguments": arguments, "_meta": params}, ToolSpec())
    answered(parse_initialize, params)
    answered(check_envelope, parse_value({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}), {})


def test_round_trip_of_an_ordinary_request() -> None:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert parse_message(body) == parse_value(orjson.loads(body))
