"""The HTML of the signed-link pages: one hold's review form, and the short pages that end a visit.

Every value from a hold is escaped here; the pages carry no script, and their one stylesheet is
allowed by its hash, so the Content-Security-Policy can forbid everything else.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from importlib.resources import files
from string import Template
from typing import Any

from policies.durations import format_duration

_SHELL_TEXT = files("proxy.channels").joinpath("link_page.html").read_text(encoding="utf-8")
_SHELL = Template(_SHELL_TEXT)
_STYLE = re.search(r"<style>(.*?)</style>", _SHELL_TEXT, re.DOTALL)
if _STYLE is None:
    raise RuntimeError("proxy/channels/link_page.html has lost its <style> element")
STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.group(1).encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def render(title: str, body: str) -> str:
    """A whole page around `body` (HTML, already escaped); `title` is escaped here."""
    return _SHELL.substitute(title=escape(title), body=body)


def notice(title: str, *lines: str, outcome: str | None = None, reopen: str | None = None) -> str:
    """A page that says one thing: `lines` are plain text; `reopen` links back to the form."""
    css = f' class="outcome {escape(outcome)}"' if outcome else ""
    paragraphs = "".join(f"<p>{escape(line)}</p>" for line in lines[1:])
    back = f'<p><a href="{escape(reopen)}">Open the request again</a></p>' if reopen else ""
    first = f"<p{css}>{escape(lines[0])}</p>" if lines else ""
    return render(title, f"<h1>{escape(title)}</h1>{first}{paragraphs}{back}")


def decision_text(hold: Mapping[str, Any]) -> str:
    """How a hold ended, for people: `approved by person:alice via cli`."""
    if hold["state"] == "expired":
        return "expired: nobody decided in time"
    text = f"{hold['state']} by {hold['decided_by']}"
    if hold.get("channel"):
        text += f" via {hold['channel']}"
    if hold.get("decision_reason"):
        text += f" ({hold['decision_reason']})"
    return text


def outcome_sentence(hold: Mapping[str, Any]) -> str:
    if hold["state"] == "expired":
        return "The request expired: nobody decided in time."
    return f"The request was {decision_text(hold)}."


def votes_text(hold: Mapping[str, Any]) -> str:
    return f"{len(hold['votes'])} of {hold['approvals_needed']} approvals"


def review(
    hold: Mapping[str, Any],
    *,
    token: str,
    csrf: str,
    audience: str,
    now: float,
    preselect: str | None = None,
    error: str | None = None,
    reason: str = "",
) -> str:
    """The review form of a pending hold (`Hold.to_json()`, already redacted)."""
    facts: list[tuple[str, str]] = [
        ("Agent", escape(hold["agent"])),
        ("Request", f"<code>{escape(hold['method'])} {escape(hold['url'])}</code>"),
        ("Rule", escape(hold["rule"] or "(default)")),
        ("Why held", escape(hold["reason"])),
        ("Severity", f'<span class="sev-{escape(hold["severity"])}">'
                     f"{escape(hold['severity'])}</span>"),
    ]  # fmt: skip
    if hold["body_preview"]:
        facts.append(("Body", f"<pre>{escape(hold['body_preview'])}</pre>"))
    elif hold["body_size"]:
        facts.append(("Body", f"{hold['body_size']} bytes, not shown"))
    facts.append(("Decide within", escape(_time_left(hold["deadline"], now))))
    if hold["approvals_needed"] > 1:
        facts.append(("Approvals", escape(f"{votes_text(hold)} so far")))
    summary = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        "<h1>Approve this request?</h1>"
        f'<p class="muted">An agent\'s request is waiting for a person. This link is for '
        f"{escape(audience)} and works once.</p>"
        f"<dl>{summary}</dl>{problem}"
        f'<form method="post" action="{escape(token)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<label for="reason">Reason <span class="muted">(required to deny)</span></label>'
        f'<textarea id="reason" name="reason" maxlength="1000"'
        f"{' autofocus' if preselect == 'deny' else ''}>{escape(reason)}</textarea>"
        f"{_presets(hold['reasons'])}"
        '<div class="buttons">'
        f"{_button('approve', 'Approve', preselect)}{_button('deny', 'Deny', preselect)}"
        "</div></form>"
    )
    return render("Approve this request?", body)


def _button(action: str, label: str, preselect: str | None) -> str:
    chosen = " chosen" if preselect == action else ""
    focus = " autofocus" if preselect == action == "approve" else ""
    return (
        f'<button type="submit" name="action" value="{action}" class="{action}{chosen}"'
        f"{focus}>{label}</button>"
    )


def _presets(reasons: Iterable[str]) -> str:
    options = "".join(
        f'<label><input type="radio" name="preset" value="{escape(text)}"> {escape(text)}</label>'
        for text in reasons
    )
    return f"<fieldset><legend>Or deny with</legend>{options}</fieldset>" if options else ""


def _time_left(deadline: float, now: float) -> str:
    at = datetime.fromtimestamp(deadline, UTC).strftime("%H:%M:%S UTC")
    return f"{format_duration(max(0, int(deadline - now)))} (by {at})"
