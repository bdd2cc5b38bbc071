"""The public listener: signed-link pages and Slack's interactivity endpoint, nothing else.

It faces the internet (phones, Slack), so every route proves itself by its own signature and none
of the control API is reachable here. A GET only shows; deciding takes a POST carrying the page's
CSRF field, so link previews and scanners that fetch a link cannot approve anything.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.channels import link_page
from proxy.channels.base import channel_label, decided_by
from proxy.channels.links import (
    LinkClaim,
    LinkError,
    LinkExpired,
    LinkSigner,
    LinkUsed,
    is_personal,
    people_behind,
)
from proxy.channels.links import new_csrf_cookie as new_cookie
from proxy.holds import (
    AlreadyVoted,
    Hold,
    HoldAlreadyDecided,
    HoldError,
    HoldNotFound,
    HoldQueue,
)
from proxy.outcomes import Outcome

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
MAX_REASON = 1000  # characters; the agent is told the reason, so it should be a sentence or two
ACTIONS = ("approve", "deny")
SECURITY_HEADERS = {
    "Content-Security-Policy": link_page.CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    # Not `no-referrer`: with it, browsers send `Origin: null` on the form's POST, and the Origin
    # check below could not tell our own page from any other. `same-origin` still never sends
    # the URL (and its token) to anyone else, and the pages load nothing from elsewhere.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class SlackInteractions(Protocol):
    """The Slack channel's endpoint: it checks Slack's request signature itself."""

    async def handle(self, request: Request) -> Response: ...


class SecurityHeaders:
    """ASGI middleware: the same strict headers on every answer, error pages included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status)


class LinkPages:
    """The endpoints, sharing the hold queue, the signer and (maybe) the Slack channel."""

    def __init__(self, holds: HoldQueue, links: LinkSigner, slack: SlackInteractions | None):
        self.holds, self.links, self.slack = holds, links, slack

    @property
    def cookie_name(self) -> str:
        """`__Host-` binds the cookie to this host and path `/`, but needs https."""
        return "__Host-interlock_csrf" if self.links.secure else "interlock_csrf"

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def slack_interactions(self, request: Request) -> Response:
        if self.slack is None:
            raise HTTPException(404)
        return await self.slack.handle(request)

    def _claim_and_hold(self, token: str) -> tuple[LinkClaim, Hold] | Response:
        """The link's claim and its pending hold, or the page saying why there is none."""
        claim = self._verify(token)
        if isinstance(claim, Response):
            return claim
        hold = self._hold(claim)
        if isinstance(hold, Response):
            return hold
        return claim, hold

    # -- GET: show, never change ----------------------------------------------------------------

    async def show(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self._claim_and_hold(token)
        if isinstance(found, Response):
            return found
        claim, hold = found
        action = request.query_params.get("action")  # preselects a button; trusted for nothing
        return self._form(hold, claim, token, request, action if action in ACTIONS else None)

    def _form(
        self,
        hold: Hold,
        claim: LinkClaim,
        token: str,
        request: Request,
        preselect: str | None,
        *,
        error: str | None = None,
        reason: str = "",
        status: int = 200,
    ) -> Response:
        """The review form; the browser's CSRF cookie is kept if it has one, else set."""
        cookie = request.cookies.get(self.cookie_name, "")
        if not _COOKIE_VALUE.fullmatch(cookie):
            cookie = new_cookie()
        html = link_page.review(
            hold.to_json(), token=token, csrf=self.links.csrf_field(cookie, token),
            audience=claim.audience, now=self.holds.clock(), preselect=preselect, error=error,
            reason=reason,
        )  # fmt: skip
        response = _page(html, status)
        response.set_cookie(
            self.cookie_name, cookie, path="/", secure=self.links.secure, httponly=True,
            samesite="strict",
        )  # fmt: skip
        return response

    def _verify(self, token: str) -> LinkClaim | Response:
        try:
            return self.links.verify(token)
        except LinkUsed:
            title, lines = "Link already used", ["This link was already used."]
        except LinkExpired:
            title, lines = "Link expired", ["This link has expired."]
        except LinkError as exc:
            lines = ["This link is not valid.", "Check that it was copied whole."]
            return _page(link_page.notice("Invalid link", *lines), exc.status)
        claim = self.links.claim_of(token)
        hold = self.holds.get(claim.hold_id) if claim else None
        if hold is not None and hold.state is not Outcome.PENDING:
            lines.append(link_page.outcome_sentence(hold.to_json()))
        elif hold is not None and hold.votes:
            lines.append(f"Approvals so far: {link_page.votes_text(hold.to_json())}.")
        if title == "Link expired" and (hold is None or hold.state is Outcome.PENDING):
            lines.append("Ask for a new link if the request still waits.")
        return _page(link_page.notice(title, *lines), 410)

    def _hold(self, claim: LinkClaim) -> Hold | Response:
        """The link's hold if it still waits, else the page that says why not."""
        hold = self.holds.get(claim.hold_id)
        if hold is None or not hold.announced:
            lines = [
                "This request is no longer waiting.",
                "It was decided a while ago, or the proxy has restarted since.",
            ]
            return _page(link_page.notice("Request not found", *lines), 404)
        if hold.state is Outcome.EXPIRED:
            lines = ["This request expired: nobody decided in time.", "The agent was refused."]
            return _page(link_page.notice("Request expired", *lines, outcome="refused"), 410)
        if hold.state is Outcome.PENDING and not hold.pending:
            return _page(link_page.notice("Being decided", "Someone is deciding right now."), 409)
        if not hold.pending:
            text = f"Already decided: {link_page.decision_text(hold.to_json())}."
            return _page(link_page.notice("Already decided", text), 409)
        return hold

    # -- POST: decide ---------------------------------------------------------------------------

    async def decide(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self._claim_and_hold(token)
        if isinstance(found, Response):
            return found
        claim, hold = found
        form = await _form_fields(request)
        refusal = self._csrf_refusal(request, token, form.get("csrf", ""))
        if refusal is not None:
            return refusal
        action, reason = form.get("action", ""), form.get("reason", "").strip()
        if action not in ACTIONS:
            return self._form(hold, claim, token, request, None, status=400,
                              error="Choose Approve or Deny.", reason=reason)  # fmt: skip
        preset = form.get("preset", "")
        if action == "deny" and not reason and preset in hold.settings.reasons:
            reason = preset
        problem = None
        if action == "deny" and not reason:
            problem = "A denial needs a reason, so the agent knows what to do instead."
        elif len(reason) > MAX_REASON:
            problem = f"Keep the reason under {MAX_REASON} characters."
        if problem is not None:
            return self._form(hold, claim, token, request, action, status=400,
                              error=problem, reason=reason)  # fmt: skip
        return await self._decide(hold, claim, token, request, action, reason)

    async def _decide(
        self, hold: Hold, claim: LinkClaim, token: str, request: Request, action: str, reason: str
    ) -> Response:
        shared = not is_personal(claim.channel)
        if action == "approve" and hold.settings.approvals > 1 and shared:
            lines = [
                f"This link reaches everyone the {claim.channel} channel reaches, so it cannot "
                f"count as one of the {hold.settings.approvals} people this request needs.",
                "Deny works here. To approve, use the dashboard, Slack, or a personal link "
                "(interlock link HOLD_ID --for NAME).",
            ]
            return _page(link_page.notice("Needs a named person", *lines, reopen=token), 403)
        try:
            self.links.spend(claim)
        except LinkUsed:
            return _page(link_page.notice("Link already used", "This link was already used."), 410)
        by, channel = decided_by("link", claim.audience), channel_label("link", claim.channel)
        try:
            await self.holds.decide(
                hold.id,
                approve=action == "approve",
                by=by,
                channel=channel,
                reason=reason or None,
                people=people_behind(claim) if not shared else (),
            )
        except AlreadyVoted as exc:  # this person already voted: the link may still deny
            self.links.refund(claim)
            return _page(link_page.notice("Already approved", str(exc), reopen=token), 422)
        except HoldAlreadyDecided:
            text = f"Already decided: {link_page.decision_text(hold.to_json())}."
            return _page(link_page.notice("Already decided", text), 409)
        except HoldNotFound:
            return _page(link_page.notice("Request not found", "This request is gone."), 404)
        except HoldError as exc:
            self.links.refund(claim)  # nothing was decided: the link still works
            return self._form(hold, claim, token, request, action, status=400, error=str(exc),
                              reason=reason)  # fmt: skip
        except Exception:
            self.links.refund(claim)
            raise
        log.info("hold %s: %s through a link for %s (%s)", hold.id, action, by, channel)
        return _page(_result(hold), 503 if hold.state is Outcome.ERROR else 200)

    def _csrf_refusal(self, request: Request, token: str, field: str) -> Response | None:
        origin = request.headers.get("origin")
        if origin is None and request.headers.get("referer"):
            parts = urlsplit(request.headers["referer"])
            origin = f"{parts.scheme}://{parts.netloc}"
        cookie = request.cookies.get(self.cookie_name, "")
        if origin is not None and origin != self.links.origin:
            why = "The form was sent from another site."
        elif not self.links.csrf_ok(cookie, token, field):
            why = "The form could not be checked (did the browser keep its cookie?)."
        else:
            return None
        lines = [why, "Nothing was decided. Open the request again and decide from there."]
        return _page(link_page.notice("Nothing was decided", *lines, reopen=token), 403)


def _result(hold: Hold) -> str:
    """The page after a decision or a vote was recorded."""
    facts = hold.to_json()
    if hold.state is Outcome.PENDING:
        title, lines, outcome = "Approval counted", [
            f"Your approval was counted: {link_page.votes_text(facts)}.",
            "The request stays held until enough people approve.",
        ], "approved"  # fmt: skip
    elif hold.state is Outcome.APPROVED:
        title, lines, outcome = "Approved", ["Approved — the request was released."], "approved"
    elif hold.state is Outcome.DENIED:
        told = f"The agent was told: {hold.decision_reason}"
        title, lines, outcome = "Denied", ["Denied — the request was refused.", told], "denied"
    else:  # the audit log refused the record, so the gate refused the request
        lines = ["The decision could not be recorded, so the request was refused.",
                 hold.decision_reason or ""]  # fmt: skip
        title, outcome = "Not recorded", "refused"
    return link_page.notice(title, *lines, outcome=outcome)


async def _form_fields(request: Request) -> dict[str, str]:
    """The first value of each field of a small urlencoded form; anything else is refused."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {name: values[0] for name, values in fields.items()}


_STATUS_TEXT = {
    404: ("Not found", "There is nothing here."),
    405: ("Not allowed", "This page cannot be used that way."),
    413: ("Too large", "The form was too large."),
    415: ("Not a form", "Send the page's own form."),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title, text = _STATUS_TEXT.get(exc.status_code, ("Error", "The request was refused."))
    return _page(link_page.notice(title, text), exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("the public listener failed on %s %s", request.method, request.url.path)
    return _page(link_page.notice("Something went wrong", "Nothing was decided."), 500)


def create_public_app(
    *, holds: HoldQueue, links: LinkSigner, slack: SlackInteractions | None = None
) -> Starlette:
    """The public listener's app: signed-link pages, Slack's endpoint when given, and /healthz."""
    pages = LinkPages(holds, links, slack)
    routes = [
        Route("/l/{token}", pages.show, methods=["GET"]),
        Route("/l/{token}", pages.decide, methods=["POST"]),
        Route("/slack/interactions", pages.slack_interactions, methods=["POST"]),
        Route("/healthz", pages.healthz, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
