"""Site settings in the database: secrets encrypted at rest."""
from __future__ import annotations

import pytest

from portal.models import Setting
from portal.venue.settings import get_setting, set_setting


def test_secret_settings_are_encrypted_at_rest(database):
    from cryptography.fernet import Fernet
    key = Fernet.generate_key()
    set_setting("mpesa_passkey", "bfb279f9aa9bdbcf", key, secret=True)
    stored = Setting.get(Setting.key == "mpesa_passkey").value
    assert "bfb279f9aa9bdbcf" not in stored
    assert get_setting("mpesa_passkey", key) == "bfb279f9aa9bdbcf"
    with pytest.raises(ValueError):
        get_setting("mpesa_passkey", Fernet.generate_key())
