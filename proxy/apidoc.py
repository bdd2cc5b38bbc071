"""The control API's route table and the OpenAPI document built from it."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from proxy.audit import MAX_QUERY_LIMIT as MAX_LIMIT

# (method, path, handler, summary, answers); the OpenAPI document is built from the same table.
ROUTES: tuple[tuple[str, str, str, str, str], ...] = (
    ("GET", "/healthz", "healthz", "Liveness and audit-store health; needs no token", "200 503"),
    ("GET", "/openapi.json", "openapi", "This document", "200"),
    ("GET", "/v1/holds", "list_holds", "Pending holds, oldest first", "200"),
    ("GET", "/v1/holds/{hold_id}", "get_hold", "One hold, pending or recently decided", "200 404"),
    ("POST", "/v1/holds/{hold_id}/approve", "approve", "Approve, or vote under a quorum",
     "200 202 404 409 422 503"),
    ("POST", "/v1/holds/{hold_id}/deny", "deny", "Deny with a reason", "200 400 404 409 503"),
    ("POST", "/v1/holds/{hold_id}/link", "create_link",
     "Signed single-use links to decide a pending hold on the public listener",
     "200 400 404 409"),
    ("GET", "/v1/events", "stream_events", "Server-sent events; resumes after Last-Event-ID",
     "200 400"),
    ("GET", "/v1/requests", "list_requests", "The audit log, newest first, paged by seq",
     "200 400"),
    ("GET", "/v1/requests/{request_id}", "request_trail", "Every audit row of one request",
     "200 404"),
    ("GET", "/v1/rules/{rule}/stats", "rule_stats", "How a rule's requests ended", "200"),
    ("POST", "/v1/policy/reload", "reload", "Re-read the policy files", "200 422"),
    ("GET", "/v1/grants", "list_grants", "Active grants", "200"),
    ("DELETE", "/v1/grants/{grant_id}", "revoke_grant", "Revoke a grant", "200 404"),
    ("GET", "/v1/lockdown", "get_lockdown", "Whether lockdown is on", "200"),
    ("POST", "/v1/lockdown", "set_lockdown", "Switch lockdown on or off", "200 400"),
)  # fmt: skip


def openapi_document(version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 description of every route, built from `ROUTES`."""
    error_schema = {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    }
    reason = {"type": "object", "properties": {"reason": {"type": "string"}}}
    bodies: dict[str, dict[str, Any]] = {
        "approve": reason,
        "deny": reason | {"required": ["reason"]},
        "create_link": {
            "type": "object",
            "required": ["for"],
            "properties": {"for": {"type": "string", "description": "who decides through it"}},
        },
        "set_lockdown": {
            "type": "object",
            "required": ["on"],
            "properties": {"on": {"type": "boolean"}, "reason": {"type": "string"}},
        },
    }
    query: dict[str, list[tuple[str, str]]] = {
        "list_requests": [
            ("since", "epoch seconds, or a duration ago such as 2h"),
            ("until", "epoch seconds, or a duration ago such as 30m"),
            ("agent", "agent name"), ("host", "destination host"),
            ("outcome", "allowed, denied, approved, ..."), ("rule", "rule name"),
            ("limit", f"rows per page, 1 to {MAX_LIMIT} (default 100)"),
            ("before", "seq from the previous page's `next`"),
        ],
        "stream_events": [("last_event_id", "like the Last-Event-ID header")],
    }  # fmt: skip
    paths: dict[str, dict[str, Any]] = {}
    for method, path, name, summary, answers in ROUTES:
        params = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in _PATH_PARAM.findall(path)
        ] + [
            {"name": q, "in": "query", "description": d, "schema": {"type": "string"}}
            for q, d in query.get(name, [])
        ]
        responses = {
            code: {"description": HTTPStatus(int(code)).phrase}
            | ({} if code.startswith("2") else {"content": _json(error_schema)})
            for code in answers.split()
        }
        operation: dict[str, Any] = {
            "operationId": name,
            "summary": summary,
            "responses": responses,
        }
        if params:
            operation["parameters"] = params
        if name in bodies:
            operation["requestBody"] = {
                "required": name != "approve",
                "content": _json(bodies[name]),
            }
        if name == "healthz":
            operation["security"] = []
        else:
            responses |= {"401": {"description": "missing or invalid operator token"}}
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Interlock control API", "version": version},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


_PATH_PARAM = re.compile(r"{(\w+)}")


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}
