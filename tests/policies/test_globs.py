"""Host, path and value globs: fixed cases, reference matchers, and the index-key guarantee."""

from __future__ import annotations

import fnmatch
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.globs import (
    compile_host_glob,
    compile_path_glob,
    compile_value_glob,
    host_index_key,
)

# --- hosts ------------------------------------------------------------------------------------

HOST_CASES = [
    ("*.stripe.com", "api.stripe.com", True),
    ("*.stripe.com", "a.b.stripe.com", True),
    ("*.stripe.com", "stripe.com", False),
    ("*.stripe.com", "evilstripe.com", False),
    ("*.stripe.com", "api.stripe.com.evil.net", False),
    ("*.stripe.com", ".stripe.com", False),
    ("ec2.*.amazonaws.com", "ec2.us-east-1.amazonaws.com", True),
    ("ec2.*.amazonaws.com", "ec2.a.b.amazonaws.com", False),
    ("ec2.*.amazonaws.com", "ec2..amazonaws.com", False),
    ("ec2.*.amazonaws.com", "xec2.x.amazonaws.com", False),
    ("api-*.example.com", "api-v2.example.com", True),
    ("api-*.example.com", "api-.example.com", True),
    ("api-*.example.com", "api-a.b.example.com", False),
    ("api-*.example.com", "apix.example.com", False),
    ("*", "anything.example.org", True),
    ("*", "127.0.0.1", True),
    ("api.github.com", "api.github.com", True),
    ("api.github.com", "apixgithub.com", False),
    ("api.github.com", "api.github.com.evil.net", False),
    ("api.github.com", "x.api.github.com", False),
    ("api.github.com", "api.github.com\n", False),
    ("*.*.example.com", "a.b.example.com", True),
    ("*.*.example.com", "a.example.com", False),
    ("foo.*", "foo.io", True),
    ("foo.*", "foo.co.uk", False),
]


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    HOST_CASES,
    ids=[f"{p}~{h!r}" for p, h, _ in HOST_CASES],
)
def test_host_glob(pattern: str, host: str, matches: bool) -> None:
    compiled = compile_host_glob(pattern)
    assert bool(compiled.fullmatch(host)) is matches
    assert bool(compiled.search(host)) is matches


INDEX_KEYS = [
    ("ec2.*.amazonaws.com", "amazonaws.com"),
    ("*.stripe.com", "stripe.com"),
    ("api.github.com", "api.github.com"),
    ("api-*.example.com", "example.com"),
    ("*", None),
    ("foo.*", None),
    ("a.b*", None),
    ("*.*.example.com", "example.com"),
]


@pytest.mark.parametrize(("pattern", "key"), INDEX_KEYS, ids=[c[0] for c in INDEX_KEYS])
def test_host_index_key(pattern: str, key: str | None) -> None:
    assert host_index_key(pattern) == key


_NAME_CHARS = "abc0-"
_LITERAL_LABEL = st.text(alphabet=_NAME_CHARS, min_size=1, max_size=4)
_PATTERN_LABEL = st.one_of(
    _LITERAL_LABEL,
    st.just("*"),
    st.tuples(st.text(_NAME_CHARS, max_size=2), st.text(_NAME_CHARS, max_size=2)).map("*".join),
)


@st.composite
def _host_glob_and_match(draw: st.DrawFn) -> tuple[str, str]:
    """Draw a host glob and a host built to match it, filling each star by hand."""
    leading = draw(st.booleans())
    labels = draw(st.lists(_PATTERN_LABEL, min_size=1, max_size=4))
    host_labels = []
    if leading:
        host_labels += draw(st.lists(_LITERAL_LABEL, min_size=1, max_size=3))
    for label in labels:
        pieces = label.split("*")
        fillers = [draw(st.text(_NAME_CHARS, max_size=3)) for _ in pieces[1:]]
        filled = pieces[0] + "".join(f + p for f, p in zip(fillers, pieces[1:], strict=True))
        if label == "*" and not filled:
            filled = draw(_LITERAL_LABEL)
        host_labels.append(filled)
    pattern = ("*." if leading else "") + ".".join(labels)
    return pattern, ".".join(host_labels)


@settings(max_examples=200)
@given(_host_glob_and_match())
def test_host_index_key_is_a_label_suffix_of_every_match(case: tuple[str, str]) -> None:
    pattern, host = case
    assert compile_host_glob(pattern).fullmatch(host)
    key = host_index_key(pattern)
    assert key is None or host == key or host.endswith("." + key)


@settings(max_examples=200)
@given(
    st.lists(_PATTERN_LABEL, min_size=1, max_size=3).map(".".join),
    st.lists(st.text(_NAME_CHARS + "*", min_size=1, max_size=4), min_size=1, max_size=4).map(
        ".".join
    ),
)
def test_host_index_key_holds_for_arbitrary_hosts(pattern: str, host: str) -> None:
    if compile_host_glob(pattern).fullmatch(host):
        key = host_index_key(pattern)
        assert key is None or host == key or host.endswith("." + key)


# --- paths ------------------------------------------------------------------------------------

PATH_CASES = [
    ("/v1/**", "/v1", True),
    ("/v1/**", "/v1/", True),
    ("/v1/**", "/v1/a", True),
    ("/v1/**", "/v1/a/b", True),
    ("/v1/**", "/v1x", False),
    ("/v1/**", "/v2/a", False),
    ("/repos/**/merge", "/repos/merge", True),
    ("/repos/**/merge", "/repos/a/b/merge", True),
    ("/repos/**/merge", "/repos/a/b/merge/", True),
    ("/repos/**/merge", "/repos/a/b/merge/x", False),
    ("/repos/**/merge", "/repos/a/bmerge", False),
    ("/repos/*/*/pulls/*/merge", "/repos/o/r/pulls/1/merge", True),
    ("/repos/*/*/pulls/*/merge", "/repos/o/pulls/1/merge", False),
    ("/repos/*/*/pulls/*/merge", "/repos/o/r/x/pulls/1/merge", False),
    ("/repos/*/*/pulls/*/merge", "/repos/o//pulls/1/merge", False),
    ("/v1/charges", "/v1/charges", True),
    ("/v1/charges", "/v1/charges/", True),
    ("/v1/charges/", "/v1/charges", True),
    ("/v1/charges", "/v1/chargesx", False),
    ("/v1/charges", "/v1/charges/x", False),
    ("/v1/charges", "/x/v1/charges", False),
    ("/files/*.txt", "/files/a.txt", True),
    ("/files/*.txt", "/files/.txt", True),
    ("/files/*.txt", "/files/a/b.txt", False),
    ("/files/*.txt", "/files/aXtxt", False),
    ("/a?", "/ab", False),
    ("/a?", "/a?", True),
    ("/a/*", "/a", False),
    ("/a/*", "/a/", False),
    ("/a/*", "/a/b", True),
    ("/", "/", True),
    ("/", "", True),
    ("/", "/a", False),
    ("/**", "/", True),
    ("/**", "/any/thing/here", True),
    ("/a/**/b/**/c", "/a/bx/b/c", True),
    ("/a/**/b/**/c", "/a/x/b/y/z/c", True),
    ("/a/**/b/**/c", "/a/b/c", True),
    ("/a/**/b/**/c", "/a/c", False),
    ("/a/**/b/**/c", "/a/c/b", False),
    ("/a/*x*y/b", "/a/1x2x3y/b", True),
    ("/a/*x*y/b", "/a/xy/b", True),
    ("/a/*x*y/b", "/a/yx/b", False),
]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    PATH_CASES,
    ids=[f"{p}~{h!r}" for p, h, _ in PATH_CASES],
)
def test_path_glob(pattern: str, path: str, matches: bool) -> None:
    compiled = compile_path_glob(pattern)
    assert bool(compiled.fullmatch(path)) is matches
    assert bool(compiled.search(path)) is matches


@pytest.mark.parametrize(
    ("ignore_case", "matches"), [(False, False), (True, True)], ids=["exact", "ignore-case"]
)
def test_path_glob_case(ignore_case: bool, matches: bool) -> None:
    compiled = compile_path_glob("/repos/*/merge", ignore_case=ignore_case)
    assert bool(compiled.fullmatch("/REPOS/x/MERGE")) is matches


RELATIVE_PATH_CASES = [
    ("**", "/any/thing", True),
    ("**/merge", "/repos/a/merge", True),
    ("**/merge", "/repos/a/merged", False),
    ("v1/*", "/v1/a", True),
    ("*", "/a", True),
    ("*", "/a/b", False),
    ("", "/", True),
]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    RELATIVE_PATH_CASES,
    ids=[f"{p!r}~{h}" for p, h, _ in RELATIVE_PATH_CASES],
)
def test_path_glob_without_leading_slash_is_rooted(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_path_glob(pattern).fullmatch(path)) is matches


def _reference_path_match(pattern: str, path: str) -> bool:
    """Match segment by segment by recursion, the slow obvious way."""
    want = [segment for segment in pattern.split("/") if segment]
    if not path.startswith("/"):
        return False
    have = path.rstrip("/").split("/")[1:]

    def segment_matches(glob: str, segment: str) -> bool:
        if glob == "*":
            return segment != ""
        return re.fullmatch("[^/]*".join(map(re.escape, glob.split("*"))), segment) is not None

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if want[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(have) + 1))
        return j < len(have) and segment_matches(want[i], have[j]) and match(i + 1, j + 1)

    return match(0, 0)


_PATH_GLOB = st.lists(
    st.sampled_from(["a", "b", "*", "**", "a*", "*b", "a*b", "*a*"]), max_size=5
).map(lambda segments: "/" + "/".join(segments))
_PATH = st.text(alphabet="ab/", max_size=12).map(lambda text: "/" + text)


@settings(max_examples=300)
@given(_PATH_GLOB, _PATH)
def test_path_glob_agrees_with_reference(pattern: str, path: str) -> None:
    expected = _reference_path_match(pattern, path)
    assert bool(compile_path_glob(pattern).fullmatch(path)) is expected


# --- values -----------------------------------------------------------------------------------

VALUE_CASES = [
    ("abc*", "abcdef", True),
    ("abc*", "abc", True),
    ("abc*", "xabc", False),
    ("*", "", True),
    ("*", "line one\nline two", True),
    ("a?c", "abc", True),
    ("a?c", "a\nc", True),
    ("a?c", "ac", False),
    ("a.c", "abc", False),
    ("[abc]", "[abc]", True),
    ("[abc]", "a", False),
    ("[!x]", "y", False),
    ("*@example.com", "ops@example.com", True),
    ("*@example.com", "ops@example.com.evil", False),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "acb", False),
    ("usd", "USD", False),
    ("\\d+", "\\d+", True),
    ("\\d+", "1", False),
    ("", "", True),
    ("", "x", False),
]


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    VALUE_CASES,
    ids=[f"{p!r}~{v!r}" for p, v, _ in VALUE_CASES],
)
def test_value_glob(pattern: str, value: str, matches: bool) -> None:
    compiled = compile_value_glob(pattern)
    assert bool(compiled.fullmatch(value)) is matches
    assert bool(compiled.search(value)) is matches


def test_value_glob_ignore_case() -> None:
    assert compile_value_glob("us*", ignore_case=True).fullmatch("USD")
    assert not compile_value_glob("us*").fullmatch("USD")


@settings(max_examples=300)
@given(st.text(alphabet="ab*?.\n", max_size=8), st.text(alphabet="ab.\n", max_size=10))
def test_value_glob_agrees_with_fnmatch(pattern: str, value: str) -> None:
    expected = fnmatch.fnmatchcase(value, pattern)
    assert bool(compile_value_glob(pattern).fullmatch(value)) is expected


# --- caching and hostile input ----------------------------------------------------------------


def test_compiled_globs_are_cached() -> None:
    assert compile_host_glob("*.example.com") is compile_host_glob("*.example.com")
    assert compile_path_glob("/v1/**") is compile_path_glob("/v1/**")
    assert compile_value_glob("a*", ignore_case=True) is compile_value_glob("a*", ignore_case=True)
    assert compile_value_glob("a*") is not compile_value_glob("a*", ignore_case=True)


HOSTILE = [
    ("value", compile_value_glob("*a*a*a*a*a*a*b"), "a" * 20_000),
    ("segment", compile_path_glob("/*a*a*a*a*a*b"), "/" + "a" * 20_000),
    ("double-star", compile_path_glob("/**/a/**/a/**/a/**/a/**/b"), "/a" * 5_000),
    ("slashes", compile_path_glob("/x/**/a/**/c"), "/x" + "/" * 20_000 + "a"),
    ("host", compile_host_glob("*.a*a*a*a*b.com"), "x." + "a" * 60 + ".com"),
]


@pytest.mark.parametrize(("kind", "pattern", "subject"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_input_does_not_backtrack(
    kind: str, pattern: re.Pattern[str], subject: str
) -> None:
    started = time.perf_counter()
    assert not pattern.fullmatch(subject), kind
    assert time.perf_counter() - started < 1.0, kind
