"""What the browser and QR tests need from the system: Debian's chromium, zbar-tools, node.

Missing tools fail the test with what to install (``scripts/test`` installs them when run
as root): CI runs every test, none is ever skipped for a missing tool.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Without the background-networking flags chromium keeps dialling out of a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
_PACKAGES = {CHROMIUM: "chromium", "zbarimg": "zbar-tools", "node": "nodejs",
             "gs": "ghostscript"}


def require(tool: str) -> str:
    """The tool's path; fails the test (never skips) when it is not installed."""
    found = tool if Path(tool).is_absolute() and Path(tool).exists() else shutil.which(tool)
    if not found:
        package = _PACKAGES.get(tool, tool)
        pytest.fail(f"{tool} is missing: install Debian's {package} "
                    f"(sudo apt-get install {package}; ./scripts/test does it as root)",
                    pytrace=False)
    return found


def launch(playwright):
    """Debian's chromium, headless, through playwright."""
    return playwright.chromium.launch(executable_path=require(CHROMIUM), args=CHROMIUM_ARGS)


# --- PostgreSQL for the hub's tests ------------------------------------------------------

#: ``scripts/test`` starts a server and exports its URL here; otherwise the suite starts one.
POSTGRES_URL_ENV = "KIBANDA_TEST_POSTGRES_URL"


def postgres_bin(tool: str) -> str:
    """A PostgreSQL server program (initdb, pg_ctl) from Debian's ``postgresql`` package."""
    import glob

    found = shutil.which(tool) or next(iter(sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), reverse=True)), None)
    if not found:
        pytest.fail(f"{tool} is missing: install Debian's postgresql (sudo apt-get install "
                    f"postgresql; ./scripts/test does it as root)", pytrace=False)
    return found


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary folder, on a free loopback port.

    PostgreSQL refuses to run as root, so as root the cluster belongs to an unprivileged
    user (``postgres`` if it exists, else ``nobody``) and its programs run through setpriv.
    """

    def __init__(self):
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="kibanda-pg-"))
        self.data = self.folder / "data"
        self.port = 0
        self.prefix: list[str] = []

    def _as_owner(self) -> None:
        import os
        import pwd

        if os.geteuid() != 0:
            return
        for name in ("postgres", "nobody"):
            try:
                user = pwd.getpwnam(name)
            except KeyError:
                continue
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            os.chmod(self.folder, 0o700)
            self.prefix = [shutil.which("setpriv") or "setpriv", f"--reuid={user.pw_uid}",
                           f"--regid={user.pw_gid}", "--clear-groups"]
            return
        pytest.fail("running as root and no unprivileged user (postgres, nobody) to run "
                    "PostgreSQL as", pytrace=False)

    def start(self) -> "PostgresServer":
        """initdb, then pg_ctl start; the URL is :attr:`url`."""
        import socket
        import subprocess

        self._as_owner()
        run = lambda *args: subprocess.run([*self.prefix, *args], check=True,  # noqa: E731
                                           capture_output=True, text=True, cwd=self.folder)
        run(postgres_bin("initdb"), "-D", str(self.data), "-U", "kibanda", "-A", "trust",
            "-E", "UTF8", "--no-sync")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=300")
        run(postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-t", "60",
            "-l", str(self.folder / "server.log"), "start")
        return self

    @property
    def url(self) -> str:
        """The server's ``postgres`` database, user ``kibanda`` (trust on loopback)."""
        return f"postgresql://kibanda@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        self.stop_folder(self.folder)

    @staticmethod
    def stop_folder(folder) -> None:
        """Stop the server whose cluster is in ``folder`` (as its owner) and delete it."""
        import os
        import subprocess

        folder = Path(folder)
        prefix = []
        if os.geteuid() == 0:
            owner = folder.stat()
            prefix = [shutil.which("setpriv") or "setpriv", f"--reuid={owner.st_uid}",
                      f"--regid={owner.st_gid}", "--clear-groups"]
        subprocess.run([*prefix, postgres_bin("pg_ctl"), "-D", str(folder / "data"), "-m",
                        "immediate", "-w", "stop"], capture_output=True, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)
