"""``kibanda init``: the instance and the owner, with a generated or a given password."""
from __future__ import annotations

from portal.cli import main
from portal.crypto import check_password
from portal.models import AdminUser, db, init_db


def test_kibanda_init_without_terminal_generates_owner_password_once(tmp_path, runner):
    inst = tmp_path / "site"
    result = runner.invoke(main, ["--instance", str(inst), "init"])
    assert result.exit_code == 0, result.output
    assert "password:" in result.output
    password = result.output.split("password:")[1].split()[0]
    init_db(str(inst / "kibanda.db"))
    with db.connection_context():
        owner = AdminUser.get(AdminUser.username == "owner")
        assert check_password(owner.password_hash, password)
    key = (inst / "fernet.key").read_bytes()
    again = runner.invoke(main, ["--instance", str(inst), "init"])
    assert again.exit_code == 0
    assert "already exists" in again.output and "password:" not in again.output
    assert (inst / "fernet.key").read_bytes() == key


def test_kibanda_init_with_flags_uses_the_given_password(tmp_path, runner):
    inst = tmp_path / "site"
    result = runner.invoke(main, ["--instance", str(inst), "init", "--owner", "wanjiku",
                                       "--password", "a-long-enough-pass"])
    assert result.exit_code == 0, result.output
    assert "a-long-enough-pass" not in result.output
    init_db(str(inst / "kibanda.db"))
    with db.connection_context():
        assert check_password(AdminUser.get().password_hash, "a-long-enough-pass")
