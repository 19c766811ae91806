"""The reference tools: make sure they are on PATH, and say which versions ran."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from bench.progress import log

# command -> Debian package that provides it
PACKAGES = {
    "/usr/bin/time": "time",
    "pg_recvlogical": "postgresql-client-15",
    "psql": "postgresql-client-15",
    "mariadb-binlog": "mariadb-client",
    "mariadb": "mariadb-client",
    "pgcopydb": "pgcopydb",
    "pgloader": "pgloader",
}


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        [*prefix, "apt-get", *args], env=env, capture_output=True, text=True, check=False
    )


def ensure(commands: list[str]) -> None:
    """Install the Debian packages of missing commands; a tool still missing is an error."""
    missing = sorted({PACKAGES[c] for c in commands if shutil.which(c) is None})
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    done = _apt("install", "-y", "-q", *missing)
    if done.returncode != 0:
        # A stale package index is the usual cause; refresh once and retry.
        log("apt-get install failed; apt-get update and retry")
        _apt("update", "-q")
        done = _apt("install", "-y", "-q", *missing)
    still = [c for c in commands if shutil.which(c) is None]
    if done.returncode != 0 or still:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        raise SystemExit(f"bench: could not install {' '.join(missing)} (missing: {still})")


def version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    text = (done.stdout or done.stderr).strip()
    # pgcopydb logs an INFO line before its version; the version line is the useful one.
    lines = [ln for ln in text.splitlines() if "version" in ln.lower() and " INFO " not in ln]
    return (lines[0] if lines else text.splitlines()[0] if text else "?").strip()
