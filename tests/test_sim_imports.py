"""The emulators are a second implementation of the other side: they share no client code."""
import ast
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "portal" / "sim"
ALLOWED_FROM_PORTAL = {"portal.timeutil"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved against portal.sim."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "portal.sim".split(".")[: 2 - (node.level - 1)]
                found.add(".".join(base + ([node.module] if node.module else [])))
            else:
                found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(SIM.glob("*.py")), ids=lambda p: p.name)
def test_emulator_modules_import_only_timeutil_from_the_portal(path):
    foreign = {name for name in imported_modules(path)
               if name.split(".")[0] == "portal" and not name.startswith("portal.sim")
               and name not in ALLOWED_FROM_PORTAL}
    assert foreign == set()


@pytest.mark.parametrize("path", sorted(SIM.glob("*.py")), ids=lambda p: p.name)
def test_only_the_commands_module_imports_click(path):
    uses_click = any(name.split(".")[0] == "click" for name in imported_modules(path))
    assert uses_click == (path.name == "commands.py")
