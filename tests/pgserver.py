"""A private PostgreSQL 15 server for a test (standard library only).

    import pgserver
    ok, why = pgserver.available()
    if not ok:
        tap.skip_all(why)
    with pgserver.Server() as pg:
        url = pg.url    # postgresql://podio:PW@127.0.0.1:PORT/podio
        pg.psql("SELECT count(*) FROM podio_events", database="podio")
        pg.stop(mode="immediate")   # the database goes away, and
        pg.start()                  # comes back: same port and data

The server is a cluster of its own (initdb) in a temporary directory,
/tmp/podio-pg-TAG-XXXXXX, where TAG is $PODIO_E2E_TAG (tests/run's "nothing
left running" check looks for it) or the test's PID: its data directory,
its Unix socket and its log.  It listens on 127.0.0.1 on a free port, with
fsync and synchronous_commit on (the defaults: the spool's durability is
what the tests prove) and small settings for a machine of two cores.  The
role podio (LOGIN, with a random password) owns the database podio;
connections over TCP must give that password (scram-sha-256), so a URL
with a wrong one fails; the superuser postgres connects without one over
the Unix socket only (psql()).

initdb and postgres refuse to run as root: as root they run as the system
user postgres (through setpriv, which runs the program in its place, so the
process started is the postmaster itself), and the temporary directory is
that user's.  The system's clusters (/etc/postgresql, port 5432) are never
touched.

Nothing outlives the test: close() (the end of a `with` block) stops the
server and removes the directory; an atexit handler does the same for
every server still running, SIGTERM and SIGHUP become a normal exit (which
runs it) where nobody else handles them, and a small watchdog process stops
the server when the test dies without running it (SIGKILL).
"""

import atexit
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

VERSION = 15
DEFAULT_BINDIR = "/usr/lib/postgresql/%d/bin" % VERSION
SYSTEM_USER = "postgres"       # who runs the server when we are root
SUPERUSER = "postgres"         # the cluster's superuser role
ROLE = "podio"                 # the role and database tests use
DATABASE = "podio"
# A port some other work on the machine uses: never taken here.
AVOID_PORTS = {5432, 55432}

# The settings of every server: small, for two cores, and durable.
SETTINGS = (
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
    ("max_connections", "64"),
    ("shared_buffers", "32MB"),
    ("work_mem", "4MB"),
    ("maintenance_work_mem", "32MB"),
    ("max_wal_size", "256MB"),
    ("min_wal_size", "64MB"),
    ("wal_level", "minimal"),
    ("max_wal_senders", "0"),
    ("max_worker_processes", "2"),
    ("max_parallel_workers", "0"),
    ("max_parallel_workers_per_gather", "0"),
    ("autovacuum_max_workers", "1"),
    ("jit", "off"),
    ("huge_pages", "off"),
    ("logging_collector", "off"),
    ("log_line_prefix", "%m [%p] %q%u@%d "),
    ("log_min_messages", "warning"),
    ("timezone", "UTC"),
)


class PgError(Exception):
    pass

# ------------------------------------------------------------------ finding it


def bindir():
    """The directory of the PostgreSQL programs: $PODIO_TEST_PG_BINDIR,
    else Debian's /usr/lib/postgresql/15/bin, else what `pg_config
    --bindir` says."""
    env = os.environ.get("PODIO_TEST_PG_BINDIR")
    if env:
        return env
    if os.path.isdir(DEFAULT_BINDIR):
        return DEFAULT_BINDIR
    if shutil.which("pg_config"):
        r = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                           text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    return DEFAULT_BINDIR


def _prog(name):
    return os.path.join(bindir(), name)


def _as_root():
    return os.geteuid() == 0


def available():
    """(True, "") when a PostgreSQL 15 server can be started here, else
    (False, why): a reason fit for `1..0 # SKIP why`."""
    d = bindir()
    for name in ("initdb", "postgres", "pg_isready", "psql"):
        if not os.access(os.path.join(d, name), os.X_OK):
            return False, ("PostgreSQL %d is not installed (%s missing; "
                           "tests/run installs postgresql)" % (
                               VERSION, os.path.join(d, name)))
    r = subprocess.run([_prog("postgres"), "--version"], capture_output=True,
                       text=True)
    m = re.search(r"\(PostgreSQL\) (\d+)", r.stdout)
    if not m or int(m.group(1)) != VERSION:
        return False, ("%s is not PostgreSQL %d: %s" % (
            _prog("postgres"), VERSION,
            (r.stdout or r.stderr).strip() or "no version"))
    if _as_root():
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return False, ("running as root, and there is no user %s to "
                           "run the server as (initdb refuses root)"
                           % SYSTEM_USER)
        if not shutil.which("setpriv"):
            return False, "running as root without setpriv (util-linux)"
    return True, ""


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in AVOID_PORTS:
            return port

# ------------------------------------------------------------------ cleanup


_SERVERS = []


def close_all():
    """Stops and removes every server still open (atexit runs it)."""
    for server in list(_SERVERS):
        server.close()


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


atexit.register(close_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_sig) in (signal.SIG_DFL, None):
        signal.signal(_sig, _exit_on_signal)

# Run by a process of its own beside each running postmaster: when the
# test is gone without stopping the server (its end of the pipe on our
# standard input closed, nothing read), stop the server at once, kill what
# is left of its session and remove its directory.  stop() kills this
# watchdog first.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
pm, root = int(sys.argv[1]), sys.argv[2]
sys.stdin.buffer.read()
def mine(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return root.encode() in f.read()
    except OSError:
        return False
def session():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    t = f.read()
            except OSError:
                continue
            if int(t[t.rfind(")") + 2:].split()[3]) == pm:
                out.append(int(p))
    return out
if mine(pm):
    os.kill(pm, signal.SIGQUIT)
    end = time.monotonic() + 10
    while mine(pm) and time.monotonic() < end:
        time.sleep(0.05)
for _ in range(20):
    left = session()
    if not left:
        break
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.05)
shutil.rmtree(root, ignore_errors=True)
"""


def _session_pids(sid):
    """Processes whose session id is sid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                text = f.read()
        except OSError:
            continue
        if int(text[text.rfind(")") + 2:].split()[3]) == sid:
            out.append(int(name))
    return out

# ------------------------------------------------------------------ the server


class Server:
    """One private PostgreSQL server.  Server() prepares nothing; start()
    (or entering a `with` block) creates the cluster the first time and
    starts the server; stop() stops it, keeping its data, port and
    password for the next start(); close() stops it and removes
    everything.

    url          postgresql://podio:PASSWORD@127.0.0.1:PORT/podio
    url_nopass   the same without the password (see pgpass_env())
    port, password, root (the temporary directory), socket_dir, log

    settings: server settings ({name: value}) over the defaults of
    SETTINGS, e.g. {"max_connections": 100}.
    """

    def __init__(self, password=None, settings=None):
        self.password = password or secrets.token_hex(16)
        self.settings = dict(SETTINGS)
        self.settings.update({k: str(v) for k, v in (settings or {}).items()})
        self.port = None
        self.root = None
        self.data = None
        self.log = None
        self.socket_dir = None
        self.proc = None            # the postmaster
        self.watchdog = None
        self.pgpass = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------ names

    def url_for(self, database, password=True):
        """The URL of database as the role podio, with its password
        unless password is False."""
        cred = ROLE
        if password:
            cred += ":" + urllib.parse.quote(self.password, safe="")
        return "postgresql://%s@127.0.0.1:%d/%s" % (cred, self.port,
                                                    database)

    @property
    def url(self):
        return self.url_for(DATABASE)

    @property
    def url_nopass(self):
        return self.url_for(DATABASE, password=False)

    def write_pgpass(self, path=None):
        """Writes a password file (mode 0600) holding the password of the
        role podio for this server, at path (default: in the server's
        directory).  Returns its path."""
        path = path or os.path.join(self.root, "pgpass")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("127.0.0.1:%d:*:%s:%s\n" % (
                self.port, ROLE,
                self.password.replace("\\", "\\\\").replace(":", "\\:")))
        os.chmod(path, 0o600)
        self.pgpass = path
        return path

    def pgpass_env(self, path=None):
        """{"PGPASSFILE": path} for a program given url_nopass; writes the
        file first (write_pgpass()) unless it was written already."""
        if path or not self.pgpass:
            self.write_pgpass(path)
        return {"PGPASSFILE": self.pgpass}

    # ------------------------------------------------------------ running

    def _user_argv(self):
        """The prefix that runs a program as the server's user."""
        if not _as_root():
            return []
        return ["setpriv", "--reuid=" + SYSTEM_USER,
                "--regid=" + SYSTEM_USER, "--init-groups", "--"]

    def _env(self):
        """The environment of the programs run here: no PG* variable of
        the caller's, the C locale."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        return env

    def _prepare(self):
        """Creates the directory and the cluster (initdb)."""
        tag = os.environ.get("PODIO_E2E_TAG") or str(os.getpid())
        self.root = tempfile.mkdtemp(prefix="podio-pg-%s-" % tag, dir="/tmp")
        _SERVERS.append(self)
        # Its user must reach it: /tmp is world-searchable, this 0755.
        os.chmod(self.root, 0o755)
        if _as_root():
            shutil.chown(self.root, SYSTEM_USER, SYSTEM_USER)
        self.data = os.path.join(self.root, "data")
        self.socket_dir = self.root
        self.log = os.path.join(self.root, "server.log")
        # The cluster itself need not survive a crash of this machine:
        # --no-sync makes initdb fast.  The server syncs (fsync=on).
        r = subprocess.run(
            self._user_argv() + [
                _prog("initdb"), "-D", self.data, "-U", SUPERUSER,
                "-E", "UTF8", "--locale=C", "--no-sync",
                "--auth-local=trust", "--auth-host=scram-sha-256"],
            capture_output=True, text=True, env=self._env(), cwd=self.root)
        if r.returncode != 0:
            raise PgError("initdb failed (status %d):\n%s%s" % (
                r.returncode, r.stdout, r.stderr))
        hba = os.path.join(self.data, "pg_hba.conf")
        text = (
            "# Written by tests/pgserver.py: the superuser over the Unix\n"
            "# socket without a password, everyone else over TCP from\n"
            "# 127.0.0.1 with one.\n"
            "local all %s trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n" % SUPERUSER)
        with open(hba, "w") as f:
            f.write(text)
        if _as_root():
            shutil.chown(hba, SYSTEM_USER, SYSTEM_USER)

    def _argv(self):
        argv = self._user_argv() + [_prog("postgres"), "-D", self.data,
                                    "-p", str(self.port),
                                    "-k", self.socket_dir]
        for key, value in self.settings.items():
            argv += ["-c", "%s=%s" % (key, value)]
        return argv

    def _ready(self):
        r = subprocess.run(
            [_prog("pg_isready"), "-q", "-h", self.socket_dir,
             "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres"],
            env=self._env(), capture_output=True)
        return r.returncode == 0

    def _spawn(self, timeout):
        """Starts the postmaster on self.port; waits until it accepts
        connections.  Returns None, or why it failed."""
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                self._argv(), stdin=subprocess.DEVNULL, stdout=logf,
                stderr=logf, env=self._env(), cwd=self.root,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                why = "the server exited with status %d:\n%s" % (
                    self.proc.returncode, self.log_tail())
                self._reap()
                return why
            if time.monotonic() > deadline:
                self._halt(signal.SIGQUIT, 10)
                return "the server did not start within %d s:\n%s" % (
                    timeout, self.log_tail())
            time.sleep(0.05)
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(self.proc.pid), self.root],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            start_new_session=True)
        return None

    def start(self, timeout=60):
        """Starts the server (creating the cluster, the role and the
        database the first time).  Returns self.  Raises PgError."""
        if self.proc is not None:
            return self
        ok, why = available()
        if not ok:
            raise PgError(why)
        first = self.root is None
        if first:
            self._prepare()
        tries = 3 if first else 1
        for _ in range(tries):
            if self.port is None or first:
                self.port = free_port()
            why = self._spawn(timeout)
            if why is None:
                break
            # Another program may have taken the port since it was free.
            if first and "could not bind" in why:
                continue
            raise PgError(why)
        else:
            raise PgError(why)
        if first:
            self.psql("CREATE ROLE %s LOGIN PASSWORD '%s';\n"
                      "CREATE DATABASE %s OWNER %s;\n" % (
                          ROLE, self.password, DATABASE, ROLE))
        return self

    def _reap(self):
        """Kills what is left of the postmaster's session and forgets
        it."""
        sid = self.proc.pid
        for _ in range(50):
            left = [p for p in _session_pids(sid) if p != os.getpid()]
            if not left:
                break
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        self.proc = None

    def _halt(self, sig, timeout):
        """Sends sig to the postmaster, waits up to timeout seconds for
        it to end (then kills it), and for its children."""
        proc = self.proc
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except OSError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Backends end on their own once the postmaster is gone.
        deadline = time.monotonic() + 5
        while _session_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._reap()

    def _stop_watchdog(self):
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog.stdin.close()
            self.watchdog = None

    def stop(self, mode="fast", timeout=60):
        """Stops the server, keeping its data: mode "smart" waits for the
        clients to leave, "fast" ends their sessions (a clean shutdown),
        "immediate" quits at once, as a crash would (the next start
        recovers from the log).  No-op when it is not running."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
               "immediate": signal.SIGQUIT}[mode]
        if self.proc is None:
            return
        self._stop_watchdog()
        self._halt(sig, timeout)

    def kill(self):
        """SIGKILLs the postmaster and every backend at once (the machine
        of the database lost, minus its disk).  start() recovers."""
        if self.proc is None:
            return
        self._stop_watchdog()
        for p in _session_pids(self.proc.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait()
        self._reap()

    def outage(self, seconds, mode="immediate"):
        """The database away for seconds: stop(mode), then start()."""
        self.stop(mode)
        time.sleep(seconds)
        self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        """Stops the server and removes its directory.  Idempotent."""
        if self.proc is not None:
            self.stop(mode="immediate", timeout=20)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        if self in _SERVERS:
            _SERVERS.remove(self)

    # ------------------------------------------------------------ using it

    def psql(self, sql, database="postgres", check=True):
        """Runs sql (one or more statements, each in a transaction of its
        own) as the superuser over the Unix socket; returns psql's
        output, unaligned and tuples only (`a|b` lines).  Raises PgError
        when a statement fails (check=False returns the
        CompletedProcess instead)."""
        r = subprocess.run(
            [_prog("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.socket_dir, "-p", str(self.port), "-U", SUPERUSER,
             "-d", database, "-f", "-"],
            input=sql, capture_output=True, text=True, env=self._env(),
            timeout=120)
        if not check:
            return r
        if r.returncode != 0:
            raise PgError("psql failed (status %d): %s" % (
                r.returncode, r.stderr.strip()))
        return r.stdout

    def new_database(self, name):
        """Creates the database name (letters, digits, _), owned by the
        role podio; returns its URL with the password."""
        if not re.match(r"^[a-z_][a-z0-9_]{0,62}$", name):
            raise PgError("not a plain database name: %r" % name)
        self.psql("CREATE DATABASE %s OWNER %s;\n" % (name, ROLE))
        return self.url_for(name)

    def connections_left(self, timeout=10):
        """The sessions of the role podio still open once they had
        timeout seconds to end (0 when none is left), and what they
        are (application, state, query)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.psql("SELECT application_name, state, query FROM "
                            "pg_stat_activity WHERE usename = '%s'" % ROLE)
            rows = [ln for ln in out.splitlines() if ln.strip()]
            if not rows or time.monotonic() >= deadline:
                return len(rows), "\n".join(rows)
            time.sleep(0.1)

    def log_tail(self, lines=40):
        """The last lines of the server's log."""
        try:
            with open(self.log, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except (OSError, TypeError):
            return ""
