#!/usr/bin/env python3
"""deploy/README.md followed to the letter: the shell blocks of setup 1
(nginx + serve) and setup 5 (shared hosting, Apache CGI) run in their
order, from the first command to a verified hook and the Verify block,
against the Podio simulator.

The marks.  An HTML comment on the line before a fenced block (invisible
on GitHub) says that this test runs it:

    <!-- test: SETUP [KIND][: REASON] -->

SETUP is setup1 or setup5; KIND is one of
    (none)   run the block as written; it must exit 0
    skip     do not run it, REASON says why (printed as a TAP skip)
    installed  an `apt-get install`: not run (tests/run installs the
             packages of deploy/packages.txt), but every package it
             names must be installed already (dpkg), so the guide names
             no package the tests did not install
    hook     run it, read the hook id it prints (alone on a line, or
             in `created hook ID (...)`), and wait until the
             simulator's hook.verify went through the web server and the
             hook is active
    verify   run it and check its output: a GET answered 405 with
             `Allow: POST`, a POST with the secret answered 200 with
             `ok: queued as event N`, `spool status` printed
    events   wait until the Verify block's event is in the events file,
             then run it and check that it shows the event and the
             handler's log line of the request
    crontab  a crontab: each entry's command runs once, as cron would
             (/bin/sh -c in HOME, cron's environment, standard input
             /dev/null and no controlling terminal); it must exit 0, or
             1 without output when it ends in `| grep ...`
Every shell block of setup 1's sections ("Common steps", "1. ...") and
setup 5's ("5. ...") must carry a mark of its setup, so that none drifts
untested.

Each block runs in a new `bash -e -o pipefail`, with these substitutions
and nothing else:
  - your values: YOUR-CLIENT-ID, YOUR-CLIENT-SECRET, YOUR-APP-ID,
    YOUR-APP-TOKEN, YOUR-SECRET become the simulator's credentials and a
    fresh secret;
  - the API: an `api_url = SIMULATOR` line follows the guide's
    `webhook_secret = YOUR-SECRET` line;
  - setup 5's bundle: podio-webhook-cgi-VERSION-x86_64 becomes the
    name of the one under test;
  - the host: http://hooks.example.com (setup 1) and
    http(s)://www.example.com (setup 5) become http://127.0.0.1:PORT of
    the test's nginx or Apache, a bare host name 127.0.0.1.  The
    simulator delivers over http only: under setup 5 HTTPS is the hosting
    company's, but in setup 1 an https:// URL stays as written (and
    fails), since its certificate step is one the test skips.
Commands that cannot run in a test are replaced by stated equivalents,
through stand-ins first on PATH (setup 1):
  - `systemctl daemon-reload`: nothing;
  - `systemctl enable --now UNIT`: the unit's directories (Runtime-,
    State-, LogsDirectory=) are made as systemd would, and its ExecStart=
    command line is started directly as its User= and Group=, with its
    UMask= (its sandboxing options are not applied), its output kept as
    the unit's journal; stopped at the end;
  - `systemctl reload nginx`: a private nginx (tests/e2e/servers.py)
    serves the site file the guide wrote in /etc/nginx/sites-enabled/,
    its `listen 80` moved to a free loopback port;
  - `systemctl reload UNIT`: SIGHUP to the unit's process;
  - `journalctl -u UNIT [-n N]`: the last lines of that journal.
The skipped build step (`make install`) is replaced by copying the binary
under test to /usr/local/bin/podio-webhook; `apt-get install` is skipped
(tests/run installs deploy/packages.txt).

Nothing of the host is touched.  The test runs itself again under
`unshare --mount --propagation private`, and in that mount namespace
mounts an overlay (its upper layer on a tmpfs) on /etc, /usr/local,
/var/lib, /var/log and /run: `useradd`, /etc/podio-webhook.conf,
/etc/systemd/system, /etc/nginx/sites-*, /usr/local/bin/podio-webhook,
/var/lib/podio-webhook, /var/log/podio-webhook and /run/podio-webhook
land in throwaway layers that vanish with the namespace.  Through a
descriptor of the host's root opened before, the test checks at the end
that none of these paths changed on the host.

Setup 5 runs as an account of its own (made by useradd in the private
/etc), its HOME in a temporary directory, from the CGI bundle: the
tarball of `make cgi-bundle` in the build directory under test (or
$PODIO_CGI_BUNDLE), reused when it is newer than the program under test
and than every file it is made of outside the program's sources
(deploy/, configure.ac, Makefile.am), is copied into that HOME, owned by
the account, as the guide's skipped `scp` would; the guide's blocks
unpack it there and run its install.sh.  Apache with mod_cgi (prefork)
runs its children as that account, as suexec would, and serves
~/public_html.  The guide's cron lines must be those of the bundle's
INSTALL, and its table of installed paths INSTALL's list.
"""
import glob
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import guide  # noqa: E402
import namespace  # noqa: E402
import scenario  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

PRIVATE = ("/etc", "/usr/local", "/var/lib", "/var/log", "/run")
# What setup 1 makes; on the host, none may change.
HOST_PATHS = ("etc/passwd", "etc/group", "etc/shadow",
              "etc/podio-webhook.conf",
              "etc/systemd/system/podio-webhook.service",
              "etc/nginx/sites-available/podio-webhook",
              "etc/nginx/sites-enabled/podio-webhook",
              "usr/local/bin/podio-webhook", "var/lib/podio-webhook",
              "var/log/podio-webhook", "run/podio-webhook")
SETUP1_SECTIONS = ("Common steps", "1. ")
SETUP5_SECTIONS = ("5. ",)
ACCOUNT = "podio-guide"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CRON_PATH = "/usr/bin:/bin"
EVENT_ITEM = 42     # the item of the guide's test event
TARBALL = "podio-webhook-cgi-*-x86_64.tar.gz"

STANDIN = r"""#!/usr/bin/python3
# Stand-in of the test of deploy/README.md: asks the test to do the
# stated equivalent of this command (see tests/e2e/test-guide.py).
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(%(ctl)r)
s.sendall(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]).encode()
          + b"\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
answer = json.loads(data)
sys.stdout.write(answer["out"])
sys.stderr.write(answer["err"])
sys.exit(answer["rc"])
"""

# ------------------------------------------------------------------ namespace


def host_state(fd):
    """(exists, size, mtime) of each of HOST_PATHS, seen through fd."""
    out = {}
    for p in HOST_PATHS:
        try:
            st = os.stat(p, dir_fd=fd, follow_symlinks=False)
            out[p] = (True, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            out[p] = (False, 0, 0)
    return out


# ------------------------------------------------------------------ stand-ins


class Standins:
    """The test's side of the stand-ins (see the docstring): a thread
    answering on a unix socket, the executables in a directory to put
    first on PATH."""

    def __init__(self, root, binary):
        self.root = root
        self.binary = binary
        self.dir = servers.mkdir(os.path.join(root, "standins"))
        self.ctl = os.path.join(root, "standins.sock")
        self.units = {}     # unit name: (Proc, journal path)
        self.nginx = None
        self.port = servers.free_port()
        self.lock = threading.Lock()
        for prog in ("systemctl", "journalctl"):
            servers.write_file(os.path.join(self.dir, prog),
                               STANDIN % dict(ctl=self.ctl), 0o755)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.ctl)
        os.chmod(self.ctl, 0o600)
        self.sock.listen(4)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                try:
                    argv = json.loads(data)
                    with self.lock:
                        rc, out, err = self.handle(argv[0], argv[1:])
                except Exception as exc:  # reported to the block
                    rc, out, err = 1, "", "stand-in failed: %s: %s\n" % (
                        type(exc).__name__, exc)
                conn.sendall(json.dumps(dict(rc=rc, out=out,
                                             err=err)).encode())

    def handle(self, prog, args):
        if prog == "journalctl":
            return self.journalctl(args)
        words = [a for a in args if not a.startswith("-")]
        opts = [a for a in args if a.startswith("-")]
        if words == ["daemon-reload"]:
            return 0, "", ""
        if len(words) == 2 and words[0] == "enable" and opts == ["--now"]:
            return self.start_unit(words[1])
        if words == ["reload", "nginx"]:
            return self.reload_nginx()
        if len(words) == 2 and words[0] == "reload" and \
                words[1] in self.units:
            self.units[words[1]][0].popen.send_signal(signal.SIGHUP)
            return 0, "", ""
        return 1, "", "systemctl %s: no stand-in for this\n" % " ".join(args)

    def journalctl(self, args):
        unit, lines = None, 10
        i = 0
        while i < len(args):
            if args[i] == "-u" and i + 1 < len(args):
                unit = args[i + 1]
                i += 1
            elif args[i] == "-n" and i + 1 < len(args):
                lines = int(args[i + 1])
                i += 1
            i += 1
        unit = (unit or "").replace(".service", "")
        if unit not in self.units:
            return 1, "", "journalctl: no journal of %r here\n" % unit
        return 0, servers.tail(self.units[unit][1], lines) + "\n", ""

    def start_unit(self, name):
        name = name.replace(".service", "")
        path = "/etc/systemd/system/%s.service" % name
        keys = {}
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith(("#", ";", "[")) and \
                        "=" in line:
                    k, _, v = line.partition("=")
                    keys[k.strip()] = v.strip()
        user, group = keys["User"], keys["Group"]
        for key, top in (("RuntimeDirectory", "/run"),
                         ("StateDirectory", "/var/lib"),
                         ("LogsDirectory", "/var/log")):
            if key in keys:
                mode = int(keys.get(key + "Mode", "0755"), 8)
                servers.mkdir(os.path.join(top, keys[key]), mode, user,
                              group)
        argv = shlex.split(keys["ExecStart"])
        journal = os.path.join(self.root, "journal-%s.log" % name)
        umask = keys.get("UMask", "0022")
        proc = servers.Proc(
            name, ["sh", "-c", 'umask %s && exec "$@"' % umask, "sh"] +
            servers.as_user(user, group) + argv, journal,
            env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}).start()
        self.units[name] = (proc, journal)
        listen = [a for a in argv if a.startswith("unix:")]
        if listen:
            sock = listen[0][len("unix:"):]
            servers.wait_until(lambda: servers.socket_open(sock), 30,
                               "the socket of %s" % name, proc)
        return 0, "", ""

    def reload_nginx(self):
        site_path = "/etc/nginx/sites-enabled/podio-webhook"
        with open(site_path) as f:
            site = f.read()
        site, n = re.subn(r"(?m)^(\s*)listen\s+80\s*;",
                          r"\g<1>listen 127.0.0.1:%d;" % self.port, site)
        if n != 1:
            return 1, "", "the site file has %d `listen 80;` lines\n" % n
        if self.nginx is not None:
            self.nginx.stop()
        self.nginx = servers.Nginx(self.root, site, self.port)
        self.nginx.start()
        return 0, "", ""

    def close(self):
        self.sock.close()

# ------------------------------------------------------------------ running


class Setup:
    """One setup's run: its values, how its blocks run, its checks."""

    def __init__(self, t, sim, name, port, events_log, host, user=None,
                 env=None, cwd=None, host_tls=False):
        self.t = t
        self.sim = sim
        self.name = name
        self.port = port
        self.events_log = events_log
        self.host = host
        self.host_tls = host_tls    # https:// to the host is the host's
        self.user = user
        self.env = env
        self.cwd = cwd
        self.secret = "guide-" + secrets.token_hex(16)
        self.failed = None      # the name of the first block that failed
        self.hook_id = None
        self.logs = []          # (label, path) shown when a check fails
        self.before = 0         # events of EVENT_ITEM before Verify
        self.extra = {}         # more stand-ins and their values

    def values(self):
        c = testlib.DEFAULT_CREDS
        return {"YOUR-CLIENT-ID": c["client_id"],
                "YOUR-CLIENT-SECRET": c["client_secret"],
                "YOUR-APP-ID": c["app_id"],
                "YOUR-APP-TOKEN": c["app_token"],
                "YOUR-SECRET": self.secret}

    def substitute(self, text):
        text = text.replace("webhook_secret = YOUR-SECRET",
                            "webhook_secret = YOUR-SECRET\napi_url = " +
                            self.sim.url)
        for k, v in list(self.values().items()) + list(self.extra.items()):
            text = text.replace(k, v)
        url = "http://127.0.0.1:%d" % self.port
        scheme = r"https?://" if self.host_tls else r"http://"
        text = re.sub(scheme + re.escape(self.host), url, text)
        text = text.replace(self.host, "127.0.0.1")
        left = re.findall(r"YOUR-[A-Z-]+|HOOK-ID|-VERSION-", text)
        if left:
            raise guide.GuideError("no value for %s" % ", ".join(left))
        return text

    def argv(self, script):
        prefix = []
        if self.user is not None:
            prefix = ["setpriv", "--reuid=" + self.user,
                      "--regid=" + self.user, "--init-groups", "--"]
        return prefix + ["bash", "-e", "-o", "pipefail", "-c", script]

    def run(self, argv, env=None, cwd=None, session=False):
        """argv's result; with session, in a session of its own, so
        without a controlling terminal (as cron runs its jobs)."""
        return subprocess.run(argv, capture_output=True, text=True,
                              env=env or self.env, cwd=cwd or self.cwd,
                              stdin=subprocess.DEVNULL, timeout=120,
                              start_new_session=session)

    def show_logs(self):
        for label, path in self.logs:
            self.t.diag("--- %s (%s), last lines:" % (label, path))
            self.t.diag(servers.tail(path, 20) or "(empty)")

    def ok(self, cond, name, diag=None):
        if self.t.ok(cond, "%s: %s" % (self.name, name), diag):
            return True
        self.show_logs()
        return False

    def block(self, b, before=None):
        """Runs block b (a skip is reported, and before() runs its stated
        equivalent).  Returns the CompletedProcess, or None."""
        if self.failed is not None:
            self.t.skip("%s: %s" % (self.name, b.name()),
                        "an earlier block failed: " + self.failed)
            return None
        if b.kind == "skip":
            self.t.skip("%s: %s" % (self.name, b.name()), b.reason)
            if before is not None:
                before(b)
            return None
        if b.kind == "installed":
            return self.installed(b)
        if b.kind == "crontab":
            return self.crontab(b)
        r = self.run(self.argv(self.substitute(b.text)))
        if not self.ok(r.returncode == 0, "%s runs" % b.name(),
                       "status %d\nstdout:\n%s\nstderr:\n%s" % (
                           r.returncode, r.stdout, r.stderr)):
            self.failed = b.name()
            return None
        return r

    def installed(self, b):
        """The packages of the `apt-get install` in b, each installed."""
        text = re.sub(r"\\\n\s*", " ", b.text)
        pkgs = []
        for m in re.finditer(r"apt-get\s+(?:-\S+\s+)*install\b([^\n;&|]*)",
                             text):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
        missing = [p for p in pkgs if subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
            text=True).stdout.strip() != "install ok installed"]
        self.ok(pkgs and not missing,
                "%s: every package it names is installed" % b.name(),
                "packages: %r\nnot installed: %r" % (pkgs, missing))
        return None

    def crontab(self, b):
        """Each entry's command once, as cron runs it."""
        home = self.env["HOME"]
        env = {"HOME": home, "LOGNAME": self.user, "USER": self.user,
               "SHELL": "/bin/sh", "PATH": CRON_PATH}
        all_ok = True
        for line in self.substitute(b.text).splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split(None, 5)
            if len(fields) < 6:
                self.ok(False, "%s: a crontab entry has 5 times and a "
                        "command" % b.name(), line)
                all_ok = False
                continue
            cmd = fields[5]
            r = self.run(["setpriv", "--reuid=" + self.user,
                          "--regid=" + self.user, "--init-groups", "--",
                          "/bin/sh", "-c", cmd], env=env, cwd=home,
                         session=True)
            greps = re.search(r"\|\s*grep\b[^|]*$", cmd) is not None
            passed = r.returncode == 0 or (
                greps and r.returncode == 1 and not r.stdout + r.stderr)
            short = cmd if len(cmd) < 70 else cmd[:67] + "..."
            all_ok &= self.ok(passed, "cron entry `%s` runs once" % short,
                              "status %d\noutput:\n%s%s" % (
                                  r.returncode, r.stdout, r.stderr))
        if not all_ok:
            self.failed = b.name()
        return None

    def after_hook(self, r):
        # `hooks create` prints the id alone, `hooks sync` a line
        # "created hook ID (app ...)".
        ids = [m.group(1) for m in re.finditer(
            r"^(?:created hook )?(\d+)(?: \(app \d+, [a-z._]+\))?$",
            r.stdout, re.M)]
        if not self.ok(len(ids) == 1, "the hook command printed the hook "
                       "id", r.stdout + r.stderr):
            self.failed = "hooks create"
            return
        hid = int(ids[0])
        self.hook_id = hid

        def state():
            for h in self.sim.hooks():
                if h["hook_id"] == hid and h["status"] == "active":
                    return "active"
            for d in self.sim.deliveries():
                if d["hook_id"] == hid and d["kind"] == "verify" and \
                        (d["status"] not in (0, 200) or d["error"]):
                    return "refused"
            return None
        try:
            got = self.sim.wait_until(state, 30, "hook %d active" % hid)
        except testlib.SimError:
            got = None
        if not self.ok(got == "active",
                       "hook %d: hook.verify went through the web server, "
                       "the hook is active" % hid,
                       json.dumps([d for d in self.sim.deliveries()
                                   if d["hook_id"] == hid], indent=1)):
            self.failed = "the hook's verification"

    def item_events(self):
        events, _bad = scenario.read_events(self.events_log)
        return [e for e in events if e.get("item_id") == EVENT_ITEM]

    def after_verify(self, r):
        out = r.stdout
        self.ok(re.search(r"^HTTP/\S+ 405", out, re.M) and
                re.search(r"^Allow: POST", out, re.M | re.I),
                "Verify: the GET is answered 405 with Allow: POST", out)
        self.ok(re.search(r"^HTTP/\S+ 200", out, re.M) and
                re.search(r"^ok: queued as (intake )?event \d+$", out, re.M),
                "Verify: the POST with the secret is answered 200 "
                "`ok: queued as event N`", out)
        self.ok(re.search(r"^pending:\s+\d+$", out, re.M) and
                re.search(r"^dead:\s+0$", out, re.M),
                "Verify: spool status prints the counts, none dead", out)

    def before_events(self):
        try:
            self.sim.wait_until(lambda: len(self.item_events()) >
                                self.before, 30, "the event")
            return True
        except testlib.SimError:
            return False

    def after_events(self, r, arrived):
        self.ok(arrived, "the Verify block's event reaches the events "
                "file %s" % self.events_log,
                servers.tail(self.events_log, 5))
        shown = []
        for ln in r.stdout.splitlines():
            try:
                shown.append(json.loads(ln))
            except ValueError:
                pass
        self.ok(any(e.get("item_id") == EVENT_ITEM and
                    e.get("type") == "item.delete" for e in shown),
                "tail shows the event", r.stdout)
        self.ok(re.search(r"method=POST .*status=200 .*"
                          r"queued as (intake )?event", r.stdout),
                "the handler's log shows the request (POST, 200, queued)",
                r.stdout)

    def run_all(self, blocks, install=None):
        for b in blocks:
            if b.kind == "events":
                arrived = self.failed is None and self.before_events()
            if b.kind == "verify":
                self.before = len(self.item_events())
            r = self.block(b, install)
            if r is None:
                continue
            if b.kind == "hook":
                self.after_hook(r)
            elif b.kind == "verify":
                self.after_verify(r)
            elif b.kind == "events":
                self.after_events(r, arrived)
        self.ok(self.failed is None, "every block of the guide ran",
                "first failure: %s" % self.failed)

# ------------------------------------------------------------------ setup 1


def setup1(t, blocks, binary):
    root = servers.make_root()
    src = servers.mkdir(os.path.join(root, "src"))
    shutil.copytree(os.path.join(testlib.SRCDIR, "deploy"),
                    os.path.join(src, "deploy"))
    standins = Standins(root, binary)
    with testlib.Sim() as sim:
        env = {"PATH": standins.dir + ":" + SYSTEM_PATH, "HOME": "/root",
               "LANG": "C.UTF-8"}
        s = Setup(t, sim, "setup 1", standins.port,
                  "/var/log/podio-webhook/events.jsonl", "hooks.example.com",
                  env=env, cwd=src)
        s.logs = [("nginx error log",
                   os.path.join(root, "nginx", "logs", "error.log")),
                  ("podio-webhook journal",
                   os.path.join(root, "journal-podio-webhook.log"))]

        def install(b):
            # The stated equivalent of the build step's `make install`.
            if "make install" in b.text:
                shutil.copy(binary, "/usr/local/bin/podio-webhook")
                os.chmod("/usr/local/bin/podio-webhook", 0o755)
        s.run_all(blocks, install)
        things = []
        if standins.nginx is not None:
            things.append(standins.nginx)
        serve = standins.units.get("podio-webhook", (None, None))[0]
        if serve is not None:
            things.append(serve)
        ck = scenario.Checker(t, scenario_dep(s), "setup 1: ")
        scenario.stop_all(ck, *things)
        if serve is not None:
            ck.is_(serve.stopped_status, 0, "serve exits 0 on SIGTERM")
        standins.close()

# ------------------------------------------------------------------ setup 5


def bundle_sources():
    """The files a bundle is made of besides the program's sources,
    which the program under test stands for."""
    paths = [os.path.join(testlib.SRCDIR, f)
             for f in ("configure.ac", "Makefile.am")]
    for d, _dirs, files in os.walk(os.path.join(testlib.SRCDIR, "deploy")):
        paths += [os.path.join(d, f) for f in files]
    return paths + [testlib.PODIO_WEBHOOK]


def bundle(t):
    """The CGI bundle's tarball: $PODIO_CGI_BUNDLE; else the newest one
    in the build directory when it is newer than what it is made of;
    else what `make cgi-bundle` makes there.  None (after a failed
    check) without one."""
    given = os.environ.get("PODIO_CGI_BUNDLE")
    if given:
        t.diag("setup 5: the bundle: %s (PODIO_CGI_BUNDLE)" % given)
        return given if t.ok(os.path.isfile(given), "setup 5: "
                             "PODIO_CGI_BUNDLE names a file", given) else None
    pattern = os.path.join(testlib.BUILDDIR, TARBALL)
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    newest = max(os.path.getmtime(p) for p in bundle_sources()
                 if os.path.exists(p))
    if found and os.path.getmtime(found[-1]) > newest:
        t.diag("setup 5: the bundle: %s, newer than its sources and the "
               "program under test" % found[-1])
        return found[-1]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PODIO_", "MAKE", "MFLAGS"))}
    r = subprocess.run(["make", "cgi-bundle"], cwd=testlib.BUILDDIR,
                       env=env, capture_output=True, text=True,
                       timeout=1200, stdin=subprocess.DEVNULL)
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not t.ok(r.returncode == 0 and found, "setup 5: make cgi-bundle "
                "makes %s in the build directory" % TARBALL,
                "status %d\n%s%s" % (r.returncode, r.stdout[-3000:],
                                     r.stderr[-3000:])):
        return None
    t.diag("setup 5: the bundle: %s (made now)" % found[-1])
    return found[-1]


def bundle_top(tarball):
    """The one directory the tarball unpacks to, or None."""
    r = subprocess.run(["tar", "-tzf", tarball], capture_output=True,
                       text=True)
    tops = {n.split("/", 1)[0] for n in r.stdout.split()}
    return tops.pop() if r.returncode == 0 and len(tops) == 1 else None


def setup5(t, blocks, tarball):
    if tarball is None:
        for b in blocks:
            t.skip("setup 5: %s" % b.name(), "no CGI bundle to install")
        return
    top = bundle_top(tarball)
    if not t.ok(top is not None and re.match(
            r"^podio-webhook-cgi-[^/]+-x86_64$", top),
            "setup 5: the bundle unpacks to one directory "
            "podio-webhook-cgi-VERSION-x86_64", repr(top)):
        return
    root = servers.make_root()
    home = os.path.join(root, "home", ACCOUNT)
    servers.mkdir(os.path.dirname(home))
    r = subprocess.run(["useradd", "--user-group", "--no-create-home",
                        "--home-dir", home, "--shell", "/bin/sh", ACCOUNT],
                       capture_output=True, text=True)
    if not t.ok(r.returncode == 0, "setup 5: an account %s (in the private "
                "/etc)" % ACCOUNT, r.stderr):
        return
    servers.mkdir(home, 0o711, ACCOUNT, ACCOUNT)
    # What the host provides: the web directory, served by Apache.
    www = servers.mkdir(os.path.join(home, "public_html"), 0o755, ACCOUNT,
                        ACCOUNT)
    # What the account uploads: the tarball, under its own name.
    upload = os.path.join(home, top + ".tar.gz")
    shutil.copy(tarball, upload)
    shutil.chown(upload, ACCOUNT, ACCOUNT)
    os.chmod(upload, 0o644)

    port = servers.free_port()
    extra = ('<Directory "%s">\n'
             '    AllowOverride AuthConfig FileInfo Limit '
             'Options=ExecCGI,Indexes\n'
             '</Directory>\n' % www)
    apache = servers.Apache(root, "", port, modules=["cgi"], mpm="prefork",
                            user=ACCOUNT, group=ACCOUNT, docroot=www,
                            extra=extra)
    apache.start()
    with testlib.Sim() as sim:
        env = {"PATH": CRON_PATH, "HOME": home, "USER": ACCOUNT,
               "LOGNAME": ACCOUNT, "SHELL": "/bin/sh", "LANG": "C.UTF-8"}
        var = os.path.join(home, "podio-webhook", "var")
        s = Setup(t, sim, "setup 5", port,
                  os.path.join(var, "events.jsonl"), "www.example.com",
                  user=ACCOUNT, env=env, cwd=home, host_tls=True)
        s.extra = {"podio-webhook-cgi-VERSION-x86_64": top}
        s.logs = apache.logs() + [("podio-webhook log",
                                   os.path.join(var, "podio-webhook.log"))]
        s.run_all(blocks)
        uid = pwd.getpwnam(ACCOUNT).pw_uid
        ck = scenario.Checker(t, scenario_dep(s), "setup 5: ")
        ck.ok(servers.proc_uid(apache.proc.sid) == 0 and all(
            servers.proc_uid(p) in (uid, None)
            for p in servers.pids_in_session(apache.proc.sid)
            if p != apache.proc.sid),
              "Apache's children (and the CGI) run as the account")
        scenario.stop_all(ck, apache)
        # The CGI worker a delivery started ends by itself once it has
        # worked through the spool (within cgi_budget).
        try:
            testlib.wait_for(lambda: not servers.pids_under(root),
                             "the detached CGI worker to end")
            ended = True
        except RuntimeError:
            ended = False
        t.ok(ended, "setup 5: the detached CGI worker ended by itself",
             "still running: %r" % servers.pids_under(root))


def install_agrees(t, blocks):
    """The bundle's INSTALL and setup 5 of the guide name the same cron
    lines and the same installed paths."""
    path = os.path.join(testlib.SRCDIR, "deploy", "cgi-bundle", "INSTALL")
    install = testlib.read_text(path)
    cron = re.compile(r"^[0-9*/,-]+(?: [0-9*/,-]+){4} \S")
    in_install = {ln.strip() for ln in install.splitlines()
                  if cron.match(ln.strip())}
    in_guide = set()
    for b in guide.for_setup(blocks, "setup5"):
        if b.kind == "crontab":
            in_guide |= {ln.strip() for ln in b.text.splitlines()
                         if cron.match(ln.strip())}
    # The lines for good: the guide's cron step, INSTALL's Cron section.
    for_good = {ln for ln in in_install if " -c " in ln and
                ln.split(" -c ", 1)[0].endswith("/bin/podio-webhook")}
    t.ok(for_good and in_install <= in_guide,
         "setup 5: every cron line of the bundle's INSTALL is the guide's",
         "only in INSTALL:\n" + "\n".join(sorted(in_install - in_guide)))
    step = [b for b in guide.for_setup(blocks, "setup5")
            if b.kind == "crontab"][:1]
    step_lines = {ln.strip() for b in step for ln in b.text.splitlines()
                  if cron.match(ln.strip())}
    t.ok(step_lines and step_lines == for_good,
         "setup 5: the guide's cron step is INSTALL's cron lines",
         "guide: %r\nINSTALL: %r" % (sorted(step_lines), sorted(for_good)))
    with open(guide.PATH, encoding="utf-8") as f:
        text = f.read()
    sec = text[text.index("\n## 5. "):]
    sec = sec[:sec.index("\n## ", 1)]
    paths = set(re.findall(r"^\| `(~/podio-webhook/[^`]*)` \|", sec, re.M))
    # "  ~/podio-webhook/PATH   what it is": two blanks or more before
    # the description.
    listed = set(re.findall(r"^  (~/podio-webhook/\S*) {2,}\S", install,
                            re.M))
    t.ok(paths and paths == listed,
         "setup 5: the guide's table of installed paths is INSTALL's list",
         "guide: %r\nINSTALL: %r" % (sorted(paths), sorted(listed)))


class _Dep:
    """What scenario.Checker needs of a deployment: its logs."""

    def __init__(self, logs):
        self.logs = logs


def scenario_dep(s):
    return _Dep(s.logs)

# ------------------------------------------------------------------ main


def main():
    t = testlib.Tap()
    servers.require_root(t)
    servers.require_programs(t, servers.NGINX, servers.APACHE, "setpriv",
                             "runuser", "useradd", "unshare", "mount",
                             "curl", "ldd")
    servers.require_files(t, os.path.join(servers.APACHE_MODULES,
                                          "mod_cgi.so"))
    if not namespace.inside():
        why = namespace.unavailable()
        if why:
            t.skip_all(why)
        namespace.enter()
    hostfd = namespace.host_root()
    if namespace.host_has_user(hostfd, "podio-webhook"):
        t.skip_all("this machine has a user podio-webhook: the guide's "
                   "useradd would fail")
    before = host_state(hostfd)
    private = namespace.Private(PRIVATE, "guide")
    try:
        private.setup()
    except (namespace.NamespaceError, OSError) as exc:
        private.teardown()
        t.skip_all("cannot make the private overlays: %s" % exc)

    try:
        blocks = guide.read()
    except guide.GuideError as exc:
        private.teardown()
        t.bail_out("deploy/README.md: %s" % exc)
    for setup, sections in (("setup1", SETUP1_SECTIONS),
                            ("setup5", SETUP5_SECTIONS)):
        loose = guide.unmarked(blocks, setup, sections)
        t.ok(not loose, "every shell block of %s's sections is marked for "
             "this test" % setup, "\n".join(b.name() for b in loose))
        kinds = [b.kind for b in guide.for_setup(blocks, setup)]
        t.ok("hook" in kinds and "verify" in kinds and "events" in kinds,
             "%s has a hook, a verify and an events block" % setup,
             repr(kinds))
    install_agrees(t, blocks)

    try:
        probe = "/etc/.podio-guide-probe-%d" % os.getpid()
        servers.write_file(probe, "private\n")
        try:
            os.stat(probe[1:], dir_fd=hostfd)
            seen = True
        except FileNotFoundError:
            seen = False
        if not t.ok(not seen, "a file written to /etc here is not on the "
                    "host (the private overlays work)"):
            t.bail_out("the overlays do not isolate the host")

        setup1(t, guide.for_setup(blocks, "setup1"), testlib.PODIO_WEBHOOK)
        setup5(t, guide.for_setup(blocks, "setup5"), bundle(t))
    finally:
        left = servers.cleanup()
        private.teardown()
    t.ok(not left, "nothing was left running", "\n".join(left))
    after = host_state(hostfd)
    changed = [p for p in HOST_PATHS if before[p] != after[p]]
    t.ok(not changed, "the host's files are untouched: " +
         ", ".join("/" + p for p in HOST_PATHS),
         "changed: " + ", ".join(changed))
    t.done()


testlib.main(main)
