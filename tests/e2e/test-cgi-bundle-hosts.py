#!/usr/bin/env python3
"""The CGI bundle (`make cgi-bundle`) on hosts that lack its libraries,
run the way shared hosts run it, end to end against the Podio simulator.

The bundle: $PODIO_CGI_BUNDLE when set, else `make cgi-bundle` in the
build directory under test, and the podio-webhook-cgi-*-x86_64.tar.gz it
made there.

Part 1, Apache with mod_userdir and suexec (Debian's
apache2-suexec-pristine: its compiled-in caller is www-data, user
directories are ~/public_html, uid and gid 100 and up, and it logs to
/var/log/apache2/suexec.log).  An account of its own uploads the bundle
to its home and unpacks it there; the bundle's install.sh puts it in
place with ~/public_html/podio as the web directory (a bundle without
one is placed by hand after its layout), the account fills in the keys
of its 0600 configuration, and install.sh run again checks them and
prints the command that creates the hook.  Apache (mod_cgid under the
event MPM, its children www-data) serves
/~ACCOUNT/podio/podio-webhook.cgi through suexec as the account: a GET
is answered 405; that command (as the account) gets its hook.verify
answered by the CGI calling validate; an item.create is stored and its
item fetched by the CGI's detached worker; with cgi_budget = 0 (a host
that kills detached processes) the next one waits for `spool drain`,
run as cron runs it; one token request for all of it.  suexec's log
lines, the owner of what the CGI wrote and www-data's refused read of
the configuration show who ran it.

Part 2, a chroot holding only the unpacked bundle and the C library: the
glibc files the program needs (the loader, libc and what else of glibc
`ld.so --list` names on the build host), /etc/hosts, /etc/resolv.conf,
and, as every host has them, /etc/nsswitch.conf, /dev/null and /proc
(Jail says why each is needed).  The simulator serves HTTPS there under
the name api.podio.test (in the chroot's /etc/hosts) with a certificate
of a throwaway CA made here (openssl), appended to the bundle's own
share/cacert.pem, which ca_file names.  The program runs in the chroot
as the account's uid, as a CGI (CGI variables, the body on stdin) and
from the command line: hook.verify reaches validate over TLS, an item
event is fetched by the CGI's worker, another by `spool drain`, one
token request for all.  The log shows what the loader loads (`ld.so
--list` in the chroot); each library must come from the bundle's lib/ or
be glibc's.  Before the test CA is appended, `check` fails on the
certificate: verification is on.

Nothing of the host changes: the test runs in a private mount namespace
with throwaway overlays on /etc (the account) and /var/log (suexec's
log), see tests/e2e/namespace.py; everything it starts is stopped and
its temporary directories removed (servers.py), even on failure.
"""
import glob
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fcgi  # noqa: E402
import namespace  # noqa: E402
import scenario  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

ACCOUNT = "podio-bundle"
PRIVATE = ("/etc", "/var/log")
SUEXEC = "/usr/lib/apache2/suexec"
SUEXEC_LOG = "/var/log/apache2/suexec.log"
API_HOST = "api.podio.test"
CRON_PATH = "/usr/bin:/bin"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
APP_ID = 1234
# glibc's own libraries: the only ones the bundle may take from the host.
GLIBC = re.compile(r"^(libc|libm|libpthread|libdl|librt|libresolv|"
                   r"ld-linux-x86-64)\.so(\.\d+)*$")
TARBALL = "podio-webhook-cgi-*-x86_64.tar.gz"


def bundle(t):
    """The bundle's tarball: $PODIO_CGI_BUNDLE, else what `make
    cgi-bundle` makes in the build directory.  Bails out without one."""
    path = os.environ.get("PODIO_CGI_BUNDLE")
    if path:
        if not os.path.isfile(path):
            t.bail_out("PODIO_CGI_BUNDLE=%s is not a file" % path)
        t.diag("the bundle: %s (PODIO_CGI_BUNDLE)" % path)
        return path
    started = time.monotonic()
    r = subprocess.run(["make", "cgi-bundle"], cwd=testlib.BUILDDIR,
                       capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    t.diag("make cgi-bundle took %.1f s" % (time.monotonic() - started))
    found = sorted(glob.glob(os.path.join(testlib.BUILDDIR, TARBALL)),
                   key=os.path.getmtime)
    if not t.ok(r.returncode == 0 and found, "make cgi-bundle makes %s in "
                "the build directory" % TARBALL,
                "status %d\n%s%s" % (r.returncode, r.stdout[-3000:],
                                     r.stderr[-3000:])):
        t.bail_out("no bundle to test")
    t.diag("the bundle: %s, %d bytes" % (found[-1],
                                         os.path.getsize(found[-1])))
    return found[-1]


def top_dir(tarball):
    """The one directory the tarball unpacks to."""
    r = subprocess.run(["tar", "-tzf", tarball], capture_output=True,
                       text=True, check=True)
    tops = {n.split("/", 1)[0] for n in r.stdout.split()}
    if len(tops) != 1:
        raise servers.ServerError("%s unpacks to %r, not one directory" %
                                  (tarball, sorted(tops)))
    return tops.pop()


def set_keys(path, keys):
    """Sets `key = value` in the configuration at path: the line of the
    key (commented out or not) replaced, else one added; owner and mode
    kept."""
    with open(path) as f:
        lines = f.read().splitlines()
    for key, value in keys.items():
        pat = re.compile(r"^#?\s*%s\s*=" % re.escape(key))
        at = [i for i, ln in enumerate(lines) if pat.match(ln)]
        if at:
            lines[at[0]] = "%s = %s" % (key, value)
            for i in reversed(at[1:]):
                if lines[i].startswith("#"):
                    continue
                del lines[i]
        else:
            lines.append("%s = %s" % (key, value))
    with open(path, "r+") as f:
        f.write("\n".join(lines) + "\n")
        f.truncate()


def config_value(path, key):
    """The value of key in the configuration at path (None if unset)."""
    for line in testlib.read_text(path).splitlines():
        m = re.match(r"^%s\s*=\s*(.*?)\s*$" % re.escape(key), line)
        if m:
            return m.group(1)
    return None


def event_of(path, item_id):
    events, _ = scenario.read_events(path)
    for e in events:
        if e.get("item_id") == item_id:
            return e
    return None


def item_gets(sim, item_id):
    return [r for r in sim.requests("/item/%d" % item_id, "GET")
            if r["path"] == "/item/%d" % item_id]

# ------------------------------------------------------------------ part 1


class Account:
    """The account of part 1: commands run as it, in its home."""

    def __init__(self, home):
        self.home = home
        self.pw = pwd.getpwnam(ACCOUNT)
        # What cron gives a job.
        self.env = {"HOME": home, "USER": ACCOUNT, "LOGNAME": ACCOUNT,
                    "SHELL": "/bin/sh", "PATH": CRON_PATH, "LANG": "C.UTF-8"}

    def run(self, argv, cwd=None, env=None, timeout=120):
        """Runs argv as the account in cron's environment (plus env)."""
        return subprocess.run(
            ["setpriv", "--reuid=" + ACCOUNT, "--regid=" + ACCOUNT,
             "--init-groups", "--"] + list(argv), capture_output=True,
            text=True, env=dict(self.env, **(env or {})),
            cwd=cwd or self.home, stdin=subprocess.DEVNULL, timeout=timeout)


def install_by_hand(acct, top, web):
    """Places the unpacked bundle after its layout, as the account, the
    way an INSTALL text would (for a bundle without install.sh)."""
    dest = os.path.join(acct.home, "podio-webhook")
    script = r"""
set -e
umask 077
mkdir -p "$DEST/var" "$WEB"
cp -R "$TOP/bin" "$TOP/lib" "$TOP/share" "$DEST/"
sed "s|@STATEDIR@|$DEST/var|g" "$TOP/etc/podio-webhook.conf" \
    > "$DEST/podio-webhook.conf"
chmod 600 "$DEST/podio-webhook.conf"
chmod 755 "$WEB"
sed -e "s|@BINDIR@|$DEST/bin|g" -e "s|@CONFIG@|$DEST/podio-webhook.conf|g" \
    "$TOP/web/podio-webhook.cgi" > "$WEB/podio-webhook.cgi"
chmod 755 "$WEB/podio-webhook.cgi"
cp "$TOP/web/htaccess" "$WEB/.htaccess"
chmod 644 "$WEB/.htaccess"
"""
    return acct.run(["sh", "-c", script], cwd=top,
                    env=dict(DEST=dest, WEB=web, TOP=top))


def wrapper_paths(path):
    """(the program, the configuration) the installed CGI script runs:
    install.sh's one line "#!PROGRAM --cgi-config=CONFIG", or the shell
    wrapper."""
    text = testlib.read_text(path)
    m = re.match(r"#!(\S+) --cgi-config=(.+)\n", text)
    if m:
        return m.group(1), m.group(2)
    conf = re.search(r"^PODIO_WEBHOOK_CONFIG='([^']*)'", text, re.M)
    prog = re.search(r"^exec '([^']*)'", text, re.M)
    return (prog.group(1) if prog else None,
            conf.group(1) if conf else None)


def suexec_lines(offset):
    """The lines suexec logged after offset bytes."""
    try:
        with open(SUEXEC_LOG, errors="replace") as f:
            f.seek(offset)
            return f.read().splitlines()
    except OSError:
        return []


def part_suexec(t, tarball, home):
    p = "suexec: "
    root = os.path.dirname(os.path.dirname(home))
    acct = Account(home)
    uid = acct.pw.pw_uid
    # What the host provides: the home, its public_html served as
    # /~ACCOUNT/.
    servers.mkdir(home, 0o711, ACCOUNT, ACCOUNT)
    public = servers.mkdir(os.path.join(home, "public_html"), 0o755,
                           ACCOUNT, ACCOUNT)
    web = os.path.join(public, "podio")
    # What the account uploads: the tarball.
    upload = os.path.join(home, os.path.basename(tarball))
    shutil.copy(tarball, upload)
    shutil.chown(upload, ACCOUNT, ACCOUNT)
    name = top_dir(tarball)
    r = acct.run(["tar", "-xzf", os.path.basename(tarball)])
    top = os.path.join(home, name)
    if not t.ok(r.returncode == 0 and os.path.isdir(top),
                p + "the account unpacks the bundle in its home",
                r.stdout + r.stderr):
        return
    installer = os.path.join(top, "install.sh")
    if os.path.exists(installer):
        r = acct.run(["./install.sh", web], cwd=top)
        how = "./install.sh ~/public_html/podio"
    else:
        r = install_by_hand(acct, top, web)
        how = "placed by hand after the layout (the bundle has no install.sh)"
    wrapper = os.path.join(web, "podio-webhook.cgi")
    prog, conf = wrapper_paths(wrapper)
    if not t.ok(r.returncode == 0 and prog and conf and
                os.path.isfile(conf), p + "installed as the account: %s"
                % how, "status %d, wrapper runs %r with %r\n%s%s" % (
                    r.returncode, prog, conf, r.stdout, r.stderr)):
        return
    if os.path.exists(installer):
        t.ok(testlib.read_text(wrapper).startswith(
            "#!%s --cgi-config=%s\n" % (prog, conf)),
             p + "the CGI script names the program as its interpreter "
             "(no shell runs per request)", testlib.read_text(wrapper))
    t.diag("%s, the end of its output:\n%s" % (how, "\n".join(
        (r.stdout + r.stderr).splitlines()[-12:])))
    st = os.stat(conf)
    t.ok(st.st_uid == uid and stat.S_IMODE(st.st_mode) == 0o600,
         p + "the configuration is the account's, mode 0600",
         "uid %d mode %o" % (st.st_uid, stat.S_IMODE(st.st_mode)))
    t.ok(not os.path.realpath(conf).startswith(public + "/") and
         not os.path.realpath(prog).startswith(public + "/"),
         p + "the program and configuration lie outside public_html",
         "%s, %s" % (prog, conf))
    r = subprocess.run(servers.as_user(servers.WEB_USER, servers.WEB_GROUP)
                       + ["cat", conf], capture_output=True, text=True)
    t.ok(r.returncode != 0, p + "%s cannot read the configuration (plain "
         "mod_cgid would run the CGI as %s)" % (servers.WEB_USER,
                                                servers.WEB_USER),
         r.stdout[:200])

    port = servers.free_port()
    site = """\
UserDir public_html
UserDir disabled root
<Directory "%(homes)s/*/public_html">
    AllowOverride AuthConfig FileInfo Limit Options=ExecCGI,Indexes
    Require all granted
</Directory>
ScriptSock "%(root)s/apache/run/cgid.sock"
""" % dict(homes=os.path.dirname(home), root=root)
    apache = servers.Apache(root, site, port,
                            modules=["cgid", "userdir", "suexec"],
                            mpm="event", suexec=True)
    logged = os.path.getsize(SUEXEC_LOG) if os.path.exists(SUEXEC_LOG) \
        else 0
    with testlib.Sim() as sim:
        secret = "bundle-" + os.urandom(12).hex()
        c = testlib.DEFAULT_CREDS
        set_keys(conf, dict(client_id=c["client_id"],
                            client_secret=c["client_secret"],
                            app_id=c["app_id"], app_token=c["app_token"],
                            webhook_secret=secret, api_url=sim.url))
        events_log = config_value(conf, "log *")
        token_cache = config_value(conf, "token_cache")
        log_target = config_value(conf, "log_target") or ""
        logs = apache.logs() + [("suexec log", SUEXEC_LOG)]
        if log_target.startswith("file:"):
            logs.append(("podio-webhook log", log_target[len("file:"):]))
        ck = scenario.Checker(t, scenario_dep(logs), p)
        path = "/~%s/podio/podio-webhook.cgi" % ACCOUNT
        url = "http://127.0.0.1:%d%s" % (port, path)
        create = [prog, "-c", conf, "hooks", "create", "app", str(APP_ID),
                  url, "item.create"]
        if os.path.exists(installer):
            # The credentials are in: install.sh again checks them and
            # prints the command that creates the hook, which runs next.
            r = acct.run(["./install.sh", "--url", os.path.dirname(url),
                          web], cwd=top)
            printed = [m.group(1) for m in re.finditer(
                r"^\s*(\S+ -c \S+ hooks create app \S+ \S+ item\.create)"
                r"\s*$", r.stdout, re.M)]
            ck.ok(r.returncode == 0 and printed and
                  shlex.split(printed[0]) == create,
                  "./install.sh again (the keys filled in) checks them and "
                  "prints the command creating the hook",
                  "status %d, printed %r\n%s%s" % (
                      r.returncode, printed, r.stdout, r.stderr))
        apache.start()
        # Apache listens before it has written its start-up lines: wait
        # for the suEXEC line a while, rather than read the log at once.
        try:
            servers.wait_until(lambda: "suEXEC mechanism enabled" in
                               testlib.read_text(apache.error_log), 10,
                               "the suEXEC line in Apache's error log",
                               apache.proc)
        except servers.ServerError:
            pass
        ck.ok("suEXEC mechanism enabled" in testlib.read_text(
            apache.error_log), "Apache starts with suEXEC enabled "
              "(%s, %s)" % (SUEXEC, os.path.realpath(SUEXEC)))

        st_, hdrs, body = scenario.http(port, "GET", path)
        ck.ok(st_ == 405 and "POST" in hdrs.get("allow", ""),
              "GET %s answers 405 with Allow: POST" % path,
              "%d %r %s" % (st_, hdrs, body[:300]))

        r = acct.run(create)
        hid = int(r.stdout.strip()) if r.stdout.strip().isdigit() else None
        ck.ok(r.returncode == 0 and hid, "hooks create (as the account) "
              "prints the hook id", r.stdout + r.stderr)
        active = hid and scenario._wait(sim, lambda: any(
            h["hook_id"] == hid and h["status"] == "active"
            for h in sim.hooks()), "hook %s active" % hid)
        ck.ok(active and sim.requests("/hook/%d/verify/validate" % hid,
                                      "POST"),
              "hook.verify through Apache: the CGI called validate, the "
              "hook is active", json.dumps(sim.deliveries(), indent=1))
        if not hid:
            scenario.stop_all(ck, apache)
            return

        item = 5101
        res = sim.deliver_full(hid, [("type", "item.create"),
                                     ("hook_id", str(hid)),
                                     ("item_id", str(item)),
                                     ("item_revision_id", "1")])
        ck.ok(res["status"] == 200 and
              "queued as intake event" in res["body"],
              "item.create of item %d answered 200 queued" % item,
              repr(res))
        ev = scenario._wait(sim, lambda: event_of(events_log, item),
                            "item %d in %s" % (item, events_log), 20)
        ck.ok(ev and (ev.get("item") or {}).get("item_id") == item and
              len(item_gets(sim, item)) == 1,
              "the CGI's worker stored it and fetched item %d (one GET)"
              % item, json.dumps(ev)[:1000])
        ck.ok(os.path.exists(events_log) and
              os.stat(events_log).st_uid == uid,
              "the events file the CGI's worker wrote is the account's",
              events_log)

        # A host that kills detached processes: the event waits for cron.
        set_keys(conf, {"cgi_budget": "0"})
        item = 5102
        res = sim.deliver_full(hid, [("type", "item.create"),
                                     ("hook_id", str(hid)),
                                     ("item_id", str(item)),
                                     ("item_revision_id", "1")])
        ck.ok(res["status"] == 200 and
              "queued as intake event" in res["body"] and
              not item_gets(sim, item) and not event_of(events_log, item),
              "with cgi_budget = 0, item.create of item %d is stored, not "
              "yet fetched" % item, repr(res))
        r = acct.run(["/bin/sh", "-c", "%s -c %s spool drain" % (prog, conf)])
        ck.ok(r.returncode == 0 and event_of(events_log, item) and
              len(item_gets(sim, item)) == 1,
              "spool drain as cron runs it (the account) fetches item %d"
              % item, r.stdout + r.stderr)
        spool = config_value(conf, "spool_dir")
        owners = {os.stat(os.path.join(d, f)).st_uid
                  for d, _dirs, files in os.walk(spool) for f in files} \
            if spool and os.path.isdir(spool) else set()
        ck.ok(owners == {uid}, "every file of the spool is the account's",
              "%s: owners %r" % (spool, owners))

        tokens = sim.token_requests()
        ck.is_(len(tokens), 1, "one token request for the hook, the CGI "
               "runs and the drain")
        ck.ok(token_cache and os.path.exists(token_cache) and
              os.stat(token_cache).st_uid == uid,
              "the token cache is the account's", token_cache)

        lines = suexec_lines(logged)
        t.diag("suexec's log:\n" + "\n".join(lines[-6:]))
        mine = [ln for ln in lines if "uid: (%d/%s)" % (uid, ACCOUNT) in ln
                and "cmd: podio-webhook.cgi" in ln]
        ck.ok(len(mine) >= 3, "suexec logged the CGI runs as %s (uid %d)"
              % (ACCOUNT, uid), "\n".join(lines[-20:]))
        ck.ok(not [ln for ln in lines if "uid:" not in ln],
              "suexec refused nothing", "\n".join(lines[-20:]))
        scenario.stop_all(ck, apache)
        try:
            testlib.wait_for(lambda: not servers.pids_under(root),
                             "the detached CGI worker to end", 30)
            ended = True
        except RuntimeError:
            ended = False
        ck.ok(ended, "nothing of the account's is left running",
              repr(servers.pids_under(root)))


class _Dep:
    """What scenario.Checker needs of a deployment: its logs."""

    def __init__(self, logs):
        self.logs = logs


def scenario_dep(logs):
    return _Dep(logs)

# ------------------------------------------------------------------ part 2


def loaded(listing):
    """(name, path) of each library of an `ld.so --list` listing (path
    None when not found)."""
    out = []
    for line in listing.splitlines():
        m = re.match(r"^\s*(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$", line)
        if m:
            path = m.group(2).strip()
            out.append((m.group(1), None if path == "not found" else
                        os.path.normpath(path)))
        else:
            m = re.match(r"^\s*(/\S+) \(0x[0-9a-f]+\)$", line)
            if m:
                out.append((os.path.basename(m.group(1)), m.group(1)))
    return out


class Jail:
    """The chroot: the unpacked bundle at /NAME, glibc's files at their
    paths, a few files of /etc, /state for the program's state (the
    uid's).  Runs the program as uid:gid in it."""

    def __init__(self, root, tarball, uid, gid):
        self.dir = servers.mkdir(os.path.join(root, "jail"))
        self.uid, self.gid = uid, gid
        self.name = top_dir(tarball)
        subprocess.run(["tar", "-xzf", tarball, "-C", self.dir,
                        "--no-same-owner"], check=True)
        self.top = "/" + self.name
        self.prog = self.top + "/bin/podio-webhook"
        servers.mkdir(self.path("/etc"))
        servers.write_file(self.path("/etc/hosts"),
                           "127.0.0.1 localhost\n127.0.0.1 %s\n" % API_HOST)
        # No DNS server is contacted: the name is in /etc/hosts.
        servers.write_file(self.path("/etc/resolv.conf"),
                           "nameserver 127.0.0.1\noptions timeout:1 "
                           "attempts:1\n")
        # Without nsswitch.conf glibc asks DNS before /etc/hosts, and an
        # answer from a DNS server on this machine's 127.0.0.1 would
        # end the lookup there; every host has this file.
        servers.write_file(self.path("/etc/nsswitch.conf"),
                           "hosts: files dns\n")
        # /dev/null: the CGI hands its standard streams to it before its
        # detached worker starts (handler/run.c); without it the worker
        # would hold the web server's pipe.  No /dev/urandom (OpenSSL
        # and the program use getrandom()), no /tmp (the test's spool is
        # small enough for SQLite to keep its temporary data in memory).
        servers.mkdir(self.path("/dev"))
        os.mknod(self.path("/dev/null"), stat.S_IFCHR | 0o666,
                 os.makedev(1, 3))
        os.chmod(self.path("/dev/null"), 0o666)
        # /proc: the loader finds the program's own directory, $ORIGIN of
        # its run path, through /proc/self/exe; without it the bundle's
        # lib/ is not searched at all.  Every host (and every hosting
        # jail, CageFS among them) has it.  Unmounted by close().
        self.state = servers.mkdir(self.path("/state"), 0o700, uid, gid)
        self.proc = servers.mkdir(self.path("/proc"))
        self.mounted = False
        namespace.mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc",
                        self.proc)
        self.mounted = True

    def close(self):
        """Unmounts the chroot's /proc."""
        if self.mounted:
            subprocess.run(["umount", "-l", self.proc], capture_output=True)
            self.mounted = False

    def path(self, inside):
        """The host's path of a path inside the chroot."""
        return os.path.join(self.dir, inside.lstrip("/"))

    def add_glibc(self, host_path):
        """Copies one of glibc's files to the same path in the chroot."""
        dest = self.path(host_path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.realpath(host_path), dest)

    def run(self, argv, env=None, input=None, timeout=60):
        """Runs argv in the chroot as uid:gid (no other group), with env
        (nothing by default); returns the CompletedProcess (bytes)."""
        user = ["--userspec=%d:%d" % (self.uid, self.gid),
                "--groups=%d" % self.gid]
        return subprocess.run([CHROOT] + user + [self.dir] + list(argv),
                              env=env if env is not None else {},
                              input=input, capture_output=True,
                              timeout=timeout)


def part_chroot(t, tarball):
    root = servers.make_root()
    pw = pwd.getpwnam(ACCOUNT)
    jail = Jail(root, tarball, pw.pw_uid, pw.pw_gid)
    try:
        in_jail(t, root, jail)
    finally:
        jail.close()


def in_jail(t, root, jail):
    p = "chroot: "
    lib = jail.top + "/lib/"

    # What the loader takes from the host, found on the host: everything
    # outside the bundle's lib/ must be glibc's, and is copied in.  The
    # program's own libraries, and those of each library in lib/: libcurl
    # and its dependencies are loaded (dlopen) at the first API call.
    targets = [jail.prog] + sorted(
        lib + f for f in os.listdir(jail.path(lib)))
    outside, out, rcs = [], "", 0
    for target in targets:
        listing = subprocess.run(
            ["/lib64/ld-linux-x86-64.so.2", "--library-path",
             jail.path(lib), "--list", jail.path(target)],
            capture_output=True, text=True)
        out += "%s:\n%s%s" % (target, listing.stdout, listing.stderr)
        rcs |= listing.returncode
        for name, path in loaded(listing.stdout):
            if path is None:
                outside.append(name + " (not found)")
            elif not path.startswith(jail.path(lib)):
                if GLIBC.match(name) or GLIBC.match(os.path.basename(path)):
                    jail.add_glibc(path)
                else:
                    outside.append("%s => %s" % (name, path))
    t.ok(rcs == 0 and not outside,
         p + "on the build host, every library outside the bundle's lib/ "
         "that the program or a library in lib/ needs is glibc's",
         "%r\n%s" % (outside, out))

    t.diag("the chroot, outside the bundle:\n" + "\n".join(sorted(
        "/" + os.path.relpath(os.path.join(d, f), jail.dir)
        for d, _dirs, files in os.walk(jail.dir)
        if not (d + "/").startswith(jail.path(jail.top) + "/") and
        not (d + "/").startswith(jail.proc + "/")
        for f in files)))
    # The program at its start, and libcurl, which it loads at its first
    # API call (found through the program's run path, as --library-path
    # stands in for here).
    bad, rcs, listed = [], 0, 0
    for argv in (["--list", jail.prog],
                 ["--library-path", lib, "--list", lib + "libcurl.so.4"]):
        r = jail.run(["/lib64/ld-linux-x86-64.so.2"] + argv)
        text = r.stdout.decode(errors="replace")
        t.diag("what %s loads in the chroot (ld.so --list):\n%s%s" % (
            argv[-1], text, r.stderr.decode(errors="replace")))
        libs = loaded(text)
        listed += len(libs)
        rcs |= r.returncode
        bad += [(n, pth) for n, pth in libs if pth is None or not (
            pth.startswith(lib) or GLIBC.match(os.path.basename(pth)))]
    t.ok(rcs == 0 and listed and not bad,
         p + "every library of the program and of libcurl resolves in the "
         "bundle's lib/ or to glibc", repr(bad))

    cadir = servers.mkdir(os.path.join(root, "ca"))
    ca, cert, key = testlib.make_certs(cadir, API_HOST)
    cacert = jail.top + "/share/cacert.pem"
    conf = "/state/podio-webhook.conf"
    events = "/state/events.jsonl"
    secret = "chroot-" + os.urandom(12).hex()
    with testlib.Sim(tls=(cert, key)) as sim:
        api = "https://%s:%d" % (API_HOST, sim.tls_port)
        c = testlib.DEFAULT_CREDS
        servers.write_file(jail.path(conf), "".join(
            "%s = %s\n" % kv for kv in (
                ("client_id", c["client_id"]),
                ("client_secret", c["client_secret"]),
                ("app_id", c["app_id"]), ("app_token", c["app_token"]),
                ("webhook_secret", secret), ("api_url", api),
                ("ca_file", cacert),
                ("token_cache", "/state/token-cache.json"),
                ("spool_dir", "/state/spool"),
                ("log_target", "file:/state/podio-webhook.log"),
                ("log *", events))), 0o600, jail.uid, jail.gid)
        logs = [("podio-webhook log", jail.path("/state/podio-webhook.log"))]
        ck = scenario.Checker(t, scenario_dep(logs), p)

        # The bundle's CA file as shipped: the test CA is not in it.
        r = jail.run([jail.prog, "-c", conf, "check"])
        out = (r.stdout + r.stderr).decode(errors="replace")
        stats = sim.stats()
        t.diag("check with the bundle's cacert.pem as shipped (status "
               "%d):\n%s" % (r.returncode, out.strip()))
        ck.ok(r.returncode == 3 and re.search(r"certificate|SSL|TLS", out)
              and stats["tls_failures"] >= 1 and stats["token_calls"] == 0,
              "with the bundle's cacert.pem as shipped, `check` fails on "
              "the certificate (verification is on)",
              "status %d\n%s\n%r" % (r.returncode, out, stats))

        with open(ca) as f, open(jail.path(cacert), "a") as g:
            g.write(f.read())
        r = jail.run([jail.prog, "-c", conf, "check"])
        out = (r.stdout + r.stderr).decode(errors="replace")
        ck.ok(r.returncode == 0, "with the test CA appended to the "
              "bundle's cacert.pem, `check` passes over TLS to %s" % API_HOST,
              "status %d\n%s" % (r.returncode, out))
        sim.clear_requests()

        hook = sim.add_hook("https://hooks.example.test/podio-webhook.cgi",
                            type="item.create")
        hid = hook["hook_id"]
        code = sim.verify_code(hid)

        def cgi(params, **env):
            body = urllib.parse.urlencode(params).encode()
            e = fcgi.cgi_params(body, SCRIPT_NAME="/podio-webhook.cgi")
            e.update(PODIO_WEBHOOK_CONFIG=conf, PATH=CRON_PATH)
            e.update(env)
            r = jail.run([jail.prog], env=e, input=body)
            status, _h, out = fcgi.parse_cgi(r.stdout)
            return (r.returncode, status, out.decode(errors="replace"),
                    r.stderr.decode(errors="replace"))

        rc, status, out, err = cgi([("type", "hook.verify"),
                                    ("hook_id", str(hid)), ("code", code),
                                    ("secret", secret)])
        ck.ok(rc == 0 and status == 200 and any(
            h["hook_id"] == hid and h["status"] == "active"
            for h in sim.hooks()),
              "hook.verify as a CGI in the chroot: validate over TLS, the "
              "hook is active", "exit %s status %s\n%s\n%s" % (
                  rc, status, out, err))
        ck.ok(os.path.exists(jail.path("/state/token-cache.json")),
              "the CGI wrote the token cache")

        def event(item, **env):
            return cgi([("type", "item.create"), ("hook_id", str(hid)),
                        ("item_id", str(item)), ("item_revision_id", "1"),
                        ("secret", secret)], **env)

        item = 6101
        rc, status, out, err = event(item)
        ck.ok(rc == 0 and status == 200 and "queued as intake event" in out,
              "item.create of item %d as a CGI: 200 queued" % item,
              "exit %s status %s\n%s\n%s" % (rc, status, out, err))
        ev = scenario._wait(sim, lambda: event_of(jail.path(events), item),
                            "item %d in the events file" % item, 20)
        ck.ok(ev and (ev.get("item") or {}).get("item_id") == item and
              len(item_gets(sim, item)) == 1,
              "the CGI's detached worker fetched item %d over TLS" % item,
              json.dumps(ev)[:1000])

        item = 6102
        rc, status, out, err = event(item, PODIO_CGI_BUDGET="0")
        ck.ok(rc == 0 and status == 200 and not item_gets(sim, item),
              "item.create of item %d with cgi_budget 0: stored, not yet "
              "fetched" % item, "exit %s status %s\n%s\n%s" % (
                  rc, status, out, err))
        r = jail.run([jail.prog, "-c", conf, "spool", "drain"])
        ck.ok(r.returncode == 0 and event_of(jail.path(events), item) and
              len(item_gets(sim, item)) == 1,
              "spool drain in the chroot fetches item %d" % item,
              (r.stdout + r.stderr).decode(errors="replace"))
        ck.is_(len(sim.token_requests()), 0,
               "no token request after `check`: the verify, the worker and "
               "the drain took the cached token")
        ck.is_(sim.stats()["token_calls"], 1,
               "one token request in all, over TLS")
        try:
            testlib.wait_for(lambda: not servers.pids_under(jail.dir),
                             "the detached CGI worker to end", 30)
            ended = True
        except RuntimeError:
            ended = False
        ck.ok(ended, "nothing is left running in the chroot",
              repr(servers.pids_under(jail.dir)))

# ------------------------------------------------------------------ main


def main():
    t = testlib.Tap()
    if os.geteuid() != 0:
        t.skip_all("needs root: it adds an account (in a private mount "
                   "namespace), runs Apache with suexec and a chroot")
    servers.require_programs(t, servers.APACHE, "setpriv", "useradd",
                             "unshare", "mount", CHROOT, "openssl", "tar",
                             "make")
    servers.require_files(t, SUEXEC, "/lib64/ld-linux-x86-64.so.2", *[
        os.path.join(servers.APACHE_MODULES, "mod_%s.so" % m)
        for m in ("cgid", "userdir", "suexec")])
    r = subprocess.run([SUEXEC, "-V"], capture_output=True, text=True)
    if 'AP_HTTPD_USER="%s"' % servers.WEB_USER not in r.stdout + r.stderr:
        t.skip_all("%s is not apache2-suexec-pristine's (its caller must be "
                   "%s): %s" % (SUEXEC, servers.WEB_USER,
                                (r.stdout + r.stderr).strip()))
    if not namespace.inside():
        why = namespace.unavailable()
        if why:
            t.skip_all(why)
        namespace.enter()
    hostfd = namespace.host_root()
    if namespace.host_has_user(hostfd, ACCOUNT):
        t.skip_all("this machine has a user %s already" % ACCOUNT)
    started = time.monotonic()
    tarball = bundle(t)
    private = namespace.Private(PRIVATE, "bundle")
    try:
        private.setup()
    except (namespace.NamespaceError, OSError) as exc:
        private.teardown()
        t.skip_all("cannot make the private overlays: %s" % exc)
    try:
        # The account (in the private /etc), its home under a temporary
        # root: part 1 installs there, part 2 runs as its uid.
        home = os.path.join(servers.make_root(), "home", ACCOUNT)
        servers.mkdir(os.path.dirname(home))
        r = subprocess.run(["useradd", "--user-group", "--no-create-home",
                            "--home-dir", home, "--shell", "/bin/sh",
                            ACCOUNT], capture_output=True, text=True)
        if not t.ok(r.returncode == 0, "an account %s (in the private /etc)"
                    % ACCOUNT, r.stderr):
            t.bail_out("no account")
        part_suexec(t, tarball, home)
        part_chroot(t, tarball)
    finally:
        left = servers.cleanup()
        private.teardown()
    t.ok(not left, "nothing was left running", "\n".join(left))
    t.ok(not namespace.host_has_user(hostfd, ACCOUNT),
         "the host has no account %s" % ACCOUNT)
    t.diag("the test took %.1f s" % (time.monotonic() - started))
    t.done()


testlib.main(main)
