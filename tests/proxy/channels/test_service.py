"""The public listener's settings: refused before anything starts when links would leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.channels.service import (
    PublicSettings,
    PublicSettingsError,
    check_public_settings,
    check_public_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://approve.example.com", "https://approve.example.com"),
        ("https://approve.example.com/", "https://approve.example.com"),
        ("https://approve.example.com:8443", "https://approve.example.com:8443"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://localhost:9000/", "http://localhost:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_public_urls_that_keep_links_private_are_accepted(url: str, expected: str) -> None:
    assert check_public_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://approve.example.com", "plain HTTP beyond this machine"),
        ("http://10.0.0.5:8443", "plain HTTP beyond this machine"),
        ("ftp://approve.example.com", "must be an http(s) URL"),
        ("approve.example.com", "must be an http(s) URL"),
        ("https://approve.example.com/interlock", "must be the listener's root"),
        ("https://approve.example.com/?x=1", "must be the listener's root"),
    ],
)
def test_public_urls_that_would_leak_or_break_links_are_refused(url: str, why: str) -> None:
    with pytest.raises(PublicSettingsError) as refused:
        check_public_url(url)
    assert why in str(refused.value)


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        (PublicSettings(url="https://a.example"), "--public-url needs --public-listen"),
        (PublicSettings(listen=("0.0.0.0", 8443)), "give --public-url"),
        (PublicSettings(listen=("127.0.0.1", 0), cert=Path("c.pem")), "both --public-cert"),
    ],
)
def test_incomplete_settings_say_what_is_missing(settings: PublicSettings, why: str) -> None:
    with pytest.raises(PublicSettingsError) as refused:
        check_public_settings(settings)
    assert why in str(refused.value)


def test_a_loopback_listener_needs_no_url_and_no_listener_needs_nothing() -> None:
    check_public_settings(PublicSettings(listen=("127.0.0.1", 0)))
    check_public_settings(PublicSettings())
