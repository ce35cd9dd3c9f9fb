"""The router's hotspot pages: per-site rendering, the RouterOS page language, md5.js, real browsers."""
from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
import subprocess
import threading
import time
import urllib.parse
import zipfile
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from routeros_pages import RosTemplateError, ros_template_render
from system_tools import require

from portal.venue.hotspot_files import (
    HOTSPOT_DIR,
    HOTSPOT_FILES,
    ROUTER_ERRORS,
    render_directory,
    render_file,
    render_zip,
    router_error_key,
    router_error_message,
)

PORTAL = "http://10.5.50.2:8080"
SITE = "Mama Njeri Cafe"
# As RouterOS prints them into the page: backslash-octal text, decoded by JavaScript.
CHAP_ID = r"\371"
CHAP_CHALLENGE = r"\357\015\330\013\021\234\145\245\303\253\142\246\133\175\375\316"

ROUTER_VALUES = {
    "mac": "AA:BB:CC:DD:EE:FF",
    "ip": "10.5.50.23",
    "link-login-only": "http://10.5.50.1/login",
    "link-orig": "http://example.com/news?a=1&b=2",
    "error": "invalid username or password",
}

# Every $(variable) the pages may use: the router's documented names only, so a
# typo (which the router would silently print as nothing) fails here.
KNOWN_ROUTER_VARIABLES = {
    "link-login", "link-login-only", "link-orig", "link-orig-esc", "link-status",
    "link-logout", "link-redirect", "mac", "mac-esc", "ip", "username", "error",
    "error-orig", "chap-id", "chap-challenge", "session-time-left", "uptime",
    "bytes-in-nice", "bytes-out-nice", "remain-bytes-total", "refresh-timeout",
    "refresh-timeout-secs", "http-status", "http-header",
}


class FormCollector(HTMLParser):
    """Collects forms (action, method, named fields), script tags and visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: dict[str, dict] = {}
        self.scripts: list[dict] = []
        self.text: list[str] = []
        self.title = ""
        self._form = None
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._form = {"action": attrs.get("action"), "method": attrs.get("method"),
                          "fields": {}, "buttons": []}
            self.forms[attrs.get("name")] = self._form
        elif tag == "input" and self._form is not None:
            self._form["fields"][attrs.get("name")] = attrs.get("value", "")
        elif tag in ("script", "title", "button", "style"):
            self._in = tag
            if tag == "script":
                self.scripts.append({"src": attrs.get("src"), "body": ""})

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts[-1]["body"] += data
        elif self._in == "title":
            self.title += data
        elif self._in == "button" and self._form is not None:
            self._form["buttons"].append(data.strip())
        if self._in not in ("script", "style"):
            self.text.append(data)


def parse(page: str) -> FormCollector:
    """Parse a page the way a test reads it."""
    collector = FormCollector()
    collector.feed(page)
    collector.close()
    return collector


def router_page(name: str, **values) -> str:
    """A page as the phone receives it: rendered for the site, then expanded by the router."""
    text = render_file(name, PORTAL, SITE).decode("utf-8")
    return ros_template_render(text, values)


# --- the directory ------------------------------------------------------------------------

def test_listed_files_are_exactly_the_shipped_files():
    # Files starting with "_" are partials the renderer inserts, never uploaded themselves.
    shipped = sorted(p.name for p in HOTSPOT_DIR.iterdir()
                     if p.is_file() and not p.name.startswith("_"))
    assert sorted(HOTSPOT_FILES) == shipped
    assert {"login.html", "alogin.html", "status.html", "logout.html", "error.html",
            "redirect.html", "md5.js"} <= set(HOTSPOT_FILES)


@pytest.mark.parametrize("name", HOTSPOT_FILES)
def test_every_file_is_small_offline_and_fully_filled(name):
    body = render_file(name, PORTAL, SITE)
    assert len(body) < 10 * 1024
    text = body.decode("utf-8")
    assert "{{" not in text and "}}" not in text
    # Nothing may come from the internet: the walled garden blocks it.
    assert re.findall(r"https?://[^\s\"'<>]*", text.replace(PORTAL, "")) == []


@pytest.mark.parametrize("name", [n for n in HOTSPOT_FILES if n != "md5.js"])
def test_router_syntax_balances_and_names_real_variables(name):
    raw = (HOTSPOT_DIR / name).read_text(encoding="utf-8")
    ros_template_render(raw, {})  # raises on an unbalanced $(if)
    used = set()
    for tag in re.findall(r"\$\(([^()]*)\)", raw):
        words = tag.split()
        if words[0] in ("if", "elif"):
            used.add(words[1])
        elif words[0] not in ("else", "endif"):
            used.add(tag)
    assert used <= KNOWN_ROUTER_VARIABLES, used - KNOWN_ROUTER_VARIABLES


@pytest.mark.parametrize("name", [n for n in HOTSPOT_FILES if n.endswith(".html")])
def test_pages_say_things_in_english_and_swahili(name):
    text = render_file(name, PORTAL, SITE).decode("utf-8")
    assert re.search(r"Continue|Log in|online|logged out|went wrong", text)
    assert re.search(r"Endelea|Ingia|Uko mtandaoni|Umetoka|hitilafu", text, re.I)


# --- login.html -----------------------------------------------------------------------------

def test_login_sends_the_phone_to_the_portal_with_the_router_values():
    page = parse(router_page("login.html", **ROUTER_VALUES, **{"chap-id": CHAP_ID,
                                                                "chap-challenge": CHAP_CHALLENGE}))
    portal = page.forms["portal"]
    assert portal["action"] == PORTAL + "/"
    assert portal["method"] == "post"
    assert portal["fields"] == ROUTER_VALUES
    assert portal["buttons"] == ["Continue / Endelea"]
    # The router's error is shown to the customer too.
    assert "invalid username or password" in "".join(page.text)


def test_code_fallback_uses_chap_when_the_router_offers_it():
    page = parse(router_page("login.html", **ROUTER_VALUES, **{"chap-id": CHAP_ID,
                                                                "chap-challenge": CHAP_CHALLENGE}))
    for name in ("login", "sendin"):
        form = page.forms[name]
        assert form["action"] == ROUTER_VALUES["link-login-only"]
        assert form["method"] == "post"
        assert form["fields"]["dst"] == ROUTER_VALUES["link-orig"]
        assert form["fields"]["popup"] == "false"
        assert {"username", "password"} <= set(form["fields"])
    assert "Una msimbo?" in "".join(page.text)
    assert [s["src"] for s in page.scripts if s["src"]] == ["/md5.js"]
    inline = "".join(s["body"] for s in page.scripts)
    assert f"hexMD5('{CHAP_ID}' + code + '{CHAP_CHALLENGE}')" in inline
    assert "f.password.value = code;" not in inline


def test_code_fallback_is_plain_without_chap():
    page = parse(router_page("login.html", **ROUTER_VALUES))
    assert [s["src"] for s in page.scripts if s["src"]] == []
    inline = "".join(s["body"] for s in page.scripts)
    assert "hexMD5" not in inline
    assert "f.password.value = code;" in inline
    assert page.forms["sendin"]["action"] == ROUTER_VALUES["link-login-only"]
    assert page.forms["login"]["fields"]["dst"] == ROUTER_VALUES["link-orig"]


# --- the other pages ------------------------------------------------------------------------

def test_status_shows_time_and_data_and_offers_logout():
    values = {"session-time-left": "2h13m", "uptime": "47m2s", "bytes-out-nice": "312.4 MiB",
              "bytes-in-nice": "20.1 MiB", "remain-bytes-total": "---",
              "link-logout": "http://10.5.50.1/logout", "mac-esc": "AA%3ABB", "ip": "10.5.50.23"}
    page = parse(router_page("status.html", **values))
    shown = " ".join(" ".join(page.text).split())
    for value in ("2h13m", "47m2s", "312.4 MiB", "20.1 MiB", "Muda uliobaki"):
        assert value in shown
    assert "Data left" not in shown  # '---' means no data cap
    logout = page.forms["logout"]
    assert logout["action"] == "http://10.5.50.1/logout"
    assert logout["fields"] == {"erase-cookie": "on"}
    assert "Data left" in router_page("status.html", **{**values, "remain-bytes-total": "5000"})


def test_alogin_continues_to_the_original_page_or_the_portal():
    online = router_page("alogin.html", **{"link-orig": "http://example.com/"})
    assert "You are online" in online and "Uko mtandaoni" in online
    assert 'href="http://example.com/"' in online
    assert f'href="{PORTAL}/"' in router_page("alogin.html")


def test_error_page_shows_the_router_error():
    page = router_page("error.html", error="no more sessions", **{"link-login": "http://10.5.50.1/login"})
    assert "no more sessions" in page and 'href="http://10.5.50.1/login"' in page


def errors_txt() -> dict[str, str]:
    """Kibanda's errors.txt as {key: message}."""
    lines = (HOTSPOT_DIR / "errors.txt").read_text(encoding="utf-8").splitlines()
    return {key.strip(): message.strip() for key, sep, message in
            (line.partition("=") for line in lines if not line.startswith("#")) if sep}


def test_every_router_error_is_recognised_as_the_router_fills_it_in():
    messages = errors_txt()
    assert set(messages) - {"radius-reply"} == set(ROUTER_ERRORS)
    for key, message in messages.items():
        filled = ros_template_render(message, {"username": "84120037", "ip": "10.5.50.23",
                                               "error-orig": "no ip pool"})
        if key == "radius-reply":  # whatever a RADIUS server said: never repeated
            assert router_error_key(filled) is None
            continue
        assert router_error_key(filled) == key, filled
        english, swahili = ROUTER_ERRORS[key]
        assert router_error_message(filled, "en") == english
        assert router_error_message(filled, "sw") == swahili
        assert "84120037" not in english + swahili


# --- the renderer ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../pyproject.toml", "/etc/passwd", "login.html/../md5.js",
                                  "", "nope.html", "..", "LOGIN.HTML"])
def test_names_outside_the_directory_are_refused(name):
    with pytest.raises(FileNotFoundError):
        render_file(name, PORTAL, SITE)


def test_site_values_are_html_escaped():
    text = render_file("login.html", PORTAL, "<script>alert(1)</script> & Co").decode()
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in text
    assert parse(text).title == "<script>alert(1)</script> & Co WiFi"


@pytest.mark.parametrize("name", [n for n in HOTSPOT_FILES if n.endswith(".html")])
def test_router_syntax_in_the_venue_name_is_shown_not_run_by_the_router(name):
    venue = "Free $(link-login-only) $(if chap-id)WiFi $ 5"
    text = render_file(name, PORTAL, venue).decode()
    assert "$(link-login-only) $(if" not in text
    page = ros_template_render(text, ROUTER_VALUES)  # no unbalanced $(if from the name
    assert parse(page).title == venue + " WiFi"  # what the phone shows: the name as typed
    assert f"Free {ROUTER_VALUES['link-login-only']}" not in page


@pytest.mark.parametrize("kwargs", [
    {"portal_url": "javascript:alert(1)"},
    {"portal_url": 'http://x" onmouseover="y'},
    {"primary_color": "red}</style><script>x()</script>"},
    {"site_name": "  "},
])
def test_unsafe_site_values_are_rejected(kwargs):
    args = {"portal_url": PORTAL, "site_name": SITE, "primary_color": "#0a7d4f", **kwargs}
    with pytest.raises(ValueError):
        render_file("login.html", **args)


def test_color_and_router_markers_survive_rendering():
    text = render_file("login.html", PORTAL + "/", SITE, primary_color="#c0392b").decode()
    assert "background:#c0392b" in text
    assert f'action="{PORTAL}/"' in text  # trailing slash not doubled
    assert "$(if chap-id)" in text and "$(link-login-only)" in text


def test_directory_and_zip_hold_the_same_rendered_files(tmp_path):
    written = render_directory(tmp_path / "hs", PORTAL, SITE)
    assert sorted(p.name for p in written) == sorted(HOTSPOT_FILES)
    with zipfile.ZipFile(io.BytesIO(render_zip(PORTAL, SITE))) as archive:
        assert sorted(archive.namelist()) == sorted(HOTSPOT_FILES)
        for name in HOTSPOT_FILES:
            expected = render_file(name, PORTAL, SITE)
            assert (tmp_path / "hs" / name).read_bytes() == expected
            assert archive.read(name) == expected


# --- the RouterOS page language -------------------------------------------------------------

def test_ros_conditionals_follow_the_manual():
    page = ("A$(if username == john)J$(elif username == 'dizzy')D$(elif ip)I$(else)E$(endif)Z"
            "$(if chap-id)[$(if x == \"1\")one$(else)other$(endif)]$(endif)")
    assert ros_template_render(page, {"username": "john"}) == "AJZ"
    assert ros_template_render(page, {"username": "dizzy", "ip": "1"}) == "ADZ"
    assert ros_template_render(page, {"ip": "10.0.0.9"}) == "AIZ"
    assert ros_template_render(page, {"chap-id": r"\1", "x": "1"}) == "AEZ[one]"
    assert ros_template_render(page, {"chap-id": r"\1"}) == "AEZ[other]"


def test_ros_values_are_inserted_verbatim_and_not_rescanned():
    assert ros_template_render("<$(a)>", {"a": "$(b) & <i>", "b": "no"}) == "<$(b) & <i>>"
    assert ros_template_render("[$(missing)]", {}) == "[]"


@pytest.mark.parametrize("page", ["$(if a)x", "x$(endif)", "$(else)", "$(if a)$(else)$(elif b)$(endif)"])
def test_ros_unbalanced_blocks_are_errors(page):
    with pytest.raises(RosTemplateError):
        ros_template_render(page, {"a": "1"})


# --- md5.js ---------------------------------------------------------------------------------

# JavaScript string literals, exactly as they would sit in the page source.
MD5_CASES = [
    r"''",
    r"'abc'",
    r"'\371' + 'V7K2QX' + '\357\015\330\013\021\234\145\245\303\253\142\246\133\175\375\316'",
    r"'\000' + 'pässwörd' + '\377\200\001'",
    r"'" + "x" * 55 + "'",
    r"'" + "y" * 56 + "'",
    r"'" + "z" * 64 + "'",
    r"'" + "The quick brown fox jumps over the lazy dog " * 7 + "'",
]


def python_md5(js_literal: str) -> str:
    """MD5 of the byte string a JS literal stands for (one byte per char, like md5.js)."""
    parts = re.findall(r"'((?:[^'\\]|\\.)*)'", js_literal)
    text = "".join(codecs.decode(p.encode("latin-1"), "unicode_escape")
                   if "\\" in p else p for p in parts)
    return hashlib.md5(bytes(ord(ch) & 0xFF for ch in text)).hexdigest()


def test_md5_js_matches_python():
    md5_js = (HOTSPOT_DIR / "md5.js").read_text(encoding="utf-8")
    program = md5_js + "\nconsole.log(JSON.stringify([" + ",".join(
        f"hexMD5({case})" for case in MD5_CASES) + "]));"
    result = subprocess.run([require("node"), "-e", program], capture_output=True, text=True,
                            timeout=30, check=True)
    assert json.loads(result.stdout) == [python_md5(case) for case in MD5_CASES]


# --- in a real browser ----------------------------------------------------------------------

class Recorder(BaseHTTPRequestHandler):
    """A tiny stand-in for the router or the portal: serves pages, records POSTed forms."""

    pages: dict[str, bytes] = {}
    posts: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.pages.get(urllib.parse.urlsplit(self.path).path)
        if body is None:
            self.send_error(404)
            return
        kind = "application/javascript" if self.path.endswith(".js") else "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        self.posts.append((self.path, form))
        body = b"<!doctype html><title>received</title><p>received</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Keep test output quiet."""


def serve(pages: dict[str, bytes]):
    """Start a recorder on a free port; return (server, base URL, posts list)."""
    handler = type("Handler", (Recorder,), {"pages": pages, "posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}", handler.posts


@pytest.fixture
def hotspot():
    """A fake router serving the login page (CHAP on) and a fake portal, on real sockets."""
    portal, portal_url, portal_posts = serve({})
    router_pages: dict[str, bytes] = {}
    router, router_url, router_posts = serve(router_pages)
    values = {**ROUTER_VALUES, "link-login-only": router_url + "/login", "error": "",
              "chap-id": CHAP_ID, "chap-challenge": CHAP_CHALLENGE}
    login = render_file("login.html", portal_url, SITE).decode()
    router_pages["/login"] = ros_template_render(login, values).encode()
    router_pages["/md5.js"] = render_file("md5.js", portal_url, SITE)
    yield {"router": router_url, "portal": portal_url, "router_posts": router_posts, "portal_posts": portal_posts,
           "values": values}
    for server in (router, portal):
        server.shutdown()
        server.server_close()


def wait_for(posts, count=1):
    """Wait until a fake server has recorded `count` POSTs."""
    deadline = time.monotonic() + 10
    while len(posts) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return posts


def test_browser_is_sent_on_to_the_portal_then_can_log_in_with_a_code(browser, hotspot):
    page = browser.new_page()
    page.goto(hotspot["router"] + "/login")
    (path, form), = wait_for(hotspot["portal_posts"])
    expected = {k: hotspot["values"][k] for k in ("mac", "ip", "link-login-only", "link-orig", "error")}
    assert path == "/" and form == expected
    page.wait_for_url(hotspot["portal"] + "/")
    page.wait_for_load_state()

    # Back on the router's page moments later (portal down, say): no second bounce,
    # and the code form logs in over CHAP without ever sending the code itself.
    page.go_back()
    page.fill("#code", "  V7K2QX ")
    page.click("text=Log in / Ingia")
    (path, form), = wait_for(hotspot["router_posts"])
    assert len(hotspot["portal_posts"]) == 1
    chap = python_md5(f"'{CHAP_ID}' + 'V7K2QX' + '{CHAP_CHALLENGE}'")
    assert path == "/login"
    assert form == {"username": "V7K2QX", "password": chap,
                    "dst": ROUTER_VALUES["link-orig"], "popup": "false"}


def test_browser_without_javascript_still_reaches_portal_and_code_login(browser, hotspot):
    page = browser.new_page(java_script_enabled=False)
    page.goto(hotspot["router"] + "/login")
    time.sleep(0.3)
    assert hotspot["portal_posts"] == []  # nothing happens on its own
    assert page.is_visible("text=Una msimbo?")
    page.fill("#code", "4839AB")
    page.fill("#again", "4839AB")
    page.click("text=Log in / Ingia")
    (path, form), = wait_for(hotspot["router_posts"])
    assert form == {"username": "4839AB", "password": "4839AB",
                    "dst": ROUTER_VALUES["link-orig"], "popup": "false"}

    page.goto(hotspot["router"] + "/login")
    page.click("text=Continue / Endelea")
    (path, form), = wait_for(hotspot["portal_posts"])
    assert form["mac"] == ROUTER_VALUES["mac"] and form["link-orig"] == ROUTER_VALUES["link-orig"]


def test_every_page_gets_the_shared_head_with_the_site_colour():
    for name in ("login.html", "alogin.html", "status.html", "logout.html", "error.html"):
        page = render_file(name, PORTAL, SITE, primary_color="#8a1538").decode("utf-8")
        assert "{{" not in page, name
        assert page.count('<meta charset="utf-8">') == 1, name
        assert page.index('<meta charset="utf-8">') < page.index("<title>"), name
        assert "h1{margin:4px 0 12px;font-size:22px;color:#8a1538}" in page, name
