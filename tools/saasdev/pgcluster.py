"""The PostgreSQL server the tool works against.

By default a private PostgreSQL cluster lives under ``.local/pg`` of the clone:
created once with ``initdb``, started with ``pg_ctl`` on a free loopback port,
owned by an unprivileged role (when the tool runs as root, the cluster runs as
the ``postgres`` system user, since PostgreSQL refuses to run as root).  When
standard ``PG*`` variables are set, that server is used instead and nothing is
started.

Odoo's role in the private cluster is a plain ``LOGIN CREATEDB`` role, as in
production: a superuser would hide privilege bugs (ending other roles' or
autovacuum's sessions).  The cluster's bootstrap superuser is a separate role
that only this tool uses, to create Odoo's role.
"""

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolError

PG_ENV_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
PRIVATE_ROLE = "odoo"
#: The private cluster's superuser (initdb -U): the tool's own, never Odoo's.
BOOTSTRAP_ROLE = "saas_bootstrap"
#: Environment variable naming the bootstrap role to the standalone tests.
BOOTSTRAP_ENV = "SAAS_DEV_PG_BOOTSTRAP_USER"
#: Run by the bootstrap role with psql (``role`` variable): Odoo's role as in production.
ROLE_SQL = r"""
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') AS missing \gset
\if :missing
CREATE ROLE :"role";
\endif
ALTER ROLE :"role" WITH LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS;
"""


@dataclass
class PgServer:
    """Where Odoo and the tests connect."""

    host: str
    port: int
    user: str
    password: str = ""
    private: bool = False
    bootstrap_user: str = ""  # the private cluster's superuser, for the tool and its tests

    def env(self):
        """libpq variables for child processes (tests, psql), plus the bootstrap
        role's name for the standalone tests that need a second role."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password
        if self.bootstrap_user:
            env[BOOTSTRAP_ENV] = self.bootstrap_user
        return env

    def label(self):
        kind = "private cluster" if self.private else "server from PG* variables"
        return "%s %s@%s:%s" % (kind, self.user, self.host, self.port)


def pg_binary(name):
    """Locate a PostgreSQL server binary: PATH first, then Debian's layout."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise ToolError(
        "PostgreSQL server binaries (%s) were not found: install PostgreSQL 15 "
        "(Debian: apt-get install postgresql-15) or set PG* variables to use a running server."
        % name
    )


def free_port(preferred=None):
    """A free TCP port on 127.0.0.1, ``preferred`` when it is free."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise ToolError("no free TCP port on 127.0.0.1")


def port_is_free(port):
    # SO_REUSEADDR as servers use it: a port with only TIME_WAIT leftovers is free.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def external_server(env):
    """The server named by ``PG*`` variables, or ``None`` when none is set."""
    if not any(env.get(name) for name in PG_ENV_VARS):
        return None
    user = env.get("PGUSER") or pwd.getpwuid(os.getuid()).pw_name
    if user == "postgres":
        raise ToolError(
            "PGUSER=postgres: Odoo refuses to connect as the 'postgres' superuser; "
            "create a dedicated role with CREATEDB and set PGUSER to it."
        )
    return PgServer(
        host=env.get("PGHOST") or "localhost",
        port=_port(env.get("PGPORT")),
        user=user,
        password=env.get("PGPASSWORD", ""),
    )


def _port(value):
    try:
        return int(value or 5432)
    except ValueError:
        raise ToolError("PGPORT=%r is not a port number" % value) from None


def check_server(server, say):
    """Fail in one line unless the role can log in and create databases.

    A superuser role on an external server works but is reported: production
    roles have only CREATEDB, and a superuser hides the module's privilege
    mistakes.
    """
    query = ("SELECT rolcreatedb OR rolsuper, rolsuper FROM pg_roles "
             "WHERE rolname = current_user")
    env = dict(os.environ, **server.env())
    proc = subprocess.run(
        [pg_binary("psql"), "-X", "-w", "-At", "-d", "postgres", "-c", query],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode:
        reason = next((line for line in proc.stderr.splitlines() if line.strip()), "no answer")
        raise ToolError(
            "PostgreSQL (%s) refused the connection: %s" % (server.label(), reason.strip())
        )
    may_create, _, is_superuser = proc.stdout.strip().partition("|")
    if may_create != "t":
        raise ToolError(
            "PostgreSQL role %r may not create databases (needs CREATEDB)." % server.user
        )
    if is_superuser == "t" and not server.private:
        say("postgresql: WARNING: role %r is a superuser; Odoo's role needs only CREATEDB "
            "(tests pass, but privilege mistakes go unnoticed)" % server.user)


class PrivateCluster:
    """A PostgreSQL cluster under ``state_dir`` that only this clone uses."""

    def __init__(self, state_dir):
        self.dir = Path(state_dir)
        self.data = self.dir / "data"
        self.sockets = self.dir / "run"
        self.logfile = self.dir / "postgresql.log"
        self.portfile = self.dir / "port"
        # Written after initdb: clusters without it made Odoo's role the superuser.
        self.rolefile = self.dir / "bootstrap_role"
        self.started_here = False
        self.recreated = False
        self.run_as = self._system_user()

    @staticmethod
    def _system_user():
        """PostgreSQL will not run as root: use ``postgres`` (or ``nobody``) then."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise ToolError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")

    def _cmd(self, name, *args):
        cmd = [pg_binary(name), *args]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as.pw_name, "--", *cmd]
        return cmd

    def _run(self, name, *args, check=True):
        proc = subprocess.run(
            self._cmd(name, *args), capture_output=True, text=True, cwd="/", check=False
        )
        if check and proc.returncode:
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            raise ToolError(
                "%s failed: %s" % (name, lines[-1] if lines else "exit %d" % proc.returncode)
            )
        return proc

    def _prepare_dirs(self):
        for folder in (self.dir, self.sockets):
            folder.mkdir(parents=True, exist_ok=True)
            if self.run_as:
                os.chown(folder, self.run_as.pw_uid, self.run_as.pw_gid)
        if self.run_as:
            probe = self._run("pg_ctl", "--version", check=False)
            if probe.returncode:
                raise ToolError("cannot run PostgreSQL as user %r here" % self.run_as.pw_name)
            access = subprocess.run(
                ["runuser", "-u", self.run_as.pw_name, "--", "test", "-w", str(self.dir)],
                check=False,
            )
            if access.returncode:
                raise ToolError(
                    "user %r cannot write %s (a parent folder is not traversable); "
                    "clone the repository somewhere world-readable"
                    % (self.run_as.pw_name, self.dir)
                )

    def _initdb(self, say):
        say("postgresql: creating the private cluster in %s" % self.data)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            BOOTSTRAP_ROLE,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        self.rolefile.write_text(BOOTSTRAP_ROLE + "\n")

    def _made_with_odoo_superuser(self):
        """A cluster of an earlier version of the tool: initdb -U odoo."""
        try:
            return self.rolefile.read_text().strip() != BOOTSTRAP_ROLE
        except OSError:
            return True

    def _recreate(self, say):
        """Replace an old cluster whose superuser is Odoo's role (its databases go)."""
        say("postgresql: the private cluster in %s makes Odoo's role %r a superuser "
            "(made by an earlier version of ./dev): recreating it; its databases are "
            "dropped and rebuilt on demand" % (self.data, PRIVATE_ROLE))
        if self.is_running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w")
        shutil.rmtree(self.data)
        self.portfile.unlink(missing_ok=True)
        self.recreated = True

    def _ensure_odoo_role(self):
        """Odoo's role: LOGIN CREATEDB and nothing more (no superuser, no role admin)."""
        proc = subprocess.run(
            [pg_binary("psql"), "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-v",
             "role=" + PRIVATE_ROLE, "-h", "127.0.0.1", "-p", str(self._saved_port()),
             "-U", BOOTSTRAP_ROLE, "-d", "postgres"],
            input=ROLE_SQL, capture_output=True, text=True, check=False,
        )
        if proc.returncode:
            raise ToolError("setting up role %r failed: %s" % (PRIVATE_ROLE, proc.stderr.strip()))

    def is_running(self):
        return (
            self.data.is_dir()
            and self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0
        )

    def _saved_port(self):
        try:
            return int(self.portfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def ensure(self, say):
        """Start (or reuse) the cluster and return its :class:`PgServer`."""
        self._prepare_dirs()
        if (self.data / "PG_VERSION").is_file() and self._made_with_odoo_superuser():
            self._recreate(say)
        if not (self.data / "PG_VERSION").is_file():
            self._initdb(say)
        if self.is_running() and self._saved_port():
            say("postgresql: reusing the running private cluster")
        else:
            self._start(say)
        self._ensure_odoo_role()
        return PgServer("127.0.0.1", self._saved_port(), PRIVATE_ROLE, private=True,
                        bootstrap_user=BOOTSTRAP_ROLE)

    def _start(self, say):
        port = free_port(self._saved_port())
        self.portfile.write_text("%d\n" % port)
        options = "-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s" % (
            port,
            shlex.quote(str(self.sockets)),
        )
        say("postgresql: starting the private cluster on 127.0.0.1:%d" % port)
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            "60",
            "-o",
            options,
        )
        self.started_here = True

    def stop(self, say):
        """Stop the cluster if this process started it (a reused one keeps running)."""
        if self.started_here:
            say("postgresql: stopping the private cluster")
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", check=False)
            self.started_here = False


def server_for(env, state_dir, say, keep):
    """The server to use; ``keep(cluster)`` is called before the cluster starts, so
    the caller can always stop what was started, even when a later check fails."""
    server = external_server(env)
    if server is None:
        cluster = PrivateCluster(state_dir)
        keep(cluster)
        server = cluster.ensure(say)
    else:
        say("postgresql: using %s" % server.label())
    check_server(server, say)
    return server
