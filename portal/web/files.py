"""Files served beside the customer pages: the owner's logo and the router's hotspot files."""
from __future__ import annotations

from flask import Response, current_app, request

from ..errors import ConfigurationError, NotFound
from ..venue.branding import LOGO_TYPES, logo_file
from ..venue.hotspot_files import render_file
from . import current_branding
from .customer import bp  # customer pages' blueprint: same error pages, same language


# -- the owner's logo --------------------------------------------------------------------------

@bp.get("/branding/logo")
def branding_logo():
    """The logo the owner uploaded (PNG or JPEG), cached for as long as its version lasts."""
    site = current_branding()
    path = (logo_file(site["logo_type"], current_app.instance_path)
            if site["logo_type"] else None)
    if path is None:
        raise NotFound("no logo uploaded")
    response = Response(path.read_bytes(), mimetype=LOGO_TYPES[site["logo_type"]])
    # Pages link ?v=<version>: a new logo is a new URL, so the old one may be kept for ever.
    current = request.args.get("v") == site["logo_version"]
    response.headers["Cache-Control"] = ("public, max-age=31536000, immutable" if current
                                         else "no-cache")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# -- the router's hotspot directory ---------------------------------------------------------

@bp.get("/hotspot-html/<name>")
def hotspot_file(name: str):
    """One file of the router's hotspot directory, rendered for this site."""
    site = current_branding()
    try:
        body = render_file(name, portal_url=str(current_app.config.get("PORTAL_URL") or ""),
                           site_name=site["name"], primary_color=site["color"])
    except FileNotFoundError as exc:
        raise NotFound(f"hotspot file {name}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"hotspot files: {exc}") from exc
    if name.endswith(".js"):
        mimetype = "application/javascript"
    elif name.endswith(".txt"):
        mimetype = "text/plain"
    else:
        mimetype = "text/html"
    return Response(body, mimetype=mimetype)
