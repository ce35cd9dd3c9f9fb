"""RouterOS scripts (.rsc) from the ``provisioning/`` templates, and back into API commands.

A template line is one whole command (``/ip hotspot profile add name=kibanda ...``), so
the script a technician imports by hand and the commands ``kibanda provision`` sends
over the API are the same text: ``render`` fills in the site, ``parse`` turns each line
into a ``ScriptCommand`` (menu, verb, the item it names, attributes). Markers:
``{{NAME}}`` is a site value; a line starting ``{{v7}}``/``{{v6}}`` is kept only for
that RouterOS major version; ``{{envlists}}``/``{{envs}}`` pick the container
environment syntax (RouterOS 7.21 renamed it).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


def _locate_templates() -> Path:
    """``provisioning/`` beside the package in a checkout, else inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "provisioning", package / "provisioning_files"):
        if candidate.is_dir():
            return candidate
    return package.parent / "provisioning"


TEMPLATE_DIR = _locate_templates()
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
_LINE_GATE = re.compile(r"^\{\{(v6|v7|envlists|envs)\}\}")
#: What may be written into a script unquoted (names, addresses, lists, URLs).
_BARE = re.compile(r"[A-Za-z0-9._:/,@+*\-]+")


@dataclass(frozen=True)
class ScriptCommand:
    """One command line: ``/ip service set telnet disabled=yes``."""

    menu: str                     # API path, e.g. /ip/service
    verb: str                     # add, set, sign, fetch ...
    item: str = ""                # the item a set/sign names, e.g. telnet
    attrs: dict = field(default_factory=dict)
    line: int = 0

    @property
    def text(self) -> str:
        """The command as a script line (the password hidden)."""
        words = [self.menu.replace("/", " ").strip(), self.verb]
        if self.item:
            words.append(self.item)
        for name, value in self.attrs.items():
            shown = "********" if name == "password" else value
            words.append(f"{name}={quote(shown)}")
        return "/" + " ".join(words)


def quote(value: str) -> str:
    """A value as a script writes it: bare when safe, else in double quotes, escaped."""
    value = str(value)
    if value and _BARE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def render(template: str, values: dict[str, str], gates: set[str]) -> str:
    """Fill ``{{NAME}}`` with ``values`` (already script-safe) and keep the gated lines."""
    lines = []
    for line in (TEMPLATE_DIR / template).read_text(encoding="utf-8").splitlines():
        gate = _LINE_GATE.match(line)
        if gate:
            if gate.group(1) not in gates:
                continue
            line = line[gate.end():]

        def fill(match: re.Match) -> str:
            name = match.group(1)
            if name not in values:
                raise KeyError(f"{template}: no value for {{{{{name}}}}}")
            return str(values[name])

        lines.append(_PLACEHOLDER.sub(fill, line))
    return "\n".join(lines) + "\n"


def parse(script: str) -> list[ScriptCommand]:
    """The commands of a rendered script (comments and blank lines skipped).

    Only the shape the templates use: ``/menu words verb [item] name=value ...``.
    """
    commands = []
    for number, raw in enumerate(script.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line.replace("\\$", "$"), posix=True)
        path = [words[0].lstrip("/")] if words[0] != "/" else []
        index = 1
        while index < len(words) and "=" not in words[index] and words[index] not in _VERBS:
            path.append(words[index])
            index += 1
        if index >= len(words) or words[index] not in _VERBS:
            raise ValueError(f"line {number}: no command in {line!r}")
        verb = words[index]
        item = ""
        attrs: dict[str, str] = {}
        for word in words[index + 1:]:
            name, sep, value = word.partition("=")
            if not sep:
                item = word
                continue
            attrs[name] = value
        menu = "/" + "/".join(part for chunk in path for part in chunk.split("/") if part)
        commands.append(ScriptCommand(menu, verb, item, attrs, number))
    return commands


_VERBS = {"add", "set", "sign", "fetch", "remove", "enable", "disable", "start"}
