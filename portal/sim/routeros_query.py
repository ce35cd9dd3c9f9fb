"""RouterOS print queries in the emulator: ``?`` words evaluated on a stack.

``?name`` (has), ``?-name`` (lacks), ``?name=x`` / ``?=name=x`` (equals), ``?<name=x`` and
``?>name=x`` (less, greater: durations and integers compare as numbers), and ``?#ops``
stack operations (``!`` negate, ``&`` and, ``|`` or, ``.`` duplicate, digits index). The
row is matched when every value left on the stack is true.
"""
from __future__ import annotations

from portal.sim.routeros_menus import Menu, SimTrap, normalize, render_value


def row_matches(menu: Menu, row: dict, queries: list[str], v7: bool) -> bool:
    """Evaluate RouterOS print query words against one rendered row."""
    stack: list[bool] = []
    for word in queries:
        if word.startswith("?#"):
            stack = apply_ops(stack, word[2:])
        elif word.startswith("?-"):
            stack.append(word[2:] not in row)
        elif word[:2] in ("?<", "?>"):
            name, _, value = word[2:].partition("=")
            stack.append(_compare(menu, row, name, value, word[1]))
        else:
            body = word[2:] if word.startswith("?=") else word[1:]
            name, eq, value = body.partition("=")
            if not eq:
                stack.append(name in row)
            else:
                stack.append(_equal(menu, row, name, value, v7))
    return all(stack)


def _equal(menu: Menu, row: dict, name: str, value: str, v7: bool) -> bool:
    if name not in row:
        return value == ""
    if row[name] == value:
        return True
    spec = menu.fields.get(name)
    if spec is None or spec.kind not in ("bool", "duration"):
        return False
    try:
        # the value in another spelling: "?disabled=yes" finds "true" on v7, "?x=3600" "1h"
        return render_value(spec, normalize(spec, name, value), v7) == row[name]
    except SimTrap:
        return False


def _compare(menu: Menu, row: dict, name: str, value: str, op: str) -> bool:
    if name not in row:
        return False
    left, right = row[name], value
    spec = menu.fields.get(name)
    try:
        if spec is not None and spec.kind == "duration":
            left, right = (int(normalize(spec, name, x)) for x in (left, right))
        elif left.lstrip("-").isdigit() and right.lstrip("-").isdigit():
            left, right = int(left), int(right)
    except (SimTrap, ValueError):
        left, right = row[name], value
    return left < right if op == "<" else left > right


def apply_ops(stack: list[bool], ops: str) -> list[bool]:
    """RouterOS ``?#`` stack operations: ``!`` ``&`` ``|`` ``.`` and digit indexes (top is 0)."""
    stack = list(stack)
    i = 0
    try:
        while i < len(ops):
            ch = ops[i]
            if ch.isdigit():
                j = i
                while j < len(ops) and ops[j].isdigit():
                    j += 1
                value = stack[-1 - int(ops[i:j])]
                if j == len(ops):
                    # an index at the end of the word replaces the whole stack
                    stack = [value]
                else:
                    stack.append(value)
                    if ops[j] == ".":
                        j += 1  # "." after an index does nothing
                i = j
                continue
            if ch == "!":
                stack[-1] = not stack[-1]
            elif ch == "&":
                right, left = stack.pop(), stack.pop()
                stack.append(left and right)
            elif ch == "|":
                right, left = stack.pop(), stack.pop()
                stack.append(left or right)
            elif ch == ".":
                stack.append(stack[-1])
            else:
                raise SimTrap(f"invalid query operation {ch!r}", 1)  # UNCONFIRMED text
            i += 1
    except IndexError:
        raise SimTrap("invalid query: stack is empty", 1) from None  # UNCONFIRMED text
    return stack
