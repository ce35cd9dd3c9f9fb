"""The instance folder and layered configuration."""
from __future__ import annotations

import os
import stat

from portal.config import ensure_instance, load_settings, write_config_values


def test_instance_keys_are_private_and_never_overwritten(tmp_path):
    path = tmp_path / "inst"
    created = ensure_instance(path)
    assert set(created) == {"secret_key", "fernet.key", "callback_secret"}
    for name in created:
        assert stat.S_IMODE(os.stat(path / name).st_mode) == 0o600
    before = (path / "fernet.key").read_bytes()
    assert ensure_instance(path) == []
    assert (path / "fernet.key").read_bytes() == before


def test_configuration_layers_defaults_file_environment_test(tmp_path):
    ensure_instance(tmp_path)
    assert load_settings(tmp_path, environ={})["ROUTER_PORT"] == 8728
    write_config_values(tmp_path, {"router_port": 8730, "site_name": "Mama Njeri Cafe"})
    settings = load_settings(tmp_path, environ={})
    assert settings["ROUTER_PORT"] == 8730 and settings["SITE_NAME"] == "Mama Njeri Cafe"
    settings = load_settings(tmp_path, environ={"KIBANDA_ROUTER_PORT": "8731",
                                                "KIBANDA_ROUTER_SSL": "yes"})
    assert settings["ROUTER_PORT"] == 8731 and settings["ROUTER_SSL"] is True
    settings = load_settings(tmp_path, {"ROUTER_PORT": 1}, environ={"KIBANDA_ROUTER_PORT": "8731"})
    assert settings["ROUTER_PORT"] == 1
    assert settings["DATABASE"] == str(tmp_path / "kibanda.db")
    assert len(settings["SECRET_KEY"]) == 64
