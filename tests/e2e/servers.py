"""Real web servers and processes for the end-to-end tests.

Starts nginx and Apache from the files in deploy/ (copied, only their
@PLACEHOLDER@ tokens replaced, wrapped in a minimal main configuration
written here: its own prefix or ServerRoot, pid file, logs and a loopback
port), and any other process a setup needs (podio-webhook serve,
spawn-fcgi).  Nothing touches the system's configuration (/etc/nginx,
/etc/apache2) or a server already running on the machine.

Every process started here is stopped when the test exits, whatever the
reason (atexit, and SIGTERM/SIGHUP turned into a normal exit): first
politely, then every process left in its session, and every process
whose command line or program lies under a temporary root made here, is
killed.

    import servers
    root = servers.make_root()
    port = servers.free_port()
    site = servers.substitute("nginx-serve.conf", SOCKET=..., ...)
    ngx = servers.Nginx(root, site, port)
    ngx.start()
    ...
    ngx.stop()
"""

import atexit
import grp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import testlib  # noqa: E402

DEPLOY = os.path.join(testlib.SRCDIR, "deploy")
APACHE_MODULES = "/usr/lib/apache2/modules"
NGINX = "/usr/sbin/nginx"
APACHE = "/usr/sbin/apache2"
WEB_USER = "www-data"
WEB_GROUP = "www-data"

PLACEHOLDER = re.compile(r"@[A-Z][A-Z_]*@")


class ServerError(Exception):
    pass

# ------------------------------------------------------------------ cleanup


_PROCS = []   # every Proc started, in order
_ROOTS = []   # temporary roots made by make_root()


def cleanup():
    """Stops every process started here (newest first), kills whatever is
    left of them, removes the temporary roots.  Returns the descriptions
    of processes that had to be killed after the polite stop."""
    left = []
    for proc in reversed(list(_PROCS)):
        left += proc.stop()
    for root in list(_ROOTS):
        left += kill_leftovers(root)
    for root in list(_ROOTS):
        shutil.rmtree(root, ignore_errors=True)
        _ROOTS.remove(root)
    return left


def _exit_on_signal(signum, _frame):
    # A normal exit runs the atexit handlers, hence cleanup().
    raise SystemExit(128 + signum)


atexit.register(cleanup)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _exit_on_signal)


def _proc_stat(pid):
    """(pgrp, session) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[2]), int(fields[3])


def _proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def proc_uid(pid):
    """The real uid of a process (None if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cmdline(pid):
    return _proc_cmdline(pid)


def proc_exe(pid):
    return _proc_exe(pid)


def processes_of(binary):
    """How many live processes run binary now."""
    return sum(1 for name in os.listdir("/proc")
               if name.isdigit() and _proc_exe(int(name)) == binary)


# The lines one CGI worker per spool logs when it takes and lets go the
# spool's worker lock (handler/cgi_worker.c).
WORKER_LINE = re.compile(r"cgi worker pid=(\d+) (started|ended)")


def worker_turns(path):
    """The worker lines of the log at path, in order: [(pid,
    "started"|"ended")]; [] when it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return [(int(m.group(1)), m.group(2))
                    for m in map(WORKER_LINE.search, f) if m]
    except OSError:
        return []


def turn_overlaps(turns):
    """Where the lock turns do not follow one another (a start while
    another turn is open, an end of a turn not open, a turn left open):
    [] when each start is followed by the end of the same PID."""
    bad, holder = [], None
    for n, (pid, what) in enumerate(turns):
        if what == "started":
            if holder is not None:
                bad.append("turn %d: pid %d started while pid %d held the "
                           "lock" % (n, pid, holder))
            holder = pid
        else:
            if holder != pid:
                bad.append("turn %d: pid %d ended, but the holder was %s"
                           % (n, pid, holder))
            holder = None
    if holder is not None:
        bad.append("pid %d never ended" % holder)
    return bad


def _proc_exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


def _all_pids():
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc")
            if p.isdigit() and int(p) != me]


def pids_in_session(sid):
    """Processes whose session id is sid (the session leader included)."""
    out = []
    for pid in _all_pids():
        st = _proc_stat(pid)
        if st is not None and st[1] == sid:
            out.append(pid)
    return out


def pids_under(root):
    """Processes whose program or command line lies under root."""
    root = root.rstrip("/") + "/"
    out = []
    for pid in _all_pids():
        if _proc_exe(pid).startswith(root) or root in _proc_cmdline(pid) + " ":
            out.append(pid)
    return out


def _describe(pid):
    return "%d %s" % (pid, _proc_cmdline(pid) or _proc_exe(pid) or "?")


def _kill_all(pids):
    """SIGKILLs pids; returns their descriptions (taken before)."""
    described = []
    for pid in pids:
        described.append(_describe(pid))
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return described


def kill_leftovers(root):
    """Kills every process running a program under root or naming root on
    its command line (a process that left its session, e.g. a callback
    command's grandchild).  Returns their descriptions."""
    killed = []
    for _ in range(5):
        pids = pids_under(root)
        if not pids:
            break
        killed += _kill_all(pids)
        time.sleep(0.1)
    return killed

# ------------------------------------------------------------------ utilities


def require_root(tap):
    """Skips the whole test unless run as root: the servers must start as
    root to run their workers as an unprivileged user, as deployed."""
    if os.geteuid() != 0:
        tap.skip_all("needs root: the web servers run their workers as "
                     "%s, as in a real deployment" % WEB_USER)


def require_programs(tap, *paths):
    """Skips the whole test when one of the programs is missing."""
    for p in paths:
        if not (os.path.isabs(p) and os.access(p, os.X_OK)) and \
                not shutil.which(p):
            tap.skip_all("%s is not installed (tests/run installs it)" % p)


def require_files(tap, *paths):
    for p in paths:
        if not os.path.exists(p):
            tap.skip_all("%s is missing (tests/run installs it)" % p)


def make_root():
    """A fresh temporary directory (mode 0755, so that the unprivileged
    users can reach what is prepared below it), removed at exit after
    every process under it is gone."""
    # tests/run sets PODIO_E2E_TAG so that its "nothing left running"
    # check finds this run's processes and no one else's.
    tag = os.environ.get("PODIO_E2E_TAG", "")
    root = tempfile.mkdtemp(prefix="podio-e2e-%s" % (tag + "-" if tag else ""))
    os.chmod(root, 0o755)
    _ROOTS.append(root)
    return root


def mkdir(path, mode=0o755, owner=None, group=None):
    """Creates path (and its parents) with mode, owned by owner:group."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if owner or group:
        shutil.chown(path, owner, group)
    return path


def write_file(path, text, mode=0o644, owner=None, group=None):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    if owner or group:
        shutil.chown(path, owner, group)
    return path


def substitute(name, **values):
    """The text of deploy/NAME with each @KEY@ replaced by values[KEY].
    Raises ServerError when the file holds a placeholder not given, or a
    given one does not occur: the tests use the files exactly as a
    person following deploy/README.md would."""
    with open(os.path.join(DEPLOY, name)) as f:
        text = f.read()
    for key, value in values.items():
        token = "@%s@" % key
        if token not in text:
            raise ServerError("%s has no placeholder %s" % (name, token))
        text = text.replace(token, str(value))
    left = sorted(set(PLACEHOLDER.findall(text)))
    if left:
        raise ServerError("%s: placeholders left: %s" % (name, " ".join(left)))
    return text


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def grp_gid(group):
    return grp.getgrnam(group).gr_gid


def as_user(user, group):
    """argv prefix running a command as user:group (no other groups)."""
    return ["setpriv", "--reuid=" + user, "--regid=" + group,
            "--clear-groups", "--"]


def tail(path, lines=40):
    """The last lines of a file, as text ("" if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_until(fn, timeout, what, proc=None):
    """Polls fn() until it returns a true value (returned).  Raises
    ServerError on timeout, or as soon as proc (a Proc) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if proc is not None and not proc.alive():
            raise ServerError("%s exited (status %s) before %s:\n%s" % (
                proc.name, proc.returncode(), what, proc.log_tail()))
        if time.monotonic() > deadline:
            raise ServerError("timed out waiting for %s" % what)
        time.sleep(0.02)


def port_open(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def socket_open(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()

# ------------------------------------------------------------------ processes


class Proc:
    """A process started in a session of its own, its standard output and
    error appended to a log file.  stop() ends it and everything it
    started (even what left its process group)."""

    def __init__(self, name, argv, log, env=None, cwd=None, stop_signal=None):
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.cwd = cwd
        self.stop_signal = stop_signal or signal.SIGTERM
        self.popen = None
        self.sid = None
        self.stopped_status = None

    def start(self):
        with open(self.log, "ab") as logf:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=logf, env=self.env, cwd=self.cwd,
                start_new_session=True)
        self.sid = self.popen.pid
        _PROCS.append(self)
        return self

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def returncode(self):
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines=40):
        return tail(self.log, lines)

    def stop(self, timeout=20):
        """Sends the stop signal, waits up to timeout seconds, then kills
        whatever is left in its session.  Returns the descriptions of the
        processes that had to be killed (empty after a clean stop); the
        exit status is in stopped_status."""
        if self.popen is None:
            return []
        killed = []
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(self.stop_signal)
            except OSError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                killed.append(_describe(self.popen.pid))
                self.popen.kill()
                self.popen.wait()
        self.stopped_status = self.popen.returncode
        # The session outlives its leader: workers or CGI children may be
        # finishing.  Give them a moment, then kill what remains.
        deadline = time.monotonic() + 5
        while pids_in_session(self.sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(5):
            pids = pids_in_session(self.sid)
            if not pids:
                break
            killed += _kill_all(pids)
            time.sleep(0.1)
        if self in _PROCS:
            _PROCS.remove(self)
        self.popen = None
        return killed

# ------------------------------------------------------------------ nginx


class Nginx:
    """nginx with its own prefix under root/nginx: the main configuration
    written here wraps `site` (a server block, e.g. a substituted
    deploy/nginx-*.conf).  The master runs as root in the foreground, the
    workers as `user`."""

    name = "nginx"

    def __init__(self, root, site, port, user=WEB_USER, group=WEB_GROUP,
                 workers=2):
        self.dir = os.path.join(root, "nginx")
        self.port = port
        self.conf = os.path.join(self.dir, "conf", "nginx.conf")
        self.error_log = os.path.join(self.dir, "logs", "error.log")
        self.access_log = os.path.join(self.dir, "logs", "access.log")
        self.proc = None
        for sub in ("conf", "logs", "run", "tmp"):
            mkdir(os.path.join(self.dir, sub))
        # `include fastcgi_params` in a site is relative to the main
        # configuration's directory: give it a copy of Debian's.
        shutil.copy("/etc/nginx/fastcgi_params",
                    os.path.join(self.dir, "conf", "fastcgi_params"))
        write_file(os.path.join(self.dir, "conf", "site.conf"), site)
        temp = os.path.join(self.dir, "tmp")
        # nginx switches users only when started as root.
        user_line = "user %s %s;" % (user, group) if os.geteuid() == 0 else ""
        write_file(self.conf, """\
# Written by the end-to-end tests: a private nginx on 127.0.0.1.
%(user_line)s
worker_processes %(workers)d;
daemon off;
master_process on;
pid %(dir)s/run/nginx.pid;
error_log %(error_log)s info;

events {
    worker_connections 256;
}

http {
    access_log %(access_log)s;
    client_body_temp_path %(temp)s/body;
    fastcgi_temp_path %(temp)s/fastcgi;
    proxy_temp_path %(temp)s/proxy;
    uwsgi_temp_path %(temp)s/uwsgi;
    scgi_temp_path %(temp)s/scgi;
    default_type application/octet-stream;

    include %(dir)s/conf/site.conf;
}
""" % dict(user_line=user_line, workers=workers, dir=self.dir,
           error_log=self.error_log, access_log=self.access_log, temp=temp))

    def argv(self, *more):
        return [NGINX, "-p", self.dir + "/", "-c", self.conf,
                "-e", self.error_log] + list(more)

    def start(self, timeout=30):
        test = subprocess.run(self.argv("-t"), capture_output=True, text=True)
        if test.returncode != 0:
            raise ServerError("nginx -t failed:\n%s%s" % (test.stdout,
                                                          test.stderr))
        self.proc = Proc("nginx", self.argv(),
                         os.path.join(self.dir, "logs", "stderr.log"),
                         stop_signal=signal.SIGQUIT).start()
        wait_until(lambda: port_open(self.port), timeout,
                   "nginx to listen on port %d" % self.port, self.proc)
        return self

    def logs(self):
        return [("nginx error log", self.error_log)]

    def stop(self):
        return self.proc.stop() if self.proc else []

# ------------------------------------------------------------------ Apache


class Apache:
    """Apache with its own ServerRoot under root/apache: the main
    configuration written here loads `modules` (names such as
    "proxy_fcgi", from /usr/lib/apache2/modules) and wraps `site` (a
    substituted deploy/apache-*.conf, or any lines).  The parent runs as
    root in the foreground (-DFOREGROUND), the children as `user`."""

    name = "Apache"

    BASE_MODULES = ("authz_core", "authz_host", "mime", "alias", "dir",
                    "env", "setenvif", "headers")

    def __init__(self, root, site, port, modules=(), mpm="event",
                 user=WEB_USER, group=WEB_GROUP, docroot=None, extra="",
                 suexec=False):
        self.dir = os.path.join(root, "apache")
        self.port = port
        self.conf = os.path.join(self.dir, "conf", "httpd.conf")
        self.error_log = os.path.join(self.dir, "logs", "error.log")
        self.access_log = os.path.join(self.dir, "logs", "access.log")
        self.proc = None
        for sub in ("conf", "logs"):
            mkdir(os.path.join(self.dir, sub))
        # The runtime directory holds sockets (mod_cgid's, mod_fcgid's)
        # the children use: theirs.
        self.run = mkdir(os.path.join(self.dir, "run"), 0o755, user, group)
        docroot = docroot or mkdir(os.path.join(self.dir, "htdocs"))
        mods = []
        for m in ("mpm_" + mpm,) + self.BASE_MODULES + tuple(modules):
            so = os.path.join(APACHE_MODULES, "mod_%s.so" % m)
            mods.append("LoadModule %s_module %s" % (m, so))
        write_file(os.path.join(self.dir, "conf", "site.conf"), site)
        write_file(self.conf, """\
# Written by the end-to-end tests: a private Apache on 127.0.0.1.
ServerRoot "%(dir)s"
%(modules)s
Listen 127.0.0.1:%(port)d
ServerName 127.0.0.1
User %(user)s
Group %(group)s
# suEXEC only where a test asks for it: with Debian's suexec binary
# installed (the test packages have it) Apache turns it on by itself, and
# then keeps mod_fcgid's process manager and mod_cgid's daemon root.
Suexec %(suexec)s
PidFile "%(dir)s/run/httpd.pid"
DefaultRuntimeDir "%(dir)s/run"
Mutex file:%(dir)s/run default
ErrorLog "%(error_log)s"
LogLevel info
LogFormat "%%h %%l %%u %%t \\"%%r\\" %%>s %%b" common
CustomLog "%(access_log)s" common
TypesConfig /etc/mime.types
Timeout 120
KeepAlive On
DocumentRoot "%(docroot)s"

<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "%(docroot)s">
    Require all granted
</Directory>

%(extra)s
Include "%(dir)s/conf/site.conf"
""" % dict(dir=self.dir, modules="\n".join(mods), port=port, user=user,
           group=group, error_log=self.error_log,
           access_log=self.access_log, docroot=docroot, extra=extra,
           suexec="On" if suexec else "Off"))

    def argv(self, *more):
        return [APACHE, "-d", self.dir, "-f", self.conf] + list(more)

    def start(self, timeout=30):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                       "/sbin:/bin", "LANG": "C"}
        test = subprocess.run(self.argv("-t"), capture_output=True,
                              text=True, env=env)
        if test.returncode != 0:
            raise ServerError("apache2 -t failed:\n%s%s" % (test.stdout,
                                                            test.stderr))
        self.proc = Proc("apache2", self.argv("-DFOREGROUND"),
                         os.path.join(self.dir, "logs", "stderr.log"),
                         env=env, stop_signal=signal.SIGTERM).start()
        wait_until(lambda: port_open(self.port), timeout,
                   "Apache to listen on port %d" % self.port, self.proc)
        return self

    def logs(self):
        return [("Apache error log", self.error_log)]

    def stop(self):
        return self.proc.stop() if self.proc else []
