from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.redact import _FIELD_HINTS, REDACTED, TRUNCATED, Redactor

R = Redactor()

GITHUB = "ghp_" + "a1B2c3D4e5" * 3
SECRETS = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": GITHUB,
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "slack": "xoxb-123456789012-abcdefghijkl",
    "stripe_live": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "stripe_test": "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "openai": "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq1Yv0\nabcdefghij==\n-----END RSA PRIVATE KEY-----"


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Authorization", "Bearer abc.def", "Bearer [REDACTED]"),
        ("authorization", "Basic dXNlcjpwYXNz", "Basic [REDACTED]"),
        ("AUTHORIZATION", "token ghp_x", "token [REDACTED]"),
        ("Authorization", "Digest username=x, response=y", REDACTED),
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=abc", REDACTED),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg==", "Basic [REDACTED]"),
        ("Cookie", "session=abc; theme=dark", REDACTED),
        ("Set-Cookie", "id=1; HttpOnly", REDACTED),
        ("X-Api-Key", "k", REDACTED),
        ("api-key", "k", REDACTED),
        ("X-Auth-Token", "t", REDACTED),
        ("X-Amz-Security-Token", "t", REDACTED),
        ("x-goog-api-key", "k", REDACTED),
        ("PRIVATE-TOKEN", "glpat-x", REDACTED),
        ("X-Vault-Token", "hvs.x", REDACTED),
        ("X-CSRF-Token", "t", REDACTED),
        ("X-Client-Secret", "s", REDACTED),
        ("X-Password", "p", REDACTED),
        ("X-Apikey", "k", REDACTED),
        ("Ocp-Apim-Subscription-Key", "k", REDACTED),
        ("X-Custom-Auth", "Bearer abc", "Bearer [REDACTED]"),
    ],
)
def test_sensitive_headers(name: str, value: str, expected: str) -> None:
    assert R.headers([(name, value)]) == ((name, expected),)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "application/json"),
        ("User-Agent", "curl/8.5 token"),
        ("Accept", "*/*"),
        ("Host", "api.github.com"),
        ("X-GitHub-Api-Version", "2022-11-28"),
        ("Content-Length", "12"),
        ("X-Request-Id", "abc-123"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Idempotency-Key", "order-17"),
    ],
)
def test_plain_headers_untouched(name: str, value: str) -> None:
    assert R.headers([(name, value)]) == ((name, value),)


def test_headers_keep_order_and_duplicates() -> None:
    headers = [("Cookie", "a=1"), ("Accept", "x"), ("cookie", "b=2")]
    assert R.headers(headers) == (("Cookie", REDACTED), ("Accept", "x"), ("cookie", REDACTED))


def test_known_token_in_an_ordinary_header_is_redacted() -> None:
    assert R.headers([("X-Forwarded-Thing", f"value {GITHUB}")]) == (
        ("X-Forwarded-Thing", f"value {REDACTED}"),
    )


def test_extra_header_names_and_fields() -> None:
    custom = Redactor(extra_headers=frozenset({"X-Tenant"}), extra_fields=(r"^ssn$",))
    assert custom.headers([("x-tenant", "acme")]) == (("x-tenant", REDACTED),)
    assert custom.query("ssn=123&n=1") == f"ssn={REDACTED}&n=1"
    assert R.query("ssn=123") == "ssn=123"


def test_bad_extra_field_pattern_is_named() -> None:
    with pytest.raises(ValueError, match=r"\(unclosed"):
        Redactor(extra_fields=("(unclosed",))


# -- query strings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["api_key", "apikey", "access_token", "token", "key", "sig", "signature", "password",
     "secret", "client_secret", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
     "refresh_token", "id_token", "auth"],
)  # fmt: skip
def test_sensitive_query_parameters(name: str) -> None:
    assert R.query(f"a=1&{name}=s3cr%2Ft&b=2") == f"a=1&{name}={REDACTED}&b=2"


def test_query_keeps_everything_else_byte_for_byte() -> None:
    raw = "q=hello%20world&page=2&flag&&sort=-created&max_tokens=5&x=%E2%9C%93+y"
    assert R.query(raw) == raw


def test_query_empty_values_and_encoded_names() -> None:
    assert R.query("") == ""
    assert R.query("token=&x=1") == "token=&x=1"
    assert R.query("api%5Fkey=abc") == f"api%5Fkey={REDACTED}"
    assert R.query("?key=abc") == f"?key={REDACTED}"


def test_query_known_token_under_an_ordinary_name() -> None:
    assert R.query(f"q={GITHUB}") == f"q={REDACTED}"


# -- free text --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_secret_kind_in_text(kind: str) -> None:
    secret = SECRETS[kind]
    out = R.redact_text(f"before {secret} after")
    assert secret not in out
    assert out.startswith("before ") and out.endswith(" after")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123def", "Authorization: Bearer [REDACTED]"),
        ("curl -H 'Bearer abc.def-ghi'", "curl -H 'Bearer [REDACTED]'"),
        ("password=hunter2&user=bob", "password=[REDACTED]&user=bob"),
        ("db password: hunter2", "db password: [REDACTED]"),
        ('{"token": "abc", "max_tokens": 5}', '{"token": "[REDACTED]", "max_tokens": 5}'),
        ("{'secret': 'x'}", "{'secret': '[REDACTED]'}"),
        ("api_key = abc123", "api_key = [REDACTED]"),
        ("https://bob:hunter2@db.example.com/x", "https://bob:[REDACTED]@db.example.com/x"),
        ("see https://x.test/a?token=abc&b=1", "see https://x.test/a?token=[REDACTED]&b=1"),
        ("foo: password=x", "foo: password=[REDACTED]"),
        ('password: "abc', 'password: "[REDACTED]'),
        ("uses Basic authentication", "uses Basic authentication"),
        ("author: alice, tokens: 40", "author: alice, tokens: 40"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert R.redact_text(text) == expected


def test_private_key_block() -> None:
    out = R.redact_text(f"key:\n{PEM}\ndone")
    assert "MIIE" not in out
    assert out == (
        "key:\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\ndone"
    )
    cut = R.redact_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA")
    assert cut == f"-----BEGIN OPENSSH PRIVATE KEY-----{REDACTED}"


def test_redact_shapes_leaves_pairs() -> None:
    path = f"/v1/secrets/db-secret:access/{GITHUB}"
    assert R.redact_shapes(path) == f"/v1/secrets/db-secret:access/{REDACTED}"


def test_redaction_is_idempotent() -> None:
    text = " ".join([*SECRETS.values(), PEM, "password=x", "Authorization: Bearer abc123"])
    once = R.redact_text(text)
    assert R.redact_text(once) == once


def test_adversarial_text_stays_fast() -> None:
    for text in ("a" * 200_000, "a.b" * 60_000, 'password:"' * 20_000, "x: " * 60_000):
        start = time.perf_counter()
        R.redact_text(text)
        assert time.perf_counter() - start < 1.0


# -- bodies -----------------------------------------------------------------------------------


def test_json_body_nested_and_arrays() -> None:
    body = {
        "user": "bob",
        "password": "hunter2",
        "max_tokens": 100,
        "nested": {"api_key": "k", "items": [{"secret": {"deep": 1}}, {"note": GITHUB}]},
        "accessToken": "t",
        "token": None,
    }
    preview = R.body_preview(json.dumps(body).encode(), "application/json; charset=utf-8")
    assert preview is not None
    assert json.loads(preview) == {
        "user": "bob",
        "password": REDACTED,
        "max_tokens": 100,
        "nested": {"api_key": REDACTED, "items": [{"secret": REDACTED}, {"note": REDACTED}]},
        "accessToken": REDACTED,
        "token": None,
    }
    assert " " not in preview  # re-serialised compactly


def test_json_array_body_and_vendor_type() -> None:
    preview = R.body_preview(b'[{"client_secret": "s"}, 1]', "application/vnd.api+json")
    assert preview == '[{"client_secret":"[REDACTED]"},1]'


def test_json_without_content_type_is_sniffed() -> None:
    assert R.body_preview(b'{"password": "x"}', None) == '{"password":"[REDACTED]"}'


def test_broken_json_falls_back_to_text_redaction() -> None:
    preview = R.body_preview(b'{"password": "hunter2", ', "application/json")
    assert preview == '{"password": "[REDACTED]", '


def test_json_truncated_after_redaction() -> None:
    body = json.dumps({"password": "p", "data": "x" * 5000}).encode()
    preview = R.body_preview(body, "application/json", limit=100)
    assert preview is not None and preview.endswith(TRUNCATED)
    assert len(preview) == 100 + len(TRUNCATED)
    assert preview.startswith('{"password":"[REDACTED]"')


def test_large_json_is_previewed_as_text() -> None:
    small = Redactor(max_parse_bytes=64)
    body = json.dumps({"token": "abc", "pad": "y" * 500}).encode()
    preview = small.body_preview(body, "application/json", limit=40)
    assert preview == '{"token": "[REDACTED]", "pad": "yyyyyyyy' + TRUNCATED


def test_form_body() -> None:
    body = b"user=bob&password=hunter2&client_secret=abc&grant_type=client_credentials"
    preview = R.body_preview(body, "application/x-www-form-urlencoded")
    assert preview == (
        "user=bob&password=[REDACTED]&client_secret=[REDACTED]&grant_type=client_credentials"
    )


def test_multipart_body() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\nhunter2\r\n'
        b'--b\r\nContent-Disposition: form-data; name="user"\r\n\r\nbob\r\n--b--\r\n'
    )
    preview = R.body_preview(body, "multipart/form-data; boundary=b")
    assert preview is not None
    assert "hunter2" not in preview and "bob" in preview


def test_plain_text_body() -> None:
    body = f"deploy with {SECRETS['aws']} and password=x\n{PEM}".encode()
    preview = R.body_preview(body, "text/plain")
    assert preview is not None
    assert SECRETS["aws"] not in preview and "password=[REDACTED]" in preview
    assert "MIIE" not in preview


def test_binary_and_empty_bodies_have_no_preview() -> None:
    assert R.body_preview(None, "application/json") is None
    assert R.body_preview(b"", "text/plain") is None
    assert R.body_preview(b"\x89PNG\r\n\x1a\n\x00\x00", None) is None
    assert R.body_preview(b"plain words", "image/png") is None
    assert R.body_preview(b"\xff\xfe\xfa", "text/plain") is None


def test_declared_charset_is_used() -> None:
    body = "name=ü password=ü".encode("latin-1")
    assert R.body_preview(body, "text/plain; charset=latin-1") == "name=ü password=[REDACTED]"


@given(st.binary(max_size=4096), st.sampled_from([
    None, "application/json", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "text/html; charset=utf-16", "text/plain; charset=bogus",
    "application/octet-stream", ";;;", "application/json; charset=utf-32",
]), st.integers(min_value=-5, max_value=3000))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_body_preview_never_raises(body: bytes, content_type: str | None, limit: int) -> None:
    preview = R.body_preview(body, content_type, limit)
    assert preview is None or len(preview) <= max(limit, 0) + len(TRUNCATED)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzAPKST_-.", min_size=1, max_size=30))
@settings(max_examples=500, deadline=None)
def test_every_sensitive_name_contains_a_hint(name: str) -> None:
    """The cheap pre-check in front of pair redaction must never skip a sensitive name."""
    if R.is_sensitive_field(name):
        assert any(hint in name.lower() for hint in _FIELD_HINTS)


@given(st.text(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_redact_text_total_and_idempotent(text: str) -> None:
    once = R.redact_text(text)
    assert R.redact_text(once) == once


_KEYS = st.sampled_from(["password", "api_key", "token", "secret", "Authorization", "x"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(_JSON, st.sampled_from(["password", "api_key", "client_secret", "refresh_token"]))
@settings(max_examples=200, deadline=None)
def test_planted_secret_never_survives(document: object, key: str) -> None:
    secret = "Zq9-planted-Secret-Value"
    body = json.dumps({"wrapper": [document, {key: secret}]}).encode()
    preview = R.body_preview(body, "application/json", limit=100_000)
    assert preview is not None and secret not in preview
