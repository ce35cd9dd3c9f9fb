"""Merge an English -> Swahili JSON file into the Swahili gettext catalogue.

Branches that could not touch the .po catalogue kept their new strings in a JSON file of
their own (``portal/translations/<branch>.json``); at merge this folds each one in:

    python scripts/i18n_import_json.py portal/translations/some-branch.json [--replace]

New message ids are added; an id already translated the same way is left alone; an id the
catalogue already translates differently is kept as it is and reported (``--replace``
takes the JSON's wording instead). Placeholders (``{name}``) must be the same on both
sides, or the entry is refused. The JSON file is left in place: delete it once the merge
is committed. Exit status 1 when anything was refused or conflicted without --replace.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

PO = Path(__file__).resolve().parent.parent / "portal" / "translations" / "sw" / \
    "LC_MESSAGES" / "messages.po"
_PLACEHOLDER = re.compile(r"{(\w+)}")


def load(path: Path) -> Catalog:
    """The catalogue at ``path``, or a new Swahili one when there is none yet."""
    if path.exists():
        with path.open("rb") as source:
            return read_po(source, locale="sw")
    catalog = Catalog(locale="sw", project="Kibanda", domain="messages",
                      msgid_bugs_address="", language_team="Swahili")
    return catalog


def save(catalog: Catalog, path: Path) -> None:
    """Write ``catalog`` as a .po file, entries in msgid order (stable diffs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        write_po(out, catalog, width=0, sort_output=True, omit_header=False,
                 include_previous=False)


def merge(catalog: Catalog, entries: dict[str, str], *, replace: bool = False) -> dict:
    """Fold ``entries`` (English -> Swahili) into ``catalog``; say what happened."""
    report = {"added": [], "same": [], "replaced": [], "conflicts": [], "refused": []}
    for english, swahili in entries.items():
        if not isinstance(english, str) or not isinstance(swahili, str) or not english.strip() \
                or not swahili.strip():
            report["refused"].append((english, "empty or not text"))
            continue
        if set(_PLACEHOLDER.findall(english)) != set(_PLACEHOLDER.findall(swahili)):
            report["refused"].append((english, "placeholders differ"))
            continue
        existing = catalog.get(english)
        if existing is None or not existing.string:
            catalog.add(english, swahili)
            report["added"].append(english)
        elif existing.string == swahili:
            report["same"].append(english)
        elif replace:
            existing.string = swahili
            existing.flags.discard("fuzzy")
            report["replaced"].append(english)
        else:
            report["conflicts"].append((english, existing.string, swahili))
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: merge each JSON file given into the catalogue."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON files, English -> Swahili")
    parser.add_argument("--po", type=Path, default=PO, help=f"the catalogue (default {PO})")
    parser.add_argument("--replace", action="store_true",
                        help="take the JSON's wording where the catalogue differs")
    args = parser.parse_args(argv)
    catalog = load(args.po)
    status = 0
    for file in args.files:
        entries = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(entries, dict):
            print(f"{file}: not a JSON object of English -> Swahili", file=sys.stderr)
            return 1
        report = merge(catalog, entries, replace=args.replace)
        print(f"{file}: {len(report['added'])} added, {len(report['same'])} already there, "
              f"{len(report['replaced'])} replaced, {len(report['conflicts'])} conflicting, "
              f"{len(report['refused'])} refused")
        for english, ours, theirs in report["conflicts"]:
            print(f"  conflict: {english!r}\n    catalogue: {ours!r}\n    {file.name}: {theirs!r}",
                  file=sys.stderr)
        for english, why in report["refused"]:
            print(f"  refused ({why}): {english!r}", file=sys.stderr)
        if report["conflicts"] or report["refused"]:
            status = 1
    save(catalog, args.po)
    print(f"wrote {args.po}")
    return status


if __name__ == "__main__":
    sys.exit(main())
