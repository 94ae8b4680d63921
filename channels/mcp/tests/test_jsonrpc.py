"""The JSON-RPC codec: every shape of message a client may POST, and what each bad one is answered with."""

from __future__ import annotations

import pytest

from afactors_mcp.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    Answer,
    Notification,
    Request,
    RpcError,
    error_body,
    notification_body,
    parse_message,
    result_body,
)


def test_a_request_with_a_string_or_integer_id() -> None:
    assert parse_message(b'{"jsonrpc":"2.0","id":7,"method":"ping"}') == Request(7, "ping", {})
    assert parse_message('{"jsonrpc":"2.0","id":"a","method":"x","params":{"k":1}}') == Request("a", "x", {"k": 1})


def test_a_notification_has_no_id_and_null_params_are_empty() -> None:
    message = parse_message(b'{"jsonrpc":"2.0","method":"notifications/initialized","params":null}')
    assert message == Notification("notifications/initialized", {})


def test_a_clients_result_or_error_is_an_answer() -> None:
    assert parse_message(b'{"jsonrpc":"2.0","id":3,"result":{}}') == Answer(3)
    assert parse_message(b'{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}') == Answer(None)


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (b"{not json", PARSE_ERROR, "not valid JSON"),
        (b"", PARSE_ERROR, "not valid JSON"),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', INVALID_REQUEST, "batches"),
        (b'"ping"', INVALID_REQUEST, "JSON object"),
        (b'{"id":1,"method":"ping"}', INVALID_REQUEST, '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', INVALID_REQUEST, '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":"2.0","id":1}', INVALID_REQUEST, "needs a"),
        (b'{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', INVALID_REQUEST, "needs a"),
        (b'{"jsonrpc":"2.0","result":{}}', INVALID_REQUEST, "needs a"),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', INVALID_REQUEST, "non-empty string"),
        (b'{"jsonrpc":"2.0","id":1,"method":""}', INVALID_REQUEST, "non-empty string"),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', INVALID_REQUEST, '"id" must be'),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', INVALID_REQUEST, '"id" must be'),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', INVALID_REQUEST, '"id" must be'),
        (b'{"jsonrpc":"2.0","id":{},"method":"ping"}', INVALID_REQUEST, '"id" must be'),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}', INVALID_PARAMS, '"params" must be an object'),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}', INVALID_PARAMS, '"params" must be an object'),
    ],
)
def test_bad_messages_are_refused_with_400_and_the_right_code(body: bytes, code: int, fragment: str) -> None:
    with pytest.raises(RpcError) as caught:
        parse_message(body)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert fragment in caught.value.message


def test_a_refusal_keeps_the_id_when_it_could_be_read() -> None:
    with pytest.raises(RpcError) as caught:
        parse_message(b'{"jsonrpc":"2.0","id":"r1","method":"m","params":[]}')
    message = 'Invalid params: "params" must be an object'
    assert caught.value.body() == {"jsonrpc": "2.0", "id": "r1", "error": {"code": INVALID_PARAMS, "message": message}}
    with pytest.raises(RpcError) as caught:
        parse_message(b"nope")
    assert caught.value.body()["id"] is None


def test_for_request_answers_the_same_error_to_an_id() -> None:
    error = RpcError(200, INVALID_PARAMS, "m", data={"x": 1}).for_request(9)
    assert error.body() == {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {"code": INVALID_PARAMS, "message": "m", "data": {"x": 1}},
    }


def test_rendering() -> None:
    assert result_body(1, {}) == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert error_body(None, -1, "m") == {"jsonrpc": "2.0", "id": None, "error": {"code": -1, "message": "m"}}
    assert notification_body("n", {"a": 1}) == {"jsonrpc": "2.0", "method": "n", "params": {"a": 1}}
