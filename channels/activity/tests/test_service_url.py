"""The serviceUrl allowlist: where replies and the bot's token may go."""

from __future__ import annotations

import pytest

from afactors_activity.config import DEFAULT_SERVICE_HOSTS, ActivityConfig
from afactors_activity.service_url import check_allowlist_entry, is_allowed, same_service_url


@pytest.mark.parametrize(
    "url",
    [
        "https://smba.trafficmanager.net/amer/",
        "https://smba.trafficmanager.net/teams",
        "https://webchat.botframework.com/",
        "https://directline.botframework.com",
        "https://europe.directline.botframework.com/",
        "HTTPS://WebChat.BotFramework.com/",
        "https://smba.infra.gcc.teams.microsoft.com/",
    ],
)
def test_bot_service_hosts_are_allowed_by_default(url: str) -> None:
    assert is_allowed(url, DEFAULT_SERVICE_HOSTS)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/",
        "https://botframework.com.evil.example/",  # a suffix only counts on a dot boundary
        "https://evilbotframework.com/",
        "http://webchat.botframework.com/",  # plain http would leak the token
        "https://webchat.botframework.com:8443/",  # only the default port for host entries
        "https://user@webchat.botframework.com/",
        "https://webchat.botframework.com/?x=1",
        "https://webchat.botframework.com/#frag",
        "ftp://webchat.botframework.com/",
        "https://webchat.botframework.com:99999/",
        "https:\\\\webchat.botframework.com\\",
        "not a url",
        "",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    assert not is_allowed(url, DEFAULT_SERVICE_HOSTS)


def test_an_origin_entry_allows_exactly_that_scheme_host_and_port() -> None:
    allow = ("http://127.0.0.1:8123",)
    assert is_allowed("http://127.0.0.1:8123/", allow)
    assert is_allowed("http://127.0.0.1:8123/amer/", allow)
    assert not is_allowed("http://127.0.0.1:8124/", allow)
    assert not is_allowed("https://127.0.0.1:8123/", allow)
    assert not is_allowed("http://localhost:8123/", allow)
    assert is_allowed("https://example.org/", ("https://example.org",))
    assert is_allowed("https://example.org:443/", ("https://example.org",))


@pytest.mark.parametrize(
    "entry", ["", ".botframework.com", "https://host/path", "host/path", "host:1", "ftp://x", "a b"]
)
def test_bad_allowlist_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="allowlist entry"):
        check_allowlist_entry(entry)


def test_an_empty_allowlist_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        ActivityConfig(auth="disabled", service_url_allowlist=())


def test_service_urls_compare_without_trailing_slash_and_host_case() -> None:
    assert same_service_url("https://smba.trafficmanager.net/amer/", "https://SMBA.trafficmanager.net/amer")
    assert not same_service_url("https://smba.trafficmanager.net/amer/", "https://smba.trafficmanager.net/emea/")
    assert not same_service_url("https://a.example/", "http://a.example/")
