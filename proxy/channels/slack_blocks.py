"""Block Kit for a hold: the message with Approve/Deny, its later states, and the Deny modal.

Pure functions of `Hold.to_json()` (already redacted), clipped to Slack's limits so a long URL
or body can never make Slack refuse the message; and readers of what Slack sends back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

APPROVE_ACTION = "interlock_approve"
DENY_ACTION = "interlock_deny"
DENY_CALLBACK = "interlock_deny_reason"  # the modal's callback_id
REASON_BLOCK, REASON_INPUT = "interlock_reason", "reason"
PRESET_BLOCK, PRESET_INPUT = "interlock_preset", "preset"

# Slack's limits (characters), from the Block Kit reference.
HEADER_MAX, SECTION_MAX, FIELD_MAX, CONTEXT_MAX = 150, 3000, 2000, 2000
BUTTON_TEXT_MAX, OPTION_TEXT_MAX, OPTION_VALUE_MAX, OPTIONS_MAX = 75, 75, 150, 100
TITLE_MAX, METADATA_MAX, REASON_MAX, FALLBACK_MAX = 24, 3000, 2000, 3000

Block = dict[str, Any]
OUTCOME_LABEL = {
    "approved": "Approved",
    "denied": "Denied",
    "expired": "Expired",
    "error": "Failed",
}
OUTCOME_ICON = {"approved": ":white_check_mark:", "denied": ":no_entry:",
                "expired": ":hourglass:", "error": ":warning:"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Message:
    text: str  # the fallback shown in notifications and by clients without Block Kit
    blocks: list[Block]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Slack's three control characters, so a URL or body cannot inject a mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def person(decided_by: str | None) -> str:
    """`person:slack:U012AB3CD` as a mention; any other decider as escaped text."""
    if not decided_by or decided_by == "system":
        return "Interlock"
    if decided_by.startswith("person:slack:"):
        return f"<@{escape(decided_by.removeprefix('person:slack:'))}>"
    return escape(decided_by.removeprefix("person:"))


def slack_date(epoch: float) -> str:
    """A time each reader sees in their own time zone, with a UTC fallback for old clients."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
    return f"<!date^{int(epoch)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _text(kind: str, text: str, limit: int) -> Block:
    block: Block = {"type": kind, "text": clip(text, limit)}
    if kind == "plain_text":
        block["emoji"] = True
    return block


def _section(text: str) -> Block:
    return {"type": "section", "text": _text("mrkdwn", text, SECTION_MAX)}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_text("mrkdwn", text, CONTEXT_MAX)]}


def _what(hold: Mapping[str, Any]) -> str:
    return f"{hold.get('method', '?')} {hold.get('url', '?')}"


def _approvals(hold: Mapping[str, Any]) -> str:
    needed = int(hold.get("approvals_needed") or 1)
    votes = hold.get("votes") or []
    if needed <= 1 and not votes:
        return "1 approval needed"
    text = f"{len(votes)} of {needed} approvals"
    if votes:
        text += f" (by {', '.join(person(v.get('by')) for v in votes)})"
    return text


def _facts(hold: Mapping[str, Any]) -> list[Block]:
    fields = [
        _text("mrkdwn", f"*Agent*\n{escape(str(hold.get('agent', '?')))}", FIELD_MAX),
        _text("mrkdwn", f"*Request*\n`{escape(clip(_what(hold), FIELD_MAX - 20))}`", FIELD_MAX),
        _text("mrkdwn", f"*Rule*\n{escape(str(hold.get('rule') or 'policy default'))}", FIELD_MAX),
        _text("mrkdwn", f"*Severity*\n{escape(str(hold.get('severity', '?')))}", FIELD_MAX),
    ]
    blocks: list[Block] = [
        {"type": "section", "fields": fields},
        _section(f"*Why it was held*\n{escape(str(hold.get('reason') or ''))}"),
    ]
    preview = hold.get("body_preview")
    if preview:
        body = escape(str(preview)).replace("```", "'''")
        blocks.append(_section(f"*Body (redacted)*\n```{clip(body, SECTION_MAX - 40)}```"))
    return blocks


def hold_message(hold: Mapping[str, Any], *, escalated: bool = False) -> Message:
    """The hold as a message: pending with buttons, or its outcome without them."""
    state = str(hold.get("state", "pending"))
    what = f"{hold.get('method', '?')} {hold.get('host', '?')}"
    if state == "pending":
        title = f"Approval needed: {what}"
        text = f"{title} by {hold.get('agent', '?')} ({_approvals(hold)})"
    else:
        title = f"{OUTCOME_LABEL.get(state, state.capitalize())}: {what}"
        text = f"{title} (decided by {hold.get('decided_by') or 'Interlock'})"
    blocks: list[Block] = [{"type": "header", "text": _text("plain_text", title, HEADER_MAX)}]
    blocks += _facts(hold)
    if state == "pending":
        deadline = float(hold.get("deadline") or 0)
        status = f"*Approvals:* {_approvals(hold)}   *Decide by:* {slack_date(deadline)}"
        blocks.append(_section(status))
        if escalated:
            blocks.append(_context(":rotating_light: Escalated: nobody decided in time."))
        blocks.append(_buttons(str(hold["id"])))
    else:
        blocks.append(_section(_outcome(hold, state)))
    blocks.append(_context(f"Interlock hold `{escape(str(hold.get('id', '?')))}`"))
    return Message(clip(escape(text), FALLBACK_MAX), blocks)  # notifications read mrkdwn too


def _outcome(hold: Mapping[str, Any], state: str) -> str:
    icon, label = OUTCOME_ICON.get(state, ""), OUTCOME_LABEL.get(state, state.capitalize())
    line = f"{icon} *{label}*"
    if state in ("approved", "denied"):
        line += f" by {person(hold.get('decided_by'))}"
        if hold.get("channel"):
            line += f" via `{escape(str(hold['channel']))}`"
    if hold.get("decision_reason"):
        line += f"\n>{escape(str(hold['decision_reason']))}"
    votes = hold.get("votes") or []
    if state == "approved" and votes:
        line += f"\nEarlier approvals: {', '.join(person(v.get('by')) for v in votes)}"
    return line


def _buttons(hold_id: str) -> Block:
    def button(label: str, action_id: str, style: str) -> Block:
        text = _text("plain_text", label, BUTTON_TEXT_MAX)
        return {"type": "button", "text": text, "action_id": action_id, "value": hold_id,
                "style": style}  # fmt: skip

    return {"type": "actions", "elements": [button("Approve", APPROVE_ACTION, "primary"),
                                            button("Deny", DENY_ACTION, "danger")]}  # fmt: skip


def deny_modal(hold: Mapping[str, Any] | None, metadata: Mapping[str, str]) -> Block:
    """The Deny form: a required reason the agent will read, and the rule's preset reasons."""
    blocks: list[Block] = []
    if hold is not None:
        summary = f"*{escape(str(hold.get('agent', '?')))}* wants `{escape(_what(hold))}`"
        blocks.append(_section(summary))
    presets = [str(r) for r in (hold or {}).get("reasons") or []][:OPTIONS_MAX]
    if presets:
        options = [{"text": _text("plain_text", r, OPTION_TEXT_MAX),
                    "value": clip(r, OPTION_VALUE_MAX)} for r in presets]  # fmt: skip
        blocks.append({
            "type": "input", "block_id": PRESET_BLOCK, "optional": True,
            "label": _text("plain_text", "Preset reason", 2000),
            "element": {"type": "static_select", "action_id": PRESET_INPUT, "options": options,
                        "placeholder": _text("plain_text", "Choose one (optional)", 150)},
        })  # fmt: skip
    blocks.append({
        "type": "input", "block_id": REASON_BLOCK,
        "label": _text("plain_text", "Reason (the agent is told)", 2000),
        "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True,
                    "max_length": REASON_MAX,
                    "placeholder": _text("plain_text", "What should the agent do instead?", 150)},
    })  # fmt: skip
    return {
        "type": "modal",
        "callback_id": DENY_CALLBACK,
        "private_metadata": clip(json.dumps(dict(metadata), separators=(",", ":")), METADATA_MAX),
        "title": _text("plain_text", "Deny request", TITLE_MAX),
        "submit": _text("plain_text", "Deny", TITLE_MAX),
        "close": _text("plain_text", "Cancel", TITLE_MAX),
        "blocks": blocks,
    }


# -- reading interactions ---------------------------------------------------------------------


def clicked(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Approve or Deny action of a `block_actions` payload, if it is one of ours."""
    for action in payload.get("actions") or ():
        if action.get("action_id") in (APPROVE_ACTION, DENY_ACTION):
            return action  # type: ignore[no-any-return]
    return None


def message_ref(payload: Mapping[str, Any]) -> tuple[str, str]:
    """The channel ID and `ts` of the message a button was clicked in."""
    container = payload.get("container") or {}
    channel = container.get("channel_id") or (payload.get("channel") or {}).get("id") or ""
    ts = container.get("message_ts") or (payload.get("message") or {}).get("ts") or ""
    return str(channel), str(ts)


def metadata(payload: Mapping[str, Any]) -> dict[str, str]:
    """A submitted modal's private_metadata: the notifier, hold and message it belongs to."""
    try:
        meta = json.loads((payload.get("view") or {}).get("private_metadata") or "")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def deny_reason(view: Mapping[str, Any]) -> str:
    """The reason a submitted Deny form gives: the typed text, after the chosen preset if any."""
    values = (view.get("state") or {}).get("values") or {}
    typed = ((values.get(REASON_BLOCK) or {}).get(REASON_INPUT) or {}).get("value") or ""
    chosen = ((values.get(PRESET_BLOCK) or {}).get(PRESET_INPUT) or {}).get("selected_option")
    preset = str(chosen.get("value") or "") if isinstance(chosen, dict) else ""
    typed = str(typed).strip()
    return f"{preset}: {typed}" if preset and typed else preset or typed


def reason_error(message: str) -> dict[str, Any]:
    """The acknowledgement that keeps the modal open with `message` under the reason box."""
    return {"response_action": "errors", "errors": {REASON_BLOCK: message}}
