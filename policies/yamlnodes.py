"""YAML parsing that keeps line and column for every value, so errors can point at them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from policies.errors import Problem

# libyaml's parser keeps marks too and is many times faster on large policies.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Source:
    """One policy file being read: its name for messages and the problems found so far."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    _loader: Any = None

    def parse(self, text: str) -> Node | None:
        """The root node, or None with a problem recorded when the YAML itself is broken."""
        loader = _Loader(text)
        self._loader = loader
        try:
            root: Node | None = loader.get_single_node()
            return root
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            message = f"invalid YAML: {exc.problem or exc.context}"
            self.problems.append(Problem(self.file, line, column, "", message))
        except yaml.YAMLError as exc:
            self.problems.append(Problem(self.file, 1, 1, "", f"invalid YAML: {exc}"))
        return None

    def error(self, node: Node, where: str, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, where, message))

    def warn(self, node: Node, where: str, message: str) -> None:
        mark = node.start_mark
        self.problems.append(
            Problem(self.file, mark.line + 1, mark.column + 1, where, message, warning=True)
        )

    def value(self, node: Node) -> Any:
        """The plain Python value of a scalar (YAML's own typing: ints, bools, strings)."""
        assert self._loader is not None
        return self._loader.construct_object(node, deep=True)

    def items(self, node: Node, where: str) -> Iterator[tuple[str, Node, Node]]:
        """(key, key node, value node) of a mapping; reports duplicate and non-string keys."""
        if not isinstance(node, MappingNode):
            return
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self.value(key_node) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                self.error(key_node, where, "keys must be strings")
                continue
            if key in seen:
                self.error(key_node, where, f"duplicate key {key!r}")
                continue
            seen.add(key)
            yield key, key_node, value_node


def is_map(node: Node) -> bool:
    return isinstance(node, MappingNode)


def is_seq(node: Node) -> bool:
    return isinstance(node, SequenceNode)


def is_scalar(node: Node) -> bool:
    return isinstance(node, ScalarNode)


def as_list(node: Node) -> list[Node]:
    """A scalar or a list: the list form of both."""
    return list(node.value) if isinstance(node, SequenceNode) else [node]
