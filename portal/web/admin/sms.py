"""Admin page: the SMS Kibanda sent (state, cost, why one failed) and the owner's SMS
choices (their phone, the daily summary's time, reminders, alerts), owners only."""
from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, url_for

from ...clients import sms_configured
from ...errors import ValidationError
from ...ledger.sms import delivery_url
from ...phone import display_phone
from ...timeutil import utcnow
from ...venue import sms
from ..i18n import current_language
from ..i18n import gettext as _
from . import OWNER, bp, client_address, login_required


def _page(values: dict, error: ValidationError | None = None):
    lang = current_language()
    messages = [(message, sms.failure_words(message, lang)) for message in sms.recent()]
    return render_template(
        "admin/sms.html", values=values, messages=messages, totals=sms.totals(utcnow()),
        shillings=sms.shillings, masked=lambda number: display_phone(number, "masked"),
        configured=sms_configured(current_app.config),
        delivery_url=delivery_url(current_app.config),
        error=error.message_for(lang) if error else None,
        error_field=error.field if error else None), 200 if error is None else 400


@bp.route("/sms", methods=["GET", "POST"])
@login_required(OWNER)
def sms_page():
    """The messages sent, their cost, and the owner's SMS choices."""
    if request.method == "GET":
        choices = sms.owner_choices(current_app.config)
        return _page({"phone": choices.phone, "language": choices.language,
                      "summary_time": choices.summary_time, "reminders": choices.reminders,
                      "alerts": choices.alerts})
    values = {"phone": request.form.get("phone", "")[:40],
              "language": request.form.get("language", "en")[:2],
              "summary_time": request.form.get("summary_time", "")[:10],
              "reminders": request.form.get("reminders") == "on",
              "alerts": request.form.get("alerts") == "on"}
    try:
        sms.save_choices(g.admin.username, client_address(), **values)
    except ValidationError as exc:
        return _page(values, exc)
    flash(_("Saved."), "ok")
    return redirect(url_for("admin.sms_page"))
