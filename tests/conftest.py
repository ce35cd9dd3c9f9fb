"""Shared fixtures: an app on a real SQLite file, its client and CLI runner."""
from __future__ import annotations

import pytest

from portal import create_app
from portal.models import db


@pytest.fixture
def instance_dir(tmp_path):
    """A fresh instance folder."""
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def app(instance_dir):
    """The portal app on a fresh instance; extra config via the ``app_config`` fixture."""
    application = create_app({"TESTING": True, "INSTANCE_PATH": str(instance_dir)})
    yield application
    for ext in ("kibanda.router", "kibanda.mpesa"):
        obj = application.extensions.get(ext)
        if obj is not None and hasattr(obj, "close"):
            obj.close()
    if not db.is_closed():
        db.close()


@pytest.fixture
def client(app):
    """A test client for ``app``."""
    return app.test_client()
