"""Inbound token checks as pure functions: header, claims, serviceurl, endorsements."""

from __future__ import annotations

from typing import Any

import pytest

from afactors_activity.claims import (
    AuthFailure,
    bearer_token,
    check_claims,
    check_endorsement,
    check_header,
    check_service_url,
)

APP = "app-1"
ISS = ("https://api.botframework.com",)
NOW = 1_800_000_000.0


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISS[0], "aud": APP, "exp": NOW + 600, "nbf": NOW - 10}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def check(token_claims: dict[str, Any]) -> None:
    check_claims(token_claims, app_id=APP, issuers=ISS, now=NOW, skew=300)


def test_bearer_token_is_read_from_the_header() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer   abc") == "abc"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer ", "Bearer a b", "abc"])
def test_anything_but_a_bearer_token_fails(header: str | None) -> None:
    with pytest.raises(AuthFailure):
        bearer_token(header)


def test_header_must_be_rs256_with_a_key_id() -> None:
    assert check_header({"alg": "RS256", "kid": "k1"}) == "k1"
    for header in (
        {"alg": "none", "kid": "k"},
        {"alg": "HS256", "kid": "k"},
        {"alg": "RS256"},
        {"alg": "RS256", "kid": ""},
        {},
    ):
        with pytest.raises(AuthFailure):
            check_header(header)


def test_good_claims_pass() -> None:
    check(claims())
    check(claims(aud=["other", APP]))
    check(claims(nbf=None))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"iss": None}, "issuer"),
        ({"aud": "someone-else"}, "audience"),
        ({"aud": None}, "audience"),
        ({"aud": ["x", "y"]}, "audience"),
        ({"exp": None}, "exp"),
        ({"exp": "tomorrow"}, "exp"),
        ({"exp": True}, "exp"),
        ({"exp": NOW - 301}, "expired"),
        ({"nbf": NOW + 301}, "not valid yet"),
        ({"nbf": "soon"}, "nbf"),
    ],
)
def test_bad_claims_fail_with_a_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthFailure, match=reason):
        check(claims(**changes))


def test_clock_skew_is_allowed_both_ways() -> None:
    check(claims(exp=NOW - 299))
    check(claims(nbf=NOW + 299))


def test_serviceurl_claim_must_name_the_activitys_service_url() -> None:
    check_service_url({"serviceurl": "https://smba.trafficmanager.net/amer/"}, "https://smba.trafficmanager.net/amer")
    with pytest.raises(AuthFailure, match="serviceUrl"):
        check_service_url({"serviceurl": "https://smba.trafficmanager.net/amer/"}, "https://forged.example/")
    for missing in ({}, {"serviceurl": ""}, {"serviceurl": 3}):
        with pytest.raises(AuthFailure, match="no serviceurl"):
            check_service_url(missing, "https://smba.trafficmanager.net/amer/")


def test_endorsed_keys_sign_only_for_their_channels() -> None:
    check_endorsement({"kid": "k"}, "anything")
    check_endorsement({"endorsements": ["msteams", "webchat"]}, "msteams")
    with pytest.raises(AuthFailure, match="endorsed"):
        check_endorsement({"endorsements": ["msteams"]}, "slack")
    with pytest.raises(AuthFailure, match="endorsed"):
        check_endorsement({"endorsements": "msteams"}, "msteams")
