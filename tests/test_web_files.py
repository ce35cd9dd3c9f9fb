"""Files the portal serves for the router: the rendered hotspot directory."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


def text(response) -> str:
    return response.get_data(as_text=True)


def test_hotspot_directory_is_served_for_the_router(site, client):
    login = client.get("/hotspot-html/login.html")
    assert login.status_code == 200 and login.mimetype == "text/html"
    assert site.url in text(login)
    md5 = client.get("/hotspot-html/md5.js")
    assert md5.status_code == 200 and md5.mimetype == "application/javascript"
    assert client.get("/hotspot-html/passwd").status_code == 404
    assert client.get("/hotspot-html/..%2fkibanda.db").status_code == 404
