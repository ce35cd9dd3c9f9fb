"""Admin accounts: sign-in lockout and its end, called directly."""
from __future__ import annotations

from datetime import timedelta

from helpers import OWNER_NAME, OWNER_PASSWORD, make_users

from portal.errors import KibandaError
from portal.models import LoginFailure, db
from portal.timeutil import utcnow
from portal.venue import accounts


def test_lock_ends_after_fifteen_minutes_and_success_clears_failures(app):
    make_users(app)
    start = utcnow()
    with app.app_context(), db.connection_context():
        for i in range(5):
            try:
                accounts.authenticate(OWNER_NAME, "bad", "10.0.0.9", start + timedelta(seconds=i))
            except KibandaError:
                pass
        until = accounts.locked_until(OWNER_NAME, "10.0.0.9", start + timedelta(minutes=1))
        assert until == start + timedelta(seconds=4, minutes=15)
        try:
            accounts.authenticate(OWNER_NAME, OWNER_PASSWORD, "10.0.0.9",
                                  start + timedelta(minutes=14))
            raise AssertionError("locked user got in")
        except accounts.SignInLocked as exc:
            assert "Try again after" in exc.message_for("en")
        user = accounts.authenticate(OWNER_NAME, OWNER_PASSWORD, "10.0.0.9",
                                     start + timedelta(minutes=15, seconds=5))
        assert user.username == OWNER_NAME
        assert LoginFailure.select().where(LoginFailure.address == "10.0.0.9").count() == 0
