"""Slack Web API errors as channel failures: which ones waiting fixes, and what to tell people."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

from proxy.channels.base import ChannelError

# Errors that waiting will not fix: the hub reports them at once instead of retrying.
PERMANENT = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "no_permission", "missing_scope", "not_allowed_token_type", "access_denied",
    "ekm_access_denied", "team_access_not_granted", "org_login_required", "channel_not_found",
    "not_in_channel", "is_archived", "restricted_action", "invalid_blocks",
    "invalid_blocks_format", "invalid_arguments", "invalid_arg_name", "msg_too_long", "no_text",
    "message_not_found", "cant_update_message", "edit_window_closed", "invalid_json",
    "json_not_object", "method_deprecated", "deprecated_endpoint",
})  # fmt: skip
TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                          "token_expired", "not_allowed_token_type"})  # fmt: skip
HINTS = {
    "channel_not_found": "check `channel` (an ID like C0123ABCD, or a name the app can see)",
    "not_in_channel": "invite the app to the channel (/invite @your-app)",
    "is_archived": "the channel is archived",
    "missing_scope": "the bot token needs the chat:write scope",
}


def slack_failure(name: str, method: str, exc: SlackApiError) -> ChannelError:
    """A Slack error as a ChannelError: rate limits carry Retry-After; lasting errors are final."""
    response = exc.response
    data = response.data if isinstance(response.data, dict) else {}
    error = str(data.get("error") or f"HTTP {response.status_code}")
    prefix = f"slack channel {name}: {method} failed: {error}"
    if response.status_code == 429 or error == "ratelimited":
        try:
            retry_after: float | None = float(response.headers.get("Retry-After", ""))
        except (TypeError, ValueError):
            retry_after = None
        return ChannelError(f"{prefix} (rate limited)", retry_after=retry_after)
    hint = HINTS.get(error)
    if error in TOKEN_ERRORS:
        key = "app_token" if method == "apps.connections.open" else "bot_token"
        hint = f"Slack refused the {key}"
    if error == "missing_scope" and data.get("needed"):
        hint = f"the token needs the {data['needed']} scope"
    return ChannelError(f"{prefix} ({hint})" if hint else prefix, retryable=error not in PERMANENT)
