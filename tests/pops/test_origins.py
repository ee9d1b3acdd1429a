from __future__ import annotations

import pytest

from bridge.pops.origins import default_origins, normalise_origin, origin_allowed


def test_default_origins_for_a_loopback_bind_include_the_aliases() -> None:
    assert set(default_origins("127.0.0.1", 8080)) == {
        "http://localhost:8080",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
    }


def test_default_origins_for_a_named_host() -> None:
    assert default_origins("crm.example", 8080) == ["http://crm.example:8080"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("http://localhost:8080", True),
        ("HTTP://LOCALHOST:8080", True),
        ("http://127.0.0.1:8080/", True),
        ("http://[::1]:8080", True),
        ("http://localhost:8081", False),
        ("https://localhost:8080", False),
        ("null", False),
        ("", False),
        ("http://localhost:8080.evil.example", False),
        ("http://localhost:8080\r\nX: y", False),
        ("http://user@localhost:8080", False),
        ("http://localhost:99999", False),
        ("javascript:alert(1)", False),
    ],
)
def test_origin_check(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, default_origins("127.0.0.1", 8080)) is allowed


def test_default_ports_fold() -> None:
    assert normalise_origin("https://a.example") == normalise_origin("https://a.example:443")
    assert origin_allowed("http://a.example", ["http://a.example:80"])
