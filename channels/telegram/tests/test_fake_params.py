"""Pure tests of request decoding (JSON, urlencoded, multipart, query string)."""

import pytest

from afactors_telegram.testing.errors import ApiError
from afactors_telegram.testing.params import Params, decode_body


def test_json_form_and_query_values_read_the_same() -> None:
    as_json = decode_body("application/json", b'{"chat_id": 5, "reply_parameters": {"message_id": 2}, "x": true}')
    as_form = decode_body("application/x-www-form-urlencoded",
                          b"chat_id=5&reply_parameters=%7B%22message_id%22%3A2%7D&x=true")  # fmt: skip
    as_query = decode_body("", b"", "chat_id=5&reply_parameters=%7B%22message_id%22%3A2%7D&x=true")
    for params in (as_json, as_form, as_query):
        assert params.chat_id() == 5
        assert params.json("reply_parameters") == {"message_id": 2}
        assert params.flag("x") is True


def test_multipart_keeps_fields_and_files() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="chat_id"\r\n\r\n42\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="photo"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x00\xff\r\n"
        b"--XyZ--\r\n"
    )
    params = decode_body("multipart/form-data; boundary=XyZ", body)
    assert params.integer("chat_id") == 42
    assert params.files["photo"].data == b"\x89PNG\r\n\x00\xff"
    assert params.files["photo"].filename == "a.png"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{not json"),
        ("application/json", b"[1, 2]"),
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=x", b"garbage"),
        ("multipart/form-data; boundary=x", b"--x\r\nno-headers\r\n--x--"),
        ("text/plain", b"chat_id=1"),
    ],
)
def test_undecodable_bodies_are_400(content_type: str, body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        decode_body(content_type, body)
    assert caught.value.error_code == 400


def test_typed_accessors_reject_wrong_types() -> None:
    params = Params({"n": "abc", "o": "{bad", "chat_id": ""})
    with pytest.raises(ApiError, match="invalid n specified"):
        params.integer("n")
    with pytest.raises(ApiError, match="can't parse o JSON object"):
        params.json("o")
    with pytest.raises(ApiError, match="chat_id is empty"):
        params.chat_id()
    assert Params({"chat_id": "@Channel"}).chat_id() == "@Channel"
