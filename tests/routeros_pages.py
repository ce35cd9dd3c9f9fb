"""The RouterOS hotspot page language ($(var), $(if)...$(endif)) as the router expands it.

Tests use it to see a rendered hotspot page as a phone would, after the router has filled
in its own variables. Written from the RouterOS reference sheet (hotspot HTML).
"""
from __future__ import annotations

import re


_ROS_TAG = re.compile(r"\$\(([^()]*)\)")
_CONDITION = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:(==|!=)\s*(.*?))?\s*$")


class RosTemplateError(ValueError):
    """A hotspot page whose $(if)/$(elif)/$(else)/$(endif) structure does not balance."""


def _literal(raw: str) -> str:
    """Strip one pair of matching quotes: the manual writes both 'true' and "Location"."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _condition_holds(expression: str, variables: dict) -> bool:
    """Evaluate `x`, `x == y` or `x != y` the way the router does: unset means empty."""
    match = _CONDITION.match(expression)
    if match is None:
        raise RosTemplateError(f"cannot read condition {expression!r}")
    name, operator, raw_value = match.groups()
    actual = str(variables.get(name, ""))
    if operator is None:
        return actual != ""
    expected = _literal(raw_value)
    return actual == expected if operator == "==" else actual != expected


def ros_template_render(text: str, variables: dict) -> str:
    """Render a hotspot page as RouterOS would: $(var), $(if ...), $(elif ...), $(else), $(endif).

    Values are substituted verbatim (the router does not HTML-escape them) and the
    result is not scanned again. http-status / http-header blocks, which set
    response headers on a real router, are treated as ordinary conditions.
    """
    out: list[str] = []
    # One frame per open $(if): [branch_taken, emitting, parent_emitting, seen_else].
    stack: list[list[bool]] = []
    emitting = True
    position = 0
    for match in _ROS_TAG.finditer(text):
        if emitting:
            out.append(text[position:match.start()])
        position = match.end()
        tag = match.group(1).strip()
        keyword, _, rest = tag.partition(" ")
        if keyword == "if":
            holds = emitting and _condition_holds(rest, variables)
            stack.append([holds, holds, emitting, False])
        elif keyword in ("elif", "else", "endif"):
            if not stack:
                raise RosTemplateError(f"$({tag}) without $(if) at offset {match.start()}")
            frame = stack[-1]
            if keyword == "endif":
                stack.pop()
                emitting = frame[2]
                continue
            if frame[3]:
                raise RosTemplateError(f"$({tag}) after $(else) at offset {match.start()}")
            if keyword == "else":
                frame[3] = True
                holds = frame[2] and not frame[0]
            else:
                holds = frame[2] and not frame[0] and _condition_holds(rest, variables)
            frame[0] = frame[0] or holds
            frame[1] = holds
        else:
            if emitting:
                out.append(str(variables.get(tag, "")))
            continue
        emitting = stack[-1][1] if stack else True
    if stack:
        raise RosTemplateError(f"{len(stack)} $(if) block(s) never closed by $(endif)")
    if emitting:
        out.append(text[position:])
    return "".join(out)
