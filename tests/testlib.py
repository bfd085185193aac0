"""Helpers for the Python tests of podio-webhook: TAP output, the Podio API
simulator (tests/podio-sim.py), configuration files, environments and
running the programs under test.

    import testlib
    t = testlib.Tap()
    with testlib.Sim() as sim:
        env = testlib.base_env(sim)
        r = testlib.run([testlib.PODIO_WEBHOOK, "check"], env=env)
        t.ok(r.returncode == 0, "check works", r.stderr)
    t.done()

An uncaught exception in a test prints `not ok - uncaught exception` with
the traceback as diagnostics and exits non-zero (Tap() installs a
sys.excepthook; testlib.main(fn) does the same for a function).
"""

import atexit
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(HERE)
BUILDDIR = os.environ.get("top_builddir") or SRCDIR
PODIO_WEBHOOK = os.environ.get("PODIO_WEBHOOK") or os.path.join(
    BUILDDIR, "handler", "podio-webhook")
PODIO_TEST_CLIENT = os.environ.get("PODIO_TEST_CLIENT") or os.path.join(
    BUILDDIR, "tests", "podio-test-client")
SIM_SCRIPT = os.path.join(HERE, "podio-sim.py")

DEFAULT_CREDS = dict(client_id="test-client", client_secret="test-secret",
                     app_id="1234", app_token="app-token")
PASSWORD_CREDS = dict(client_id="test-client", client_secret="test-secret",
                      username="user@example.com", password="pw")

# ------------------------------------------------------------------ temp dirs

_TMPDIRS = []


def _cleanup_tmpdirs():
    for d in _TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_tmpdirs)


def tmpdir():
    """A fresh temporary directory, removed when the test exits."""
    d = tempfile.mkdtemp(prefix="podio-test-")
    _TMPDIRS.append(d)
    return d

# ------------------------------------------------------------------ TAP


def _escape(name):
    return str(name).replace("\\", "\\\\").replace("#", "\\#").replace(
        "\n", " ")


_CURRENT_TAP = [None]


class Tap:
    """TAP output: ok(), skip(), diag(), done()."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.finished = False
        _CURRENT_TAP[0] = self
        sys.excepthook = _excepthook

    def _print(self, text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def diag(self, msg):
        """Prints msg (any object) as `# ` diagnostic lines."""
        with self.lock:
            for line in str(msg).splitlines() or [""]:
                self._print("# " + line)

    def ok(self, cond, name, diag=None):
        """One check; prints diag (if given) when it fails.  Returns cond."""
        with self.lock:
            self.n += 1
            if not cond:
                self.failed += 1
            self._print("%s %d - %s" % ("ok" if cond else "not ok", self.n,
                                        _escape(name)))
        if not cond and diag is not None:
            self.diag(diag)
        return bool(cond)

    def is_(self, got, expected, name):
        """ok(got == expected) with both shown on failure."""
        return self.ok(got == expected, name,
                       "got:      %r\nexpected: %r" % (got, expected))

    def skip(self, name, why):
        with self.lock:
            self.n += 1
            self._print("ok %d - %s # SKIP %s" % (self.n, _escape(name),
                                                  _escape(why)))

    def skip_all(self, why):
        """Skips the whole test (no check run yet) and exits 0."""
        self._print("1..0 # SKIP %s" % _escape(why))
        self.finished = True
        sys.exit(0)

    def bail_out(self, why):
        self._print("Bail out! %s" % _escape(why))
        self.finished = True
        sys.exit(1)

    def done(self):
        """Prints the plan; exits 1 if any check failed, else 0."""
        with self.lock:
            self._print("1..%d" % self.n)
            self.finished = True
        sys.exit(1 if self.failed or self.n == 0 else 0)

    def crash(self, exc_type, exc, tb):
        """Reports an uncaught exception as a failure."""
        with self.lock:
            self.n += 1
            self.failed += 1
            self._print("not ok %d - uncaught exception: %s" % (
                self.n, _escape("%s: %s" % (exc_type.__name__, exc))))
        self.diag("".join(traceback.format_exception(exc_type, exc, tb)))
        if not self.finished:
            with self.lock:
                self._print("1..%d" % self.n)
                self.finished = True


def _excepthook(exc_type, exc, tb):
    tap = _CURRENT_TAP[0]
    if tap is None or issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    tap.crash(exc_type, exc, tb)
    sys.stdout.flush()
    # Exit status is 1 after an uncaught exception anyway.


def main(fn, *args):
    """Runs fn(*args) under a Tap: exit 1 and `not ok` on an exception."""
    try:
        fn(*args)
    except SystemExit:
        raise
    except BaseException:
        tap = _CURRENT_TAP[0] or Tap()
        tap.crash(*sys.exc_info())
        sys.exit(1)

# ------------------------------------------------------------------ simulator


class SimError(Exception):
    pass


class Sim:
    """The Podio API simulator, run as a child process.

    Use as a context manager (or call start() and stop()).  Keyword
    arguments given to Sim() are passed to configure() once it runs.
    tls=(CERT, KEY), PEM files: it also serves HTTPS on tls_port (the
    control API stays on url, plain HTTP)."""

    def __init__(self, tls=None, **config):
        self.proc = None
        self.port = None
        self.url = None
        self.tls = tls
        self.tls_port = None
        self.initial = config
        self._dir = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self, timeout=30):
        self._dir = tempfile.mkdtemp(prefix="podio-sim-")
        port_file = os.path.join(self._dir, "port")
        tls = ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]] \
            if self.tls else []
        self.proc = subprocess.Popen(
            [sys.executable, SIM_SCRIPT, "--port", "0", "--port-file",
             port_file, "--host", "127.0.0.1",
             "--parent-pid", str(os.getpid())] + tls,
            stdin=subprocess.DEVNULL)
        _SIMS.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    ports = [int(w) for w in text.split()]
                    self.port = ports[0]
                    if self.tls:
                        self.tls_port = ports[1]
                    break
            if self.proc.poll() is not None:
                raise SimError("the simulator exited with status %d"
                               % self.proc.returncode)
            if time.monotonic() > deadline:
                self.stop()
                raise SimError("the simulator did not start")
            time.sleep(0.01)
        self.url = "http://127.0.0.1:%d" % self.port
        if self.initial:
            self.configure(**self.initial)
        return self

    def stop(self):
        proc = self.proc
        self.proc = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self in _SIMS:
            _SIMS.remove(self)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -------------------------------------------------------------- control

    def control(self, method, path, body=None, query=None):
        """One call to the control API; returns the decoded JSON answer."""
        url = self.url + "/__sim/" + path
        if query:
            url += "?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read()
        except urllib.error.HTTPError as exc:
            raise SimError("%s /__sim/%s: %d %s" % (
                method, path, exc.code, exc.read().decode(errors="replace")))
        return json.loads(text) if text else None

    def reset(self):
        self.control("POST", "reset", {})

    def configure(self, **keys):
        """Sets simulator configuration keys (see podio-sim.py); returns
        the whole configuration."""
        return self.control("POST", "config", keys)

    def config(self):
        return self.control("GET", "config")

    def fail(self, path_prefix, status=503, count=1, method=None, drop=False,
             body=None, headers=None, **more):
        """The next `count` (None: all) matching requests answer `status`
        with a Podio-shaped error (or the raw `body`), or lose their
        connection (drop=True).  More keys: content_type, error,
        error_description, delay_ms.  Returns the rule id."""
        rule = dict(path_prefix=path_prefix, status=status, count=count,
                    method=method, drop=drop, body=body,
                    headers=headers or {})
        rule.update(more)
        return self.control("POST", "fail", rule)["id"]

    def clear_fails(self):
        self.control("DELETE", "fail")

    def fails(self):
        return self.control("GET", "fail")

    def expire_tokens(self, access_token=None, refresh_tokens=False):
        """Every access token issued so far (or just one) now answers 401
        expired_token; with refresh_tokens their refresh tokens die too.
        Returns how many were expired."""
        return self.control("POST", "expire_tokens", {
            "access_token": access_token,
            "refresh_tokens": refresh_tokens})["expired"]

    def tokens(self):
        return self.control("GET", "tokens")

    def stats(self):
        return self.control("GET", "stats")

    def requests(self, path_prefix=None, method=None, since=None):
        """Recorded requests (dicts: id, conn, method, path, query,
        headers, body, status, time, done, mono, done_mono), oldest
        first.  time/mono: arrival (wall clock / the simulator's
        monotonic clock); done/done_mono: answer sent (None before)."""
        return self.control("GET", "requests", query={
            "path_prefix": path_prefix, "method": method, "since": since})

    def token_requests(self):
        return self.requests("/oauth/token")

    def api_requests(self):
        """Recorded requests other than the token endpoint."""
        return [r for r in self.requests() if r["path"] != "/oauth/token"]

    def clear_requests(self):
        self.control("DELETE", "requests")

    def gate(self, path_prefix, method=None, count=1):
        """Holds the next `count` matching requests until release();
        returns the gate id."""
        return self.control("POST", "gate", {
            "path_prefix": path_prefix, "method": method,
            "count": count})["id"]

    def gate_status(self, gid):
        return self.control("GET", "gate/%d" % gid)

    def gate_waiting(self, gid):
        return self.gate_status(gid)["waiting"]

    def release(self, gid):
        return self.control("POST", "gate/%d/release" % gid, {})

    def wait_until(self, fn, timeout=30, what="condition"):
        """Polls fn() until it returns a true value (returned); raises
        SimError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = fn()
            if value:
                return value
            if time.monotonic() > deadline:
                raise SimError("timed out waiting for %s" % what)
            time.sleep(0.01)

    def verify_code(self, hook_id):
        """The last code the simulator issued for that hook (None if the
        hook is unknown)."""
        try:
            return self.control("GET", "verify_code/%d" % int(hook_id))["code"]
        except SimError:
            return None

    def hooks(self):
        return self.control("GET", "hooks")

    def add_hook(self, url, ref_type="app", ref_id=1234, type="item.create",
                 status="inactive"):
        """Adds a hook directly (no verify delivery); returns it."""
        return self.control("POST", "hooks", dict(
            url=url, ref_type=ref_type, ref_id=ref_id, type=type,
            status=status))

    def set_hook_status(self, hook_id, status):
        """Sets a hook's status ("active" or "inactive", as Podio turns
        a failing hook inactive); returns the hook."""
        return self.control("POST", "hooks/%d" % int(hook_id),
                            {"status": status})

    def add_item(self, item_id, app_id=1234, raw=None, **fields):
        """Defines an item: the generated one with `fields` overriding its
        top-level keys ("revision" sets current_revision.revision and its
        item_revision_id, "revision_by" its created_by).  raw:
        the exact text GET /item/{id} answers.  Returns the item."""
        return self.control("POST", "items", {
            "item_id": item_id, "app_id": app_id, "set": fields, "raw": raw})

    def edit_item(self, item_id, by=None, title=None, hook=True,
                  last_edit_on=None):
        """A new revision of the item made by `by` ({"type", "id"}; the
        test user by default), last edited now (or last_edit_on), firing
        item.update unless hook is false (an edit nobody is told of).
        Returns {"revision", "item_revision_id"}."""
        return self.control("POST", "items/%d/edit" % item_id, {
            "by": by, "title": title, "hook": hook,
            "last_edit_on": last_edit_on})

    def delete_item(self, item_id, gone=False):
        """The item now answers 404 (410 with gone=True)."""
        self.control("POST", "items/%d/delete" % item_id, {"gone": gone})

    def deliver_full(self, hook_id=None, params=None, url=None, **more):
        """POSTs a form body to the hook's URL (or url), loopback only;
        returns {"status", "body", "headers", "error"}.  More keys:
        query_to_body, body, content_type, method."""
        req = {"hook_id": hook_id, "url": url, "params": params or {}}
        req.update(more)
        return self.control("POST", "deliver", req)

    def deliver(self, hook_id, params, **more):
        """As deliver_full; returns the HTTP status (0: no answer)."""
        return self.deliver_full(hook_id, params, **more)["status"]

    def deliveries(self):
        return self.control("GET", "deliveries")

    def clear_deliveries(self):
        self.control("DELETE", "deliveries")


def make_certs(d, host):
    """A throwaway CA and a server certificate for the name host signed
    by it, made with the openssl command in directory d; returns the
    paths (ca.pem, server.pem, server.key).  Raises
    subprocess.CalledProcessError when openssl fails."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca.key", "-out", "ca.pem",
            "-subj", "/CN=podio-webhook test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=" + host)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n" % host)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", "server.pem", "-extfile", "server.ext")
    return tuple(os.path.join(d, n) for n in ("ca.pem", "server.pem",
                                               "server.key"))


_SIMS = []


@atexit.register
def _stop_sims():
    for sim in list(_SIMS):
        sim.stop()

# ------------------------------------------------------------------ programs


def read_text(path):
    """The text of the file at path (undecodable bytes replaced), or ""
    when it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def write_config(path, lines=(), **keys):
    """Writes `key = value` lines (None values left out), then the extra
    raw `lines`.  Returns path."""
    with open(path, "w") as f:
        for key, value in keys.items():
            if value is not None:
                f.write("%s = %s\n" % (key, value))
        for line in lines:
            f.write(line + "\n")
    return path


def base_env(sim=None, **overrides):
    """os.environ without any PODIO_* variable, plus PODIO_API_URL (the
    simulator), the default app credentials and a private
    PODIO_TOKEN_CACHE in a fresh temp dir.  overrides set PODIO_<KEY> for
    each key (a value of None removes it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIO_")}
    if sim is not None:
        env["PODIO_API_URL"] = sim.url
    for key, value in DEFAULT_CREDS.items():
        env["PODIO_" + key.upper()] = value
    env["PODIO_TOKEN_CACHE"] = os.path.join(tmpdir(), "token-cache.json")
    for key, value in overrides.items():
        name = "PODIO_" + key.upper()
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def wrapper():
    """$PODIO_TEST_WRAPPER split into words ([] when unset)."""
    return shlex.split(os.environ.get("PODIO_TEST_WRAPPER", "") or "")


def wait_for(fn, what, timeout=60):
    """Polls fn() until it returns a true value, which it returns; raises
    RuntimeError naming what after timeout seconds (ten times as long
    under a wrapper such as valgrind)."""
    deadline = time.monotonic() + timeout * (10 if wrapper() else 1)
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.02)


def stop_process(proc, timeout=60):
    """Stops proc with SIGTERM (a server's clean stop) and waits for it,
    killing it after timeout seconds (ten times as long under a wrapper);
    returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout * (10 if wrapper() else 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run(argv, env=None, input=None, timeout=60, wrap=True, cwd=None):
    """subprocess.run with captured text output, $PODIO_TEST_WRAPPER put
    before argv (wrap=False leaves it out); the timeout grows 10 times
    under a wrapper."""
    words = wrapper() if wrap else []
    if words:
        timeout *= 10
    return subprocess.run(words + list(argv), env=env, input=input,
                          timeout=timeout, capture_output=True, text=True,
                          cwd=cwd)


def popen(argv, env=None, wrap=True, **kw):
    """subprocess.Popen with $PODIO_TEST_WRAPPER applied; text mode, pipes
    for stdout and stderr unless given."""
    words = wrapper() if wrap else []
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    return subprocess.Popen(words + list(argv), env=env, **kw)


# ------------------------------------------------------------------ inotify

IN_CREATE, IN_MOVED_TO = 0x100, 0x80


def inotify_watch(directory):
    """A non-blocking inotify descriptor reporting names created in or
    moved into directory; None where inotify is not available."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, directory.encode(),
                              IN_CREATE | IN_MOVED_TO) < 0:
        os.close(fd)
        return None
    return fd


def inotify_events(fd):
    """The (name, mask) pairs queued on an inotify_watch() descriptor."""
    out, data = [], b""
    while True:
        try:
            data += os.read(fd, 65536)
        except BlockingIOError:
            break
    while len(data) >= 16:
        _wd, mask, _cookie, n = struct.unpack("iIII", data[:16])
        name = data[16:16 + n].split(b"\0", 1)[0].decode()
        out.append((name, mask))
        data = data[16 + n:]
    return out


_TAP_RESULT = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:- )?(.*)$")
_TAP_SKIP = re.compile(r"\s*#\s*skip\b\s*(.*)$", re.I)
_TAP_PLAN = re.compile(r"^1\.\.(\d+)(.*)$")


def relay_tap(t, lines, what):
    """Relays the TAP lines of another test (what names it) into t: each
    result becomes one of t's, renumbered, its skips with their reasons;
    its diagnostics are relayed.  Returns (plan, results): the other
    test's 1..N (None when missing) and how many results it gave."""
    plan, n = None, 0
    for line in lines:
        line = line.rstrip("\n")
        m = _TAP_RESULT.match(line)
        if m:
            n += 1
            rest = m.group(3)
            sk = _TAP_SKIP.search(rest)
            if m.group(1) == "ok" and sk:
                t.skip(rest[:sk.start()].strip(),
                       sk.group(1).strip() or "(no reason given)")
            else:
                t.ok(m.group(1) == "ok", rest.strip())
            continue
        m = _TAP_PLAN.match(line)
        if m:
            plan = int(m.group(1))
            sk = _TAP_SKIP.search(m.group(2))
            if sk:
                t.skip(what, sk.group(1))
            continue
        if line.startswith("Bail out!"):
            t.ok(False, what + ": " + line)
            continue
        if line.startswith("#"):
            t.diag(line[1:].strip())
        elif line.strip():
            t.diag(what + ": " + line)
    return plan, n


def run_relayed(t, argv, env, what, timeout):
    """Runs argv (another TAP test) and relays its results into t
    (relay_tap()), killing it after timeout seconds.  Returns (ok,
    stderr's end): ok when it exited 0 having given every result of its
    plan.  Says in a diagnostic how long it took."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err,
                                text=True, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            plan, n = relay_tap(t, proc.stdout, what)
            status = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read()
    t.diag("%s took %.1f s" % (what, time.monotonic() - started))
    return (status == 0 and plan is not None and plan == n,
            "exit status %s, plan 1..%s, %d results\n%s" % (
                status, plan, n, stderr[-4000:]))


def built_with_postgresql():
    """(yes, why not): whether this build has the PostgreSQL spool
    backend, from its config.h."""
    path = os.path.join(BUILDDIR, "config.h")
    text = read_text(path)
    if not text:
        return False, "%s cannot be read" % path
    if not re.search(r"^#define HAVE_POSTGRESQL 1$", text, re.M):
        return False, ("this build has no PostgreSQL backend (configured "
                       "without libpq: install libpq-dev, run configure "
                       "again)")
    return True, ""
