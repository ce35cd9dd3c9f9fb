"""The Swahili catalogue (gettext .po) and the CLDR formats of dates, months and money."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from portal import i18n
from portal.i18n import (
    catalog, format_date, format_datetime, format_money, format_month, format_number,
    translate,
)
from portal.models import AdminUser, Grant, Purchase, Voucher

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {**DEFAULT_KEYWORDS, "translate": None, "t": None, "N_": None}


def _extracted() -> dict[str, set[str]]:
    """Every text ``pybabel extract`` finds with the project's babel.cfg."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, set[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        text = message if isinstance(message, str) else message[0]
        found.setdefault(text, set()).add(f"{filename}:{lineno}")
    return found


def test_every_text_in_templates_and_code_has_a_swahili_entry():
    found = _extracted()
    assert len(found) > 200  # the extraction really reads the templates, views and printing
    assert "Join the WiFi, then enter this code or scan the QR." in found  # t() on the sheet
    missing = {text: sorted(where) for text, where in found.items() if text not in catalog()}
    assert missing == {}


def test_states_shown_through_a_variable_have_swahili_too():
    # Templates show these as _(p.status), _(v.state|replace("_", " ")): extraction cannot
    # see them, so they are listed from the models.
    states = {Purchase.PUSHING, Purchase.PENDING, Purchase.UNANSWERED, Purchase.PAID,
              Purchase.FAILED, Purchase.EXPIRED, Purchase.REVIEW, Grant.MPESA, Grant.VOUCHER,
              Grant.MANUAL, AdminUser.OWNER, AdminUser.TECHNICIAN}
    states |= {s.replace("_", " ") for s in (Voucher.NEW, Voucher.ON_ROUTER, Voucher.USED,
                                             Voucher.EXPIRED, Voucher.VOID, Grant.PENDING,
                                             Grant.ON_ROUTER, Grant.REMOVED)}
    assert sorted(s for s in states if s not in catalog()) == []


def test_placeholders_survive_translation():
    for english, swahili in catalog().items():
        assert set(re.findall(r"{(\w+)}", english)) == set(re.findall(r"{(\w+)}", swahili)), english
    assert translate("Buy", "en") == "Buy"
    assert translate("The router has the package {name}.", "sw", name="Saa 1") == \
        "Ruta ina kifurushi Saa 1."


def test_one_word_for_the_router_and_one_for_a_code():
    # "Kifaa" is the customer's phone or laptop; the router is "Ruta". A code is "Msimbo".
    assert translate("Router", "sw") == "Ruta"
    assert translate("Code", "sw") == "Msimbo"
    for english, swahili in catalog().items():
        if "router" in english.lower():
            assert "kifaa" not in swahili.lower(), english
        if re.search(r"\bcodes?\b", english, re.I) and "M-Pesa code" not in english:
            assert "namba ya" not in swahili.lower() or "risiti" in swahili.lower(), english


def test_the_catalogue_is_a_po_file_a_translator_can_open():
    with i18n.po_path("sw").open("rb") as source:
        po = read_po(source)
    assert str(po.locale) == "sw"
    assert len(po) > 200
    assert not list(ROOT.glob("portal/translations/*.json"))  # the JSON catalogues are gone


def test_swahili_months_days_and_money():
    moment = datetime(2026, 12, 3, 9, 5)  # stored UTC; 12:05 in Nairobi
    assert format_date(moment, "en") == "3 Dec 2026"
    assert format_date(moment, "sw") == "3 Des 2026"
    assert format_datetime(moment, "sw") == "3 Des 2026 12:05"
    assert format_datetime(datetime(2026, 12, 31, 22, 0), "en") == "1 Jan 2027 01:00"
    assert format_month(date(2026, 8, 1), "sw") == "Agosti 2026"
    assert format_month(date(2026, 8, 1), "en") == "August 2026"
    assert format_money(1500, "sw") == "KES 1,500"
    assert format_number(12345, "en") == "12,345"
    assert format_date(None, "sw") == "" and format_money(None, "en") == ""


def test_import_json_merges_new_strings_and_reports_conflicts(tmp_path):
    po = tmp_path / "messages.po"
    po.write_bytes(i18n.po_path("sw").read_bytes())
    branch = tmp_path / "branch.json"
    branch.write_text(json.dumps({"Print the receipt": "Chapisha risiti",
                                  "Router": "Kipanga njia",
                                  "Hello {name}": "Habari {jina}"}), encoding="utf-8")
    script = ROOT / "scripts" / "i18n_import_json.py"
    run = subprocess.run([sys.executable, str(script), "--po", str(po), str(branch)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1  # one conflict and one refusal to look at
    assert "1 added" in run.stdout and "1 conflicting" in run.stdout
    assert "placeholders differ" in run.stderr
    with po.open("rb") as source:
        merged = {m.id: m.string for m in read_po(source) if m.id}
    assert merged["Print the receipt"] == "Chapisha risiti"
    assert merged["Router"] == "Ruta"  # kept: the catalogue's word wins without --replace
    assert "Hello {name}" not in merged
    assert len(merged) == len(catalog()) + 1


def test_every_activity_the_code_writes_has_words_in_both_languages():
    # An action key missing from ACTIONS shows the owner its raw key ("admin.disable").
    from portal.venue.activity import ACTIONS

    call = re.compile(r'(?:action=|AuditLog\.write\(\w+, |audit\()((?:"[a-z_]+\.[a-z_]+"'
                      r'(?:\s+if\s[^"]*?else\s+)?)+)')
    written = set()
    for path in (ROOT / "portal").rglob("*.py"):
        for match in call.finditer(path.read_text(encoding="utf-8")):
            written |= set(re.findall(r'"([a-z_]+\.[a-z_]+)"', match.group(1)))
    assert {"admin.disable", "admin.enable", "grant.manual"} <= written
    assert written <= set(ACTIONS), sorted(written - set(ACTIONS))
