"""Load a policy file and its includes into a `Policy`, or fail listing every problem precisely."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import MappingNode, Node

from policies.engine import Policy, Rule, shadowed
from policies.errors import PolicyError, Problem
from policies.model import ANONYMOUS, Action, Agent, Channel, SecretRef
from policies.rules import NAME_RE, ChannelRef, RuleReader, unknown_key
from policies.yamlnodes import Source, as_list, is_map, is_scalar, is_seq

PRESETS_DIR = Path(__file__).parent / "presets"
DEFAULT_POLICY = Path(__file__).parent / "default.yaml"  # what `interlock run` uses by default
PRESET_PREFIX = "interlock:"
TOP_KEYS = ["version", "description", "default", "default_reason", "include", "agents",
            "channels", "rules"]  # fmt: skip
INCLUDED_KEYS = ["version", "description", "include", "rules"]
DEFAULT_REASON = "No rule matched this request; the policy's default applies."
SLACK_USER_RE = re.compile(r"[UW][A-Z0-9]{2,}")
PERSON_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")


CHANNEL_KEYS: dict[str, dict[str, str]] = {
    # key -> kind: "str", "url", "secret", "map", "users", "mode"; a leading "!" means required.
    "webhook": {"url": "!url", "secret": "!secret", "headers": "map"},
    "slack": {
        "channel": "!str",
        "bot_token": "!secret",
        "approvers": "!users",
        "mode": "mode",
        "app_token": "secret",
        "signing_secret": "secret",
        "api_url": "url",  # default https://slack.com/api/ (GovSlack, Enterprise, tests)
    },
}


@dataclass
class _Loaded:
    rules: list[Rule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    texts: list[bytes] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    channel_refs: list[ChannelRef] = field(default_factory=list)
    seen: set[Path] = field(default_factory=set)


def load_policy(path: str | Path) -> Policy:
    """Load, validate and compile a policy; raises `PolicyError` listing every error found."""
    loaded = _Loaded()
    top = _read_file(Path(path), str(path), loaded, prefix="", top_level=True, stack=())
    default, default_reason, channels, agents = None, DEFAULT_REASON, {}, []
    if top is not None:
        source, root = top
        channels = _channels(source, root)
        agents = _agents(source, root)
        default, default_reason = _default(source, root)
        for ref in loaded.channel_refs:
            if ref.name not in channels:
                known = ", ".join(sorted(channels)) or "none declared"
                ref.source.error(ref.node, ref.where, f"unknown channel {ref.name!r} ({known})")
    # Top-level keys are walked more than once; a duplicate key is still one problem.
    problems = list(dict.fromkeys(p for s in loaded.sources for p in s.problems))
    errors = [p for p in problems if not p.warning]
    if errors or default is None:
        raise PolicyError(errors)
    warnings = [str(p) for p in problems if p.warning]
    warnings += [
        f"{later.file}:{later.line}:1: rule {later.name!r} can never match: "
        f"rule {earlier.name!r} ({earlier.file}:{earlier.line}) always matches first"
        for earlier, later in shadowed(loaded.rules)
    ]
    digest = hashlib.sha256()
    for name, text in zip(loaded.files, loaded.texts, strict=True):
        digest.update(name.encode() + b"\0" + text + b"\0")
    return Policy(
        default=default,
        default_reason=default_reason,
        rules=tuple(loaded.rules),
        agents=tuple(agents),
        channels=channels,
        files=tuple(loaded.files),
        digest=digest.hexdigest(),
        warnings=tuple(dict.fromkeys(warnings)),
    )


def _read_file(
    path: Path, shown: str, loaded: _Loaded, prefix: str, top_level: bool, stack: tuple[Path, ...]
) -> tuple[Source, MappingNode] | None:
    source = Source(shown)
    loaded.sources.append(source)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        source.problems.append(Problem(shown, 1, 1, "", f"cannot read policy: {exc}"))
        return None
    root = source.parse(text)
    if root is None or not is_map(root):
        if root is not None:
            source.error(root, "", "a policy must be a mapping with 'version: 1'")
        return None
    assert isinstance(root, MappingNode)
    loaded.files.append(shown)
    loaded.texts.append(raw)
    fields = _top_fields(source, root, TOP_KEYS if top_level else INCLUDED_KEYS, top_level)

    reader = RuleReader(source, prefix=prefix)
    names: dict[str, Node] = {}
    if "rules" in fields:
        rules_node = fields["rules"]
        if not is_seq(rules_node):
            source.error(rules_node, "", "rules must be a list")
        else:
            for index, rule_node in enumerate(rules_node.value):
                rule = reader.read(rule_node, index)
                if rule is None:
                    continue
                if rule.name in names:
                    first = names[rule.name].start_mark.line + 1
                    source.error(
                        rule_node,
                        f"rules[{index}] ({rule.name})",
                        f"duplicate rule name (first used on line {first})",
                    )
                    continue
                names[rule.name] = rule_node
                loaded.rules.append(rule)
    loaded.channel_refs.extend(reader.channel_refs)

    for include_node in as_list(fields["include"]) if "include" in fields else []:
        _include(source, include_node, path, loaded, (*stack, path.resolve()))
    return source, root


def _top_fields(
    source: Source, root: MappingNode, allowed: list[str], top_level: bool
) -> dict[str, Node]:
    fields: dict[str, Node] = {}
    for key, key_node, value_node in source.items(root, ""):
        if key not in allowed:
            if key in TOP_KEYS:
                source.error(key_node, "", f"{key!r} is only allowed in the top-level policy")
            else:
                source.error(key_node, "", unknown_key(key, allowed))
            continue
        fields[key] = value_node
    version = fields.get("version")
    if version is None:
        source.error(root, "", "missing key 'version' (this format is version 1)")
    elif not is_scalar(version) or source.value(version) != 1:
        source.error(version, "", "unsupported version (this format is version 1)")
    if top_level and "default" not in fields:
        source.error(root, "", "missing key 'default' (allow, deny or hold)")
    return fields


def _include(
    source: Source, node: Node, including: Path, loaded: _Loaded, stack: tuple[Path, ...]
) -> None:
    name = source.value(node) if is_scalar(node) else None
    if not isinstance(name, str) or not name:
        source.error(node, "include", "include entries must be file paths or interlock:NAME")
        return
    if name.startswith(PRESET_PREFIX):
        target = PRESETS_DIR / f"{name[len(PRESET_PREFIX) :]}.yaml"
        available = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        missing = f"unknown preset {name!r} (available: {', '.join(available)})"
    else:
        target = including.parent / name
        missing = f"included file {name!r} not found ({target})"
    if not target.is_file():
        source.error(node, "include", missing)
        return
    resolved = target.resolve()
    if resolved in stack:
        source.error(node, "include", f"include cycle: {name!r} includes itself")
    elif resolved in loaded.seen:
        source.error(node, "include", f"{name!r} is included twice")
    else:
        loaded.seen.add(resolved)
        shown = name if name.startswith(PRESET_PREFIX) else str(target)
        _read_file(target, shown, loaded, f"{target.stem}/", top_level=False, stack=stack)


def _default(source: Source, root: MappingNode) -> tuple[Action | None, str]:
    fields = {key: value for key, _, value in source.items(root, "")}
    action = None
    if "default" in fields:
        value = source.value(fields["default"]) if is_scalar(fields["default"]) else None
        if value in [a.value for a in Action]:
            action = Action(value)
        else:
            source.error(fields["default"], "", "default must be one of allow, deny, hold")
    reason = DEFAULT_REASON
    if "default_reason" in fields:
        value = (
            source.value(fields["default_reason"]) if is_scalar(fields["default_reason"]) else ""
        )
        if isinstance(value, str) and value.strip():
            reason = value.strip()
        else:
            source.error(fields["default_reason"], "", "default_reason must be a non-empty string")
    return action, reason


def _agents(source: Source, root: MappingNode) -> list[Agent]:
    node = next((v for k, _, v in source.items(root, "") if k == "agents"), None)
    if node is None:
        return []
    if not is_map(node):
        source.error(node, "agents", "agents must map a name to {addresses: [...]}")
        return []
    agents = []
    for name, key_node, spec in source.items(node, "agents"):
        where = f"agents.{name}"
        if not NAME_RE.fullmatch(name) or name == ANONYMOUS:
            source.error(key_node, where, f"invalid agent name {name!r}")
            continue
        if not is_map(spec):
            source.error(spec, where, "expected {addresses: [...]}")
            continue
        addresses = []
        for key, k_node, value in source.items(spec, where):
            if key != "addresses":
                source.error(k_node, where, unknown_key(key, ["addresses"]))
                continue
            for item in as_list(value):
                text = str(source.value(item)) if is_scalar(item) else ""
                try:
                    addresses.append(str(ipaddress.ip_network(text, strict=True)))
                except ValueError as exc:
                    source.error(item, where, f"invalid address or CIDR {text!r}: {exc}")
        if not addresses:
            source.error(spec, where, "an agent needs at least one address")
            continue
        agents.append(Agent(name, tuple(addresses)))
    return agents


def _channels(source: Source, root: MappingNode) -> dict[str, Channel]:
    node = next((v for k, _, v in source.items(root, "") if k == "channels"), None)
    if node is None:
        return {}
    if not is_map(node):
        source.error(node, "channels", "channels must map a name to {type: ..., ...}")
        return {}
    channels = {}
    for name, key_node, spec in source.items(node, "channels"):
        where = f"channels.{name}"
        if not NAME_RE.fullmatch(name):
            source.error(key_node, where, f"invalid channel name {name!r}")
            continue
        channel = _channel(source, name, spec, where)
        if channel is not None:
            channels[name] = channel
    return channels


def _channel(source: Source, name: str, spec: Node, where: str) -> Channel | None:
    if not is_map(spec):
        source.error(spec, where, "a channel must be a mapping with a 'type'")
        return None
    fields = {key: (k, v) for key, k, v in source.items(spec, where)}
    kind = source.value(fields["type"][1]) if "type" in fields else None
    if kind not in CHANNEL_KEYS:
        target = fields["type"][1] if "type" in fields else spec
        source.error(target, where, f"type must be one of {', '.join(CHANNEL_KEYS)}")
        return None
    allowed = CHANNEL_KEYS[kind]
    settings: dict[str, object] = {}
    for key, (key_node, value_node) in fields.items():
        if key == "type":
            continue
        if key not in allowed:
            source.error(key_node, where, unknown_key(key, [*allowed, "type"]))
            continue
        value = _channel_value(source, allowed[key].lstrip("!"), key, value_node, where)
        if value is not None:
            settings[key] = value
    for key, kind_spec in allowed.items():
        if kind_spec.startswith("!") and key not in fields:
            source.error(spec, where, f"missing key {key!r} for a {kind} channel")
    if kind == "slack":
        if isinstance(approvers := settings.get("approvers"), dict):  # ID -> person's name
            settings["approvers"], settings["approver_names"] = tuple(approvers), approvers
        mode = settings.get("mode", "socket")
        needed = "app_token" if mode == "socket" else "signing_secret"
        if needed not in settings:
            source.error(spec, where, f"a slack channel in {mode} mode needs {needed!r}")
    return Channel(name, kind, settings)


def _channel_value(source: Source, kind: str, key: str, node: Node, where: str) -> object | None:
    if kind == "secret":
        if not is_map(node):
            source.error(node, where, f"{key}: secrets only by reference: {{env: NAME}} or "
                         "{file: PATH}, never a literal value")  # fmt: skip
            return None
        ref = {k: source.value(v) for k, _, v in source.items(node, where)}
        if len(ref) != 1 or not isinstance(next(iter(ref.values())), str):
            source.error(node, where, f"{key}: expected exactly one of env or file")
            return None
        ((ref_kind, ref_value),) = ref.items()
        if ref_kind not in ("env", "file"):
            source.error(node, where, f"{key}: {unknown_key(ref_kind, ['env', 'file'])}")
            return None
        return SecretRef(**{ref_kind: ref_value})
    if kind == "map":
        if not is_map(node):
            source.error(node, where, f"{key} must be a mapping of strings")
            return None
        return {k: str(source.value(v)) for k, _, v in source.items(node, where)}
    if kind == "users":
        names: dict[str, str] = {}
        if is_map(node):  # {U012AB3CD: alice}: the Slack user is the person `alice` elsewhere
            for user, _, name_node in source.items(node, where):
                name = source.value(name_node) if is_scalar(name_node) else None
                if not isinstance(name, str) or not PERSON_RE.fullmatch(name):
                    source.error(name_node, where, f"{key}: {user} must map to a person's "
                                 "name like alice (the name of their operator token)")  # fmt: skip
                    return None
                names[user] = name
            users: list[object] = list(names)
        else:
            users = [source.value(item) if is_scalar(item) else None for item in as_list(node)]
        bad = [u for u in users if not isinstance(u, str) or not SLACK_USER_RE.fullmatch(u)]
        if bad or not users:
            source.error(node, where, f"{key} must list Slack user IDs like U012AB3CD, or map "
                         "each to a person's name")  # fmt: skip
            return None
        return names or tuple(users)
    value = source.value(node) if is_scalar(node) else None
    if not isinstance(value, str) or not value:
        source.error(node, where, f"{key} must be a non-empty string")
        return None
    if kind == "url" and not value.startswith(("https://", "http://")):
        source.error(node, where, f"{key} must be an http(s) URL")
        return None
    if kind == "mode" and value not in ("socket", "http"):
        source.error(node, where, f"{key} must be socket or http")
        return None
    return value
