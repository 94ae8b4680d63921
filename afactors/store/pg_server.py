"""A throwaway PostgreSQL server in a temp dir on loopback, for tests and benchmarks of the PostgreSQL store.

`with throwaway_server() as server:` runs `initdb` and `pg_ctl start` from the newest
`/usr/lib/postgresql/<version>/bin` (or `$AFACTORS_PG_BIN`, or `initdb` on the PATH) on 127.0.0.1 and a free port,
trust authentication, no Unix socket; on exit it stops the server (`immediate`) and removes the directory.
PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user (Debian's package makes it).
`server.new_store_url()` makes a fresh schema and returns a store URL that works in it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

USER = "afactors"
"""The superuser `initdb` makes, and the user store URLs connect as."""


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (or no user to run them as): why, for a skip message."""


def find_bindir() -> Path:
    """The directory with `initdb` and `pg_ctl`, newest version first; `PgUnavailable` if there is none."""
    override = os.environ.get("AFACTORS_PG_BIN")
    if override:
        return Path(override)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: version(p.parent))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PgUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) are not installed: `apt-get install postgresql` (or set"
        " AFACTORS_PG_BIN to their directory)"
    )


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.frozen
class PgServer:
    """A running throwaway server: connect as `USER` to `host`:`port`, database `postgres`."""

    host: str
    port: int
    directory: Path

    def url(self, schema: str | None = None) -> str:
        """A `postgresql://` URL of the `postgres` database, in `schema` (first on the search path) if given."""
        base = f"postgresql://{USER}@{self.host}:{self.port}/postgres"
        return base if schema is None else f"{base}?options=-csearch_path%3D{schema}"

    def new_store_url(self) -> str:
        """Create a fresh schema and return a store URL in it (every store in its own schema, one server)."""
        import psycopg  # the `postgresql` extra

        schema = f"s_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return self.url(schema)


@contextmanager
def throwaway_server(*, fsync: bool = True, settings: Mapping[str, str] | None = None) -> Iterator[PgServer]:
    """Run a fresh server until the block exits (see the module docstring); `fsync=False` for speed only;
    `settings` are more server settings (`{"shared_preload_libraries": "pg_stat_statements"}`)."""
    bindir = find_bindir()
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PgUnavailable("running as root and there is no `postgres` user to run PostgreSQL as") from None
        as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    directory = Path(tempfile.mkdtemp(prefix="afactors-pg-"))
    try:
        if as_user:
            os.chown(directory, as_user["user"], as_user["group"])
        data, log = directory / "data", directory / "server.log"
        run: dict[str, Any] = {"check": True, "capture_output": True, "timeout": 120, "cwd": directory, **as_user}
        subprocess.run(
            [bindir / "initdb", "-D", data, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
            **run,
        )
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
        options += f" -c fsync={'on' if fsync else 'off'}"
        options += "".join(f" -c {name}={value}" for name, value in (settings or {}).items())
        subprocess.run([bindir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start"], **run)
        try:
            yield PgServer("127.0.0.1", port, directory)
        finally:
            subprocess.run([bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], **run)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()
        program = Path(exc.cmd[0]).name
        raise PgUnavailable(f"cannot start a throwaway PostgreSQL server ({program} failed): {detail}") from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)
