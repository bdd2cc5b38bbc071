"""Glob patterns of the policy language compiled to anchored regular expressions.

Stars between literals become atomic lazy groups (as `fnmatch` does), so a hostile host, path
or value cannot make matching backtrack for exponential or high-polynomial time.
"""

from __future__ import annotations

import functools
import re

_CACHE_SIZE = 4096
_STARS = re.compile(r"\*+")


def compile_host_glob(pattern: str) -> re.Pattern[str]:
    """Compile a lowercase host glob: leading `*.` is one or more labels, other `*` one label."""
    return _compile_host_glob(pattern)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile_host_glob(pattern: str) -> re.Pattern[str]:
    if _STARS.fullmatch(pattern):
        return re.compile(r"\A(?s:.*)\Z")
    labels = pattern.split(".")
    prefix = ""
    if len(labels) > 1 and _STARS.fullmatch(labels[0]):
        prefix = r"(?:[^.]+\.)+"
        labels = labels[1:]
    body = r"\.".join(_within(label, "[^.]") for label in labels)
    return re.compile(rf"\A{prefix}{body}\Z")


def host_index_key(pattern: str) -> str | None:
    """Return the longest suffix of whole literal labels, the key the engine indexes rules by.

    Every host the glob matches equals the key or ends with '.' + key; None means no literal
    suffix (`*`, `foo.*`), so the rule must be tried for every host.
    """
    labels = pattern.split(".")
    literal: list[str] = []
    for label in reversed(labels):
        if "*" in label:
            break
        literal.append(label)
    return ".".join(reversed(literal)) if literal else None


def compile_path_glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a path glob: `*` within one segment, `**` as a segment any number of segments.

    Trailing slashes make no difference on either side; a pattern without a leading '/' gets
    one (`**/merge` is `/**/merge`).
    """
    return _compile_path_glob(pattern, ignore_case)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile_path_glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    segments = [
        "**" if _STARS.fullmatch(segment) and segment != "*" else segment
        for segment in pattern.split("/")
        if segment
    ]
    # Split into runs of ordinary segments separated by `**` (adjacent `**` collapse).
    runs: list[list[str]] = [[]]
    for segment in segments:
        if segment != "**":
            runs[-1].append(segment)
        elif runs[-1] or len(runs) == 1:
            runs.append([])
    first, *middle, last = runs if len(runs) > 1 else [*runs, []]
    parts = [_segments(first)]
    if len(runs) > 1:
        any_segments = r"(?:/[^/]*)*"
        # Each run between two `**` is matched at its earliest position, then never revisited:
        # the next `**` can skip any later occurrence anyway.
        parts.extend(rf"(?>{any_segments}?{_segments(run)}(?=/|\Z))" for run in middle)
        parts.append(any_segments + _segments(last))
    if len(runs) == 1 or last:
        parts.append("/*")
    return re.compile(r"\A" + "".join(parts) + r"\Z", re.IGNORECASE if ignore_case else 0)


def compile_value_glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a shell-style value glob: `*` any characters, `?` one; no `[...]` classes."""
    return _compile_value_glob(pattern, ignore_case)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile_value_glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(rf"\A{_within(pattern, '.', question='.')}\Z", flags)


def _segments(run: list[str]) -> str:
    """Translate ordinary path segments, each preceded by its slash."""
    return "".join("/" + _within(segment, "[^/]") for segment in run)


def _within(text: str, char: str, *, question: str | None = None) -> str:
    """Translate a glob whose `*` matches any run of `char`; a lone `*` needs at least one.

    With `question`, `?` matches one `char` too. Stars after the first become atomic lazy groups.
    """
    text = _STARS.sub("*", text)
    if text == "*" and question is None:
        return f"{char}+"
    chunks = [_literal(chunk, question) for chunk in _STARS.split(text)]
    if len(chunks) == 1:
        return chunks[0]
    head, *middle, tail = chunks
    return head + "".join(f"(?>{char}*?{chunk})" for chunk in middle) + f"{char}*{tail}"


def _literal(chunk: str, question: str | None) -> str:
    if question is None:
        return re.escape(chunk)
    return question.join(re.escape(piece) for piece in chunk.split("?"))
