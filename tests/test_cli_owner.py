"""``kibanda owner reset-password``: a forgotten owner password recovered at the console,
generated and printed once, or typed at a terminal; the old one and its sessions end."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from helpers import KIBANDA

from portal.crypto import check_password
from portal.models import AdminUser, AuditLog, db, init_db


def owner_row(instance, name: str = "owner") -> AdminUser:
    init_db(str(instance / "kibanda.db"))
    with db.connection_context():
        return AdminUser.get(AdminUser.username == name)


def test_reset_password_prints_a_new_generated_password_and_ends_sessions(kibanda, tmp_path):
    assert kibanda("init", "--password", "the-old-password").exit_code == 0
    before = owner_row(tmp_path / "site")
    result = kibanda("owner", "reset-password")
    assert result.exit_code == 0, result.output
    password = result.output.split("password:")[1].split()[0]
    assert len(password) >= 10 and "not shown again" in result.output
    after = owner_row(tmp_path / "site")
    assert check_password(after.password_hash, password)
    assert not check_password(after.password_hash, "the-old-password")
    assert after.session_version == before.session_version + 1  # every session is over
    with db.connection_context():
        assert AuditLog.select().where(AuditLog.action == "admin.password_reset").count() == 1
    # Each run gives another password: nothing is a default.
    again = kibanda("owner", "reset-password").output.split("password:")[1].split()[0]
    assert again != password


def test_reset_password_names_the_owner_when_there_are_several(kibanda, tmp_path):
    from portal.venue.accounts import create_admin

    assert kibanda("init", "--owner", "wanjiku", "--password", "the-old-password").exit_code == 0
    owner_row(tmp_path / "site", "wanjiku")
    with db.connection_context():
        create_admin("kamau", "another-password", AdminUser.OWNER)
        create_admin("fundi", "a-technician-pw", AdminUser.TECHNICIAN)
    several = kibanda("owner", "reset-password")
    assert several.exit_code == 2
    assert "several owners (kamau, wanjiku): say which with --user NAME" in several.output
    technician = kibanda("owner", "reset-password", "--user", "fundi")
    assert technician.exit_code == 2 and "no owner account named fundi" in technician.output
    chosen = kibanda("owner", "reset-password", "--user", "kamau")
    assert chosen.exit_code == 0 and "owner account: kamau  password:" in chosen.output
    assert check_password(owner_row(tmp_path / "site", "wanjiku").password_hash,
                          "the-old-password")
    no_terminal = kibanda("owner", "reset-password", "--user", "kamau", "--ask")
    assert no_terminal.exit_code == 2 and "--ask needs a terminal" in no_terminal.output


def _read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, seen
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_reset_password_takes_a_typed_password_at_a_terminal(kibanda, tmp_path):
    instance = tmp_path / "site"
    assert kibanda("init", "--password", "the-old-password").exit_code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*KIBANDA, "--instance", str(instance), "owner", "reset-password",
                             "--ask"], stdin=follower, stdout=follower, stderr=follower,
                            env=env, close_fds=True)
    os.close(follower)
    try:
        _read_until(leader, b"New password for owner:")
        os.write(leader, b"typed-at-the-console\n")
        _read_until(leader, b"Repeat for confirmation:")
        os.write(leader, b"typed-at-the-console\n")
        output = _read_until(leader, b"signed out")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    assert b"typed-at-the-console" not in output.split(b"confirmation:")[-1]  # never echoed
    assert check_password(owner_row(instance).password_hash, "typed-at-the-console")
