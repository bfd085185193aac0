#!/usr/bin/env python3
"""`podio-webhook doctor` against the simulator: a good setup passes
(exit 0, every line ok, text and --json alike), and each broken setup it
claims to detect fails with its line and the fix it names: the
configuration (it does not load, mode 0644, another owner, a directory
others may write in), incomplete credentials, no webhook_secret, the
spool directory (missing, mode 0770, another owner or not writable, its
database not writable), an old pending event, a dead letter, refused
credentials, the API unreachable or answering 503 (exit 3), hooks Podio
refuses to list, the rate limit low, a 420 pause and an outage kept in
the spool, an app without hooks, an inactive hook, a hook not in
allowed_hooks, a hook URL without the secret or with the previous one;
with a user's password and no app, the hooks are said to be unchecked.
Where a fix is one command of the receiver (chmod, spool drain, spool
resume, spool purge) it is run and doctor passes again.

Doctor changes nothing: the spool's events and rate-limit rows and the
simulator's hooks are the same after it, its API calls are reads, and a
run makes at most one token request (none once the token is cached).
The webhook secret, the other configured secrets and the tokens never
appear in what it prints.

With this build's PostgreSQL backend and PostgreSQL 15 at hand, the
spool checks run on a PostgreSQL spool too (skipped otherwise)."""

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import urllib.parse

import fcgi
import pgserver
import testlib

t = testlib.Tap()
SLOW = 10 if testlib.wrapper() else 1
SECRET = "doctor-hook-secret-5f3a9c17"
OLD_SECRET = "doctor-old-secret-88d2e4a0"
CREDS = dict(testlib.DEFAULT_CREDS)
# What must never be printed.
SECRETS = (SECRET, OLD_SECRET, CREDS["client_secret"], CREDS["app_token"])
LINE = re.compile(r"^(ok  |FAIL) (\S+):\s+(.*)$")
IS_ROOT = os.geteuid() == 0
NOBODY = 65534
HOOK_URL = "http://127.0.0.1:9/podio-hook"


def hook_url(secret=SECRET):
    if secret is None:
        return HOOK_URL
    return HOOK_URL + "?secret=" + urllib.parse.quote(secret, safe="")


class Setup:
    """A receiver's files: a configuration (mode 0600, the credentials
    and the secret in it), a spool directory (0700) and a token cache of
    its own."""

    def __init__(self, sim, spool_url=None, lines=(), **keys):
        self.sim = sim
        self.user = None        # runs as the test's user
        self.dir = testlib.tmpdir()
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool, 0o700)
        self.conf = os.path.join(self.dir, "handler.conf")
        values = dict(CREDS, webhook_secret=SECRET, spool_dir=self.spool,
                      spool_url=spool_url, retry_max=1, cgi_budget="0")
        values.update(keys)
        testlib.write_config(self.conf, ["on comment.create = /bin/false"]
                             + list(lines), **values)
        os.chmod(self.conf, 0o600)
        # The credentials come from the file alone.
        self.env = testlib.base_env(sim, client_id=None, client_secret=None,
                                    app_id=None, app_token=None)

    def run(self, *args, env=None):
        if self.user is None:
            return testlib.run([testlib.PODIO_WEBHOOK, "-c", self.conf] +
                               list(args), env=env or self.env,
                               timeout=120 * SLOW)
        # The program's copy in the user's directory (the build tree may
        # be out of its reach), without the wrapper (whose files may be
        # too): what this checks is doctor's reading of the modes.
        return testlib.run(["setpriv", "--reuid=%d" % self.user,
                            "--regid=%d" % self.user, "--clear-groups",
                            self.program, "-c", self.conf] + list(args),
                           env=env or self.env, timeout=120 * SLOW,
                           wrap=False)

    def become(self, uid):
        """From now on the receiver runs as uid: its files are given to
        it, and its token cache moves into its directory."""
        for top, dirs, files in os.walk(self.dir):
            for name in [top] + [os.path.join(top, n) for n in files]:
                os.chown(name, uid, uid)
        self.env = dict(self.env, PODIO_TOKEN_CACHE=os.path.join(
            self.dir, "token-cache.json"))
        self.program = os.path.join(self.dir, "podio-webhook")
        shutil.copy(testlib.PODIO_WEBHOOK, self.program)
        os.chmod(self.program, 0o755)
        self.user = uid

    def doctor(self, *more, env=None):
        """Runs doctor; returns (exit, [(ok, name, text)], stdout and
        stderr).  Its lines are parsed from the text output."""
        r = self.run("doctor", *more, env=env)
        self.stdout = r.stdout
        out = r.stdout + r.stderr
        tokens = [v for tok in self.sim.tokens() for v in (
            tok["access_token"], tok.get("refresh_token")) if v]
        leaked = [x for x in SECRETS + tuple(tokens) if x in out]
        t.ok(not leaked, "doctor%s prints no secret and no token" % (
            " " + " ".join(more) if more else ""), leaked)
        lines = []
        for line in r.stdout.splitlines():
            m = LINE.match(line)
            lines.append((m.group(1) == "ok  ", m.group(2), m.group(3))
                         if m else (None, None, line))
        return r.returncode, lines, out

    def store(self, type_, **ids):
        """Stores one delivery through a CGI run (nothing processes it:
        cgi_budget is 0)."""
        pairs = [("type", type_), ("hook_id", "1001")]
        pairs += [(k, str(v)) for k, v in ids.items()]
        pairs.append(("secret", SECRET))
        data = urllib.parse.urlencode(pairs).encode()
        env = dict(self.env, PODIO_WEBHOOK_CONFIG=self.conf)
        env.update(fcgi.cgi_params(data))
        r = subprocess.run(testlib.wrapper() + [testlib.PODIO_WEBHOOK],
                           env=env, input=data, capture_output=True,
                           timeout=60 * SLOW)
        status, _h, _body = fcgi.parse_cgi(r.stdout)
        return status


def failures(lines):
    return sorted(name for ok, name, _ in lines if not ok)


def line_of(lines, name):
    return next((text for ok, n, text in lines if n == name), "")


def expect(s, name, fails, has=(), status=1, more=()):
    """Runs doctor on s: exit status and exactly the failed checks
    fails; each text of has in the output."""
    rc, lines, out = s.doctor(*more)
    missing = [h for h in has if h not in out]
    t.ok(rc == status and failures(lines) == sorted(fails) and
         not missing, name,
         "exit %d (expected %d), failed %s (expected %s), missing %s\n%s"
         % (rc, status, failures(lines), sorted(fails), missing, out))
    return lines


def expect_good(s, name):
    rc, lines, out = s.doctor()
    t.ok(rc == 0 and lines and all(ok for ok, _n, _t in lines), name,
         "exit %d\n%s" % (rc, out))
    return lines


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def spool_rows(path):
    """The events and rate-limit rows of a spool database, read only."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return (db.execute("SELECT * FROM events ORDER BY id").fetchall(),
                db.execute("SELECT * FROM ratelimit ORDER BY cred, class")
                .fetchall())
    finally:
        db.close()


def good_setup(sim):
    sim.reset()
    sim.add_hook(hook_url(), type="item.create", status="active")
    sim.add_hook(hook_url(), type="item.update", status="active")
    return Setup(sim)


def main():
    with testlib.Sim() as sim:
        # ---------------------------------------------------- a good setup
        s = good_setup(sim)
        t.ok(s.store("item.delete", item_id=42) == 200,
             "a delivery is stored (a pending event)")
        # The CGI run stored it in the spool's intake; any command that
        # opens the spool (doctor too) moves it in: `spool status` first,
        # so that what doctor leaves alone is the spool itself.
        s.run("spool", "status")
        db = os.path.join(s.spool, "spool.db")
        before = spool_rows(db)
        hooks_before = sim.hooks()
        sim.clear_requests()
        lines = expect_good(s, "a good setup: exit 0, every line ok")
        names = [n for _ok, n, _t in lines]
        t.ok(all(n in names for n in (
            "config", "config-file", "credentials", "webhook-secret",
            "spool", "pending", "dead", "api", "credential", "rate-limit",
            "pause", "outage", "hooks", "hook")),
             "every check has its line", names)
        t.ok("1 pending" in line_of(lines, "pending") and
             "mode 0600" in line_of(lines, "config-file") and
             "mode 0700" in line_of(lines, "spool"),
             "the lines say what was found", lines)
        hook_lines = [x for ok, n, x in lines if n == "hook"]
        t.ok(len(hook_lines) == 2 and all(
            "active" in x and HOOK_URL + "?secret=***" in x
            for x in hook_lines) and "1001 active item.create" in
             hook_lines[0],
             "one line per hook: id, status, type, URL with the secret "
             "masked", hook_lines)
        reqs = sim.requests()
        t.ok(len([r for r in reqs if r["path"] == "/oauth/token"]) <= 1 and
             all(r["method"] == "GET" for r in reqs
                 if r["path"] != "/oauth/token"),
             "one token request at most; every API call a read",
             [(r["method"], r["path"]) for r in reqs])
        sim.clear_requests()
        rc, _lines, out = s.doctor("--json")
        try:
            objs = json.loads(s.stdout)
        except ValueError:
            objs = None
        t.ok(rc == 0 and isinstance(objs, list) and
             [(o["check"], o["ok"]) for o in objs] ==
             [(n, True) for _ok, n, _x in lines] and
             objs[-1]["detail"] == lines[-1][2] and
             all(o["fix"] is None and len(o) == 4 for o in objs),
             "--json: an array of {check, ok, detail, fix}, the same "
             "checks as the text", out)
        t.ok(not [r for r in sim.requests() if r["path"] == "/oauth/token"],
             "a second run asks for no token (the shared token cache)",
             sim.requests())
        t.ok(spool_rows(db) == before and sim.hooks() == hooks_before,
             "doctor changed nothing: the spool's events and rate-limit "
             "rows, the hooks")

        # ---------------------------------------------------- configuration
        os.chmod(s.conf, 0o644)
        expect(s, "the configuration mode 0644, holding secrets: FAIL "
               "config-file, with the chmod that fixes it",
               ["config-file"], ["mode 0644", "chmod 0600 " + s.conf])
        rc, _lines, out = s.doctor("--json")
        bad = [o for o in json.loads(s.stdout) if not o["ok"]]
        t.ok(rc == 1 and len(bad) == 1 and bad[0]["check"] ==
             "config-file" and bad[0]["fix"] == "chmod 0600 " + s.conf,
             "--json: the failed check with its fix", out)
        os.chmod(s.conf, 0o600)
        expect_good(s, "after chmod 0600 it passes")
        os.chmod(s.dir, 0o770)
        expect(s, "the configuration's directory writable by its group: "
               "FAIL config-file", ["config-file"],
               ["its directory %s is mode 0770" % s.dir,
                "chmod go-w " + s.dir])
        os.chmod(s.dir, 0o700)
        if IS_ROOT:
            os.chown(s.conf, NOBODY, -1)
            expect(s, "a configuration of another user: FAIL config-file, "
                   "naming the chown", ["config-file"],
                   ["belongs to", "chown root " + s.conf])
            os.chown(s.conf, 0, -1)
        else:
            t.skip("a configuration of another user", "needs root to chown")

        broken = Setup(sim, lines=["this is no key line"])
        rc, lines, out = broken.doctor()
        t.ok(rc == 2 and len(lines) == 1 and lines[0][0] is False and
             lines[0][1] == "config" and "handler.conf:" in lines[0][2],
             "a configuration that does not load: one FAIL config line "
             "naming file and line, exit 2", out)
        rc, lines, out = broken.doctor("--json")
        t.ok(rc == 2 and [o["check"] for o in json.loads(broken.stdout)] ==
             ["config"], "... and in JSON", out)

        partial = Setup(sim, app_token=None)
        rc, lines, out = partial.doctor()
        t.ok(rc == 1 and failures(lines) == ["credentials"] and
             "app_token" in line_of(lines, "credentials") and
             "api" not in [n for _o, n, _t in lines],
             "incomplete credentials: FAIL credentials naming the key, "
             "the API not tried", out)
        nosecret = Setup(sim, webhook_secret=None)
        expect(nosecret, "no webhook_secret: FAIL webhook-secret",
               ["webhook-secret"], ["answers every delivery 503"])

        # ---------------------------------------------------- the spool
        missing = Setup(sim)
        os.rmdir(missing.spool)
        expect(missing, "a spool directory that does not exist: FAIL spool",
               ["spool"], ["does not exist", "mkdir -p -m 0700 " +
                           missing.spool])
        os.chmod(s.spool, 0o770)
        expect(s, "a spool directory of mode 0770: FAIL spool, naming the "
               "chmod", ["spool"], ["mode 0770", "chmod 0700 " + s.spool])
        os.chmod(s.spool, 0o700)
        if IS_ROOT:
            os.chown(s.spool, NOBODY, -1)
            expect(s, "a spool directory of another user: FAIL spool",
                   ["spool"], ["belongs to nobody", "runuser -u nobody"])
            os.chown(s.spool, 0, -1)
        # Root writes anywhere: as root, these run as nobody, with a
        # receiver of nobody's own.
        u = s
        if IS_ROOT:
            u = Setup(sim)
            t.ok(u.store("item.create", item_id=44) == 200,
                 "nobody's receiver: a delivery makes its spool database")
            u.become(NOBODY)
            expect_good(u, "nobody's receiver passes")
        udb = os.path.join(u.spool, "spool.db")
        os.chmod(u.spool, 0o500)
        expect(u, "a spool directory its user cannot write in: FAIL "
               "spool", ["spool"], ["not writable"])
        os.chmod(u.spool, 0o700)
        os.chmod(udb, 0o400)
        expect(u, "a spool database its user cannot write: FAIL spool",
               ["spool"], ["not writable", "chmod 0600 " + udb])
        os.chmod(udb, 0o600)
        expect_good(s, "the spool directory fixed: it passes")

        db_ = sqlite3.connect(db, timeout=30)
        with db_:
            db_.execute("UPDATE events SET received_at = received_at - "
                        "7200000")
        db_.close()
        expect(s, "a pending event 2 hours old: FAIL pending, naming "
               "spool drain", ["pending"],
               ["arrived 2 h ago", "spool drain"])
        r = s.run("spool", "drain")
        t.ok(r.returncode == 0, "spool drain", r.stdout + r.stderr)
        expect_good(s, "after spool drain it passes")

        t.ok(s.store("comment.create", item_id=43, comment_id=7) == 200,
             "an event whose callback fails is stored")
        s.run("spool", "drain")
        expect(s, "a dead letter: FAIL dead, naming spool list and "
               "spool replay --dead", ["dead"],
               ["1 dead letter", "spool list", "spool replay --dead"])
        r = s.run("spool", "purge", "--dead", "--older-than", "0s")
        t.ok(r.returncode == 0, "spool purge --dead", r.stdout + r.stderr)
        expect_good(s, "after the purge it passes")

        # ---------------------------------------------------- the API
        wrong = Setup(sim, app_token="not-the-app-token")
        expect(wrong, "refused credentials: FAIL credential", ["credential"],
               ["Podio refused the credentials", "app_token"])
        down = Setup(sim)
        down.env["PODIO_API_URL"] = "http://127.0.0.1:%d" % free_port()
        rc, lines, out = down.doctor()
        t.ok(rc == 3 and failures(lines) == ["api"] and
             "cannot be used" in line_of(lines, "api") and
             "hook" not in [n for _o, n, _t in lines],
             "the API unreachable: FAIL api, the checks that need it left "
             "out, exit 3", out)

        sim.fail("/oauth/token", status=503, count=1)
        rc, lines, out = Setup(sim).doctor()
        sim.clear_fails()
        t.ok(rc == 3 and failures(lines) == ["api"] and
             "Podio seems down" in out,
             "the API answering 503: FAIL api, exit 3", out)
        sim.fail("/hook/app/", status=403, count=1, method="GET")
        expect(s, "hooks Podio refuses to list: FAIL hooks", ["hooks"],
               ["cannot be listed", "check app_id"])
        sim.configure(rate_limit_limit=20)
        expect(s, "the rate limit at or below rate_reserve: FAIL rate-limit",
               ["rate-limit"], ["at or below rate_reserve (50)"])
        sim.configure(rate_limit_limit=1000)

        t.ok(s.store("item.update", item_id=44, item_revision_id=1) == 200,
             "an item event is stored")
        sim.fail("/item/", status=420, count=1)
        s.run("spool", "drain")
        expect(s, "a 420 pause kept in the spool: FAIL pause, naming spool "
               "resume", ["pause"], ["rate limit (420)", "spool resume"])
        r = s.run("spool", "resume")
        t.ok(r.returncode == 0, "spool resume", r.stdout + r.stderr)
        expect_good(s, "after spool resume it passes")

        sim.fail("/item/", status=503, count=None)
        s.run("spool", "drain")
        sim.clear_fails()
        expect(s, "an outage kept in the spool: FAIL outage", ["outage"],
               ["API unavailable since", "spool resume"])
        s.run("spool", "resume")
        s.run("spool", "drain")
        expect_good(s, "after spool resume and drain it passes")

        # ---------------------------------------------------- the hooks
        sim.reset()
        s = Setup(sim)
        expect(s, "an app without hooks: FAIL hooks", ["hooks"],
               ["app 1234 has no hook", "hooks create app 1234"])
        sim.add_hook(hook_url(), type="item.create", status="active")
        h = sim.add_hook(hook_url(), type="item.update", status="inactive")
        expect(s, "an inactive hook: FAIL hook, naming hooks heal",
               ["hook"], ["%d inactive item.update" % h["hook_id"],
                          "podio-webhook -c %s hooks heal" % s.conf,
                          "verify hook %d again" % h["hook_id"]])
        narrow = Setup(sim, allowed_hooks="1001")
        expect(narrow, "a hook not in allowed_hooks: FAIL hook", ["hook"],
               ["not in allowed_hooks", "add %d to allowed_hooks" %
                h["hook_id"]])
        sim.reset()
        sim.add_hook(hook_url(), type="item.create", status="active")
        h = sim.add_hook(hook_url(None) + "?x=1", type="item.delete",
                         status="active")
        expect(s, "a hook URL without the secret: FAIL hook, naming the "
               "delete and the create that replace it", ["hook"],
               ["has no secret",
                "podio-webhook -c %s hooks delete %d && podio-webhook -c "
                "%s hooks create app 1234 '%s?x=1' item.delete" % (
                    s.conf, h["hook_id"], s.conf, HOOK_URL)])
        # With hook_url set, another service's hook (neither at hook_url
        # nor carrying the secret) is left alone; a hook at hook_url
        # without the secret is still this receiver's, and fails.
        sim.reset()
        sim.add_hook(hook_url(), type="item.create", status="active")
        sim.add_hook(hook_url(None), type="item.delete", status="active")
        other = sim.add_hook(hook_url(None) + "?x=1", type="item.update",
                             status="inactive")
        known = Setup(sim, hook_url=HOOK_URL)
        lines = expect(known, "with hook_url: a hook at it without the "
                       "secret fails, another service's hook does not",
                       ["hook"], ["has no secret"])
        t.ok(any(ok and "%d inactive" % other["hook_id"] in text and
                 "not this receiver's" in text for ok, _n, text in lines),
             "... the other service's inactive hook is an ok line, left "
             "alone", lines)
        sim.reset()
        sim.add_hook(hook_url(OLD_SECRET), type="item.create",
                     status="active")
        rotating = Setup(sim, webhook_secret_previous=OLD_SECRET)
        expect(rotating, "a hook URL with the previous secret: FAIL hook",
               ["hook"], ["secret=***", "webhook_secret_previous",
                          "hooks create app 1234 %s item.create" %
                          HOOK_URL])
        pw = Setup(sim, app_id=None, app_token=None,
                   username=testlib.PASSWORD_CREDS["username"],
                   password=testlib.PASSWORD_CREDS["password"])
        lines = expect_good(pw, "a user's password and no app: it passes")
        t.ok("not checked" in line_of(lines, "hooks") and
             "user user@example.com" in line_of(lines, "credential"),
             "... saying that the hooks were not checked, and why", lines)

        postgresql(sim)


def postgresql(sim):
    """The spool checks on a PostgreSQL spool."""
    ok, why = testlib.built_with_postgresql()
    if ok:
        ok, why = pgserver.available()
    if not ok:
        t.skip("the spool checks on PostgreSQL", why)
        return
    sim.reset()
    sim.add_hook(hook_url(), type="item.create", status="active")
    with pgserver.Server() as pg:
        url = pg.new_database("doctor")
        s = Setup(sim, spool_url=url)
        t.ok(s.store("item.delete", item_id=50) == 200,
             "PostgreSQL: a delivery is stored")
        lines = expect_good(s, "PostgreSQL: a good setup passes")
        t.ok("PostgreSQL" in line_of(lines, "spool") and
             pg.password not in line_of(lines, "spool") and
             "1 pending" in line_of(lines, "pending"),
             "PostgreSQL: the spool opens (its password masked), 1 "
             "pending", lines)
        pg.psql("UPDATE podio_events SET received_at = received_at - "
                "7200000", database="doctor")
        expect(s, "PostgreSQL: a pending event 2 hours old: FAIL pending",
               ["pending"], ["arrived 2 h ago"])
        s.run("spool", "drain")
        s.store("comment.create", item_id=51, comment_id=8)
        s.run("spool", "drain")
        expect(s, "PostgreSQL: a dead letter: FAIL dead", ["dead"],
               ["1 dead letter"])
        bad = Setup(sim, spool_url=pg.url_for("doctor", password=False))
        bad.env["PGPASSFILE"] = os.devnull
        expect(bad, "PostgreSQL: a database that refuses the spool: FAIL "
               "spool", ["spool"], ["password"])


testlib.main(main)
t.done()
