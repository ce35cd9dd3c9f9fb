"""``kibanda vouchers``: create and print a batch while the router is down, then push it."""
from __future__ import annotations

import re

from helpers import batch_users, site_config

from portal.cli import main
from portal.config import write_config_values


def test_cli_creates_prints_and_resumes_a_batch(tmp_path, router_sim, runner):
    instance = tmp_path / "site"
    env = {"KIBANDA_INSTANCE": str(instance)}
    assert runner.invoke(main, ["init", "--password", "a-long-owner-pass"], env=env).exit_code == 0
    config = site_config(instance, router_sim)
    write_config_values(instance, {k: v for k, v in config.items()
                                   if k not in ("TESTING", "INSTANCE_PATH")})
    added = runner.invoke(main, ["packages", "add", "--name", "1 day", "--price", "50",
                                 "--validity", "1d"], env=env)
    assert added.exit_code == 0, added.output

    router_sim.refuse_logins = True
    sheet = tmp_path / "sheet.html"
    made = runner.invoke(main, ["vouchers", "create", "--package", "1 day", "--count", "40",
                                "--print", str(sheet), "--layout", "58mm"], env=env)
    assert made.exit_code == 3, made.output
    assert "made batch 1: 40 x 1 day (KES 50)" in made.output
    assert "kibanda vouchers push 1" in made.output
    assert sheet.read_text().count('class="card') == 40
    assert batch_users(router_sim, 1) == []

    router_sim.refuse_logins = False
    pushed = runner.invoke(main, ["vouchers", "push", "1"], env=env)
    assert pushed.exit_code == 0, pushed.output
    assert "batch 1: 40 codes, 40 on the router" in pushed.output
    assert len(batch_users(router_sim, 1)) == 40

    listed = runner.invoke(main, ["vouchers", "list"], env=env)
    assert re.search(r"1 .* 1 day .* 50 +40 +40 +0 +0 +done", listed.output), listed.output
    bad = runner.invoke(main, ["vouchers", "create", "--package", "nope", "--count", "4"],
                        env=env)
    assert bad.exit_code == 2 and "No package named nope." in bad.output
