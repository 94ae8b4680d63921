"""The JSON-RPC envelope (A-02), version negotiation (A-16) and error rendering (A-03): pure functions."""

from __future__ import annotations

import orjson
import pytest

from afactors_a2a.errors import RpcError, task_not_found
from afactors_a2a.jsonrpc import Call, error_response, parse_call, result_response
from afactors_a2a.versions import OPERATIONS, V03, V1, negotiate, operation


def code_of(body: bytes) -> tuple[int, object]:
    with pytest.raises(RpcError) as caught:
        parse_call(body)
    return caught.value.code, caught.value.request_id


def test_a02_a_well_formed_request_parses() -> None:
    body = orjson.dumps({"jsonrpc": "2.0", "id": "x", "method": "GetTask", "params": {"id": "t"}})
    assert parse_call(body) == Call("x", "GetTask", {"id": "t"})


def test_a02_params_may_be_absent_or_null_and_id_may_be_null_or_missing() -> None:
    assert parse_call(b'{"jsonrpc":"2.0","id":7,"method":"m"}') == Call(7, "m", {})
    assert parse_call(b'{"jsonrpc":"2.0","id":null,"method":"m","params":null}') == Call(None, "m", {})
    assert parse_call(b'{"jsonrpc":"2.0","method":"m"}') == Call(None, "m", {})


@pytest.mark.parametrize(
    ("body", "code", "request_id"),
    [
        (b"{not json", -32700, None),
        (b"", -32700, None),
        (b"[]", -32600, None),
        (b'[{"jsonrpc":"2.0","id":1,"method":"m"}]', -32600, None),
        (b'"a string"', -32600, None),
        (b'{"jsonrpc":"1.0","id":1,"method":"m"}', -32600, 1),
        (b'{"id":1,"method":"m"}', -32600, 1),
        (b'{"jsonrpc":2.0,"id":1,"method":"m"}', -32600, 1),
        (b'{"jsonrpc":"2.0","id":true,"method":"m"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"m"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":{},"method":"m"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":1}', -32600, 1),
        (b'{"jsonrpc":"2.0","id":1,"method":""}', -32600, 1),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', -32600, 1),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}', -32602, 1),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}', -32602, 1),
    ],
)
def test_a02_malformed_requests_get_the_json_rpc_code(body: bytes, code: int, request_id: object) -> None:
    assert code_of(body) == (code, request_id)


@pytest.mark.parametrize(
    ("header", "version"),
    [(None, V03), ("", V03), ("  ", V03), ("1.0", V1), ("1.0.3", V1), ("0.3", V03), ("0.3.0", V03)],
)
def test_a16_versions_by_major_minor_and_an_empty_header_means_0_3(header: str | None, version: str) -> None:
    assert negotiate(header) == version


@pytest.mark.parametrize("header", ["9.9", "1.1", "2.0", "0.2", "one", "1"])
def test_a16_unsupported_versions_are_32009(header: str) -> None:
    with pytest.raises(RpcError) as caught:
        negotiate(header)
    assert caught.value.code == -32009 and header in caught.value.message


def test_every_method_of_each_version_names_an_operation() -> None:
    assert set(OPERATIONS[V1]) == {
        "SendMessage",
        "SendStreamingMessage",
        "GetTask",
        "ListTasks",
        "CancelTask",
        "SubscribeToTask",
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
        "GetExtendedAgentCard",
    }
    assert set(OPERATIONS[V03].values()) == set(OPERATIONS[V1].values()) - {"list"}
    assert operation("message/send", V03) == operation("SendMessage", V1) == "send"


@pytest.mark.parametrize(("method", "version"), [("GetTask", V03), ("tasks/get", V1), ("message/stream", V1)])
def test_a16_a_method_of_the_other_version_is_32009(method: str, version: str) -> None:
    with pytest.raises(RpcError) as caught:
        operation(method, version)
    assert caught.value.code == -32009


@pytest.mark.parametrize("version", [V1, V03])
def test_a02_an_unknown_method_is_32601(version: str) -> None:
    with pytest.raises(RpcError) as caught:
        operation("tasks/list-all", version)
    assert caught.value.code == -32601


def test_a03_v1_errors_carry_an_error_info_and_v03_errors_plain_data() -> None:
    error = task_not_found("t1")
    v1 = error_response(5, error, V1)
    assert v1["id"] == 5 and v1["jsonrpc"] == "2.0" and v1["error"]["code"] == -32001
    assert v1["error"]["data"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "TASK_NOT_FOUND",
            "domain": "a2a-protocol.org",
            "metadata": {"taskId": "t1"},
        }
    ]
    assert error_response(5, error, V03)["error"] == {
        "code": -32001,
        "message": error.message,
        "data": {"taskId": "t1"},
    }
    assert "data" not in error_response(None, RpcError(-32601, "x"), V03)["error"]
    assert result_response("a", {"x": 1}) == {"jsonrpc": "2.0", "id": "a", "result": {"x": 1}}
