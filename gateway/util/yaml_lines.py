"""Where in a YAML file a key lives, so a validation error can say `file:line`."""

from __future__ import annotations

from typing import Any

import yaml


def line_of(text: str, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest YAML node on `loc` (the key itself for unknown keys)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return 1
    line = 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
