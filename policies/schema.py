"""A JSON Schema of policy files for editors; the loader stays the authority on validity."""

from __future__ import annotations

from typing import Any

from policies.model import Action, Severity

DURATION = {"type": "string", "pattern": r"^(\d+(ms|s|m|h|d))+$", "description": "e.g. 30s, 5m, 1h"}
NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"}


def _one_or_many(item: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]}


PATTERN = {
    "anyOf": [
        {"type": ["string", "number"], "description": "glob: * and ?"},
        {
            "type": "object",
            "properties": {"regex": {"type": "string"}},
            "required": ["regex"],
            "additionalProperties": False,
        },
    ]
}
PARAMS = {"type": "object", "additionalProperties": _one_or_many(PATTERN), "minProperties": 1}
COMPARISON = {
    "type": "object",
    "properties": {
        "eq": {}, "ne": {}, "in": {"type": "array"},
        "gt": {"type": "number"}, "gte": {"type": "number"},
        "lt": {"type": "number"}, "lte": {"type": "number"},
        "regex": {"type": "string"}, "exists": {"type": "boolean"},
    },
    "additionalProperties": False,
}  # fmt: skip
MATCH_BLOCK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "host": _one_or_many({"type": "string"}),
        "ip": _one_or_many({"type": ["string", "integer"]}),
        "port": _one_or_many({"type": "integer", "minimum": 1, "maximum": 65535}),
        "scheme": _one_or_many({"enum": ["http", "https"]}),
        "method": _one_or_many({"type": "string"}),
        "path": _one_or_many(PATTERN),
        "query": PARAMS,
        "form": PARAMS,
        "headers": PARAMS,
        "json": {
            "type": "object",
            "additionalProperties": {
                "anyOf": [COMPARISON, {"type": ["string", "number", "boolean", "null", "array"]}]
            },
        },
        "body": _one_or_many({"type": "string"}),
    },
}
SECRET = {
    "type": "object",
    "oneOf": [{"required": ["env"]}, {"required": ["file"]}],
    "properties": {"env": {"type": "string"}, "file": {"type": "string"}},
    "additionalProperties": False,
}
CHANNEL = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "type": {"const": "webhook"},
                "url": {"type": "string", "pattern": "^https?://"},
                "secret": SECRET,
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["type", "url", "secret"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "type": {"const": "slack"},
                "channel": {"type": "string"},
                "bot_token": SECRET,
                "approvers": {
                    "oneOf": [
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "minProperties": 1,
                        },
                    ]
                },
                "mode": {"enum": ["socket", "http"]},
                "app_token": SECRET,
                "signing_secret": SECRET,
                "api_url": {"type": "string", "pattern": "^https?://"},
            },
            "required": ["type", "channel", "bot_token", "approvers"],
            "additionalProperties": False,
        },
    ]
}
RULE = {
    "type": "object",
    "required": ["name", "action", "reason"],
    "additionalProperties": False,
    "properties": {
        "name": NAME,
        "action": {"enum": [a.value for a in Action]},
        "reason": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "severity": {"enum": [s.value for s in Severity]},
        "agents": _one_or_many(NAME),
        "match": _one_or_many(MATCH_BLOCK),
        "timeout": DURATION,
        "respond_pending_after": DURATION,
        "reasons": _one_or_many({"type": "string"}),
        "notify": _one_or_many(NAME),
        "escalate": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["after", "notify"],
                "additionalProperties": False,
                "properties": {"after": DURATION, "notify": _one_or_many(NAME)},
            },
        },
        "approvals": {"type": "integer", "minimum": 1, "maximum": 10},
    },
}


def policy_schema() -> dict[str, Any]:
    """The schema of a policy file (top-level or included)."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://interlock.dev/schema/policy-v1.json",
        "title": "Interlock policy, version 1",
        "type": "object",
        "required": ["version"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": 1},
            "description": {"type": "string"},
            "default": {"enum": [a.value for a in Action]},
            "default_reason": {"type": "string"},
            "include": _one_or_many({"type": "string"}),
            "agents": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["addresses"],
                    "additionalProperties": False,
                    "properties": {"addresses": _one_or_many({"type": "string"})},
                },
            },
            "channels": {"type": "object", "additionalProperties": CHANNEL},
            "rules": {"type": "array", "items": RULE},
        },
    }
