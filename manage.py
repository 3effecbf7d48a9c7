#!/usr/bin/env python3
"""Run Touchbase, or its tests, on a fresh machine with nothing but Python 3.11+.

    python3 manage.py serve   # web server (and dispatcher) on http://127.0.0.1:$PORT (8000)
    python3 manage.py test    # lint, format check and the whole test suite

Both make a local virtualenv (.venv) on first use and reinstall when pyproject.toml changes.
Standard library only: this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".touchbase-installed"
CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium, driven by the browser tests


def ensure_venv(extras: tuple[str, ...] = ()) -> None:
    """Create .venv and install the dependencies named in pyproject.toml, when they changed."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    wanted = hashlib.sha256(pyproject + repr(extras).encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() in (wanted, _stamp_all(pyproject)):
        return
    if not (BIN / "python").exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    meta = tomllib.loads(pyproject.decode())["project"]
    requirements = list(meta["dependencies"])
    for extra in extras:
        requirements += meta["optional-dependencies"][extra]
    print(f"Installing {len(requirements)} packages into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *requirements], check=True)
    STAMP.write_text(wanted)


def _stamp_all(pyproject: bytes) -> str:
    # A venv installed with the test extras also serves `serve`.
    return hashlib.sha256(pyproject + repr(("test",)).encode()).hexdigest()


def serve() -> int:
    """Apply migrations, then run the web server and one push dispatcher until Ctrl-C."""
    ensure_venv()
    env = {**os.environ}
    port = env.get("PORT", "8000")
    flask = [str(BIN / "flask"), "--app", "webapp"]
    subprocess.run([*flask, "db", "upgrade"], check=True, cwd=ROOT, env=env)
    # One worker process with threads: the embedded default keeps rate limits in memory, and
    # one process shares them. Several processes need TOUCHBASE_RATELIMIT_STORAGE_URI (Redis).
    web = [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "8",
        "--access-logfile",
        "-",
        # No control socket in $HOME: two checkouts (or a test beside a dev server) would share it.
        "--no-control-socket",
        "wsgi:app",
    ]
    # One dispatcher sends the push reminders; with SQLite its claims queue behind web writes
    # like any other writer. If either process ends, _supervise stops the other.
    dispatcher = [*flask, "dispatch"]
    print(f"Touchbase is running on http://127.0.0.1:{port} (Ctrl-C to stop)", flush=True)
    procs = [
        subprocess.Popen(web, cwd=ROOT, env=env),
        subprocess.Popen(dispatcher, cwd=ROOT, env=env),
    ]
    return _supervise(procs)


def _supervise(procs: list[subprocess.Popen[bytes]]) -> int:
    """Wait for the children; stop them all when one ends or on Ctrl-C/SIGTERM."""

    def stop(*_args: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(proc.poll() is None for proc in procs):
            try:
                procs[0].wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    stop()
    return max((proc.wait() or 0) for proc in procs)


def _apt_install(package: str) -> None:
    """Install one Debian package with apt-get (as root), running apt-get update first."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        print("+ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env=env)


def ensure_test_tools() -> str | None:
    """Make sure node (the phone's rules tests) and Chromium (the browser tests) are installed.

    As root, a missing one is installed with apt-get. Otherwise the answer is a message saying
    what is missing, since the suite cannot pass without them and must not skip them quietly.
    """
    missing = []
    if shutil.which("node") is None:
        missing.append(("node", "nodejs"))
    if not Path(CHROMIUM).exists():
        missing.append((CHROMIUM, "chromium"))
    if not missing:
        return None
    if os.geteuid() != 0:
        names = ", ".join(what for what, _ in missing)
        packages = " ".join(package for _, package in missing)
        return (
            f"The tests need {names}, which is missing, and only root can install it here. "
            f"Run: sudo apt-get install -y {packages}"
        )
    for what, package in missing:
        print(f"{what} is missing; installing the Debian package {package} ...", flush=True)
        _apt_install(package)
    return None


def test(args: list[str]) -> int:
    """Lint, check formatting, then run the whole suite (SQLite, plus PostgreSQL if asked)."""
    ensure_venv(("test",))
    problem = ensure_test_tools()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        if subprocess.run([str(BIN / check[0]), *check[1:]], cwd=ROOT).returncode:
            return 1
    workers = os.environ.get("TEST_WORKERS", "2")
    code = subprocess.run([str(BIN / "pytest"), "-n", workers, *args], cwd=ROOT).returncode
    if code == 5:
        print("pytest collected no tests: that is a failure here.", file=sys.stderr)
        return 1
    return code


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    if command == "serve":
        return serve()
    if command == "test":
        return test(sys.argv[2:])
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
