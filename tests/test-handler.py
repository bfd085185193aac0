#!/usr/bin/env python3
"""The webhook handler without a web server, against the Podio API
simulator: as a CGI program (the variables and the body a web server
would give it), as a FastCGI server (`serve --listen` and a listening
socket inherited on fd 0, spoken to with tests/fcgi.py), `emit`, and the
example program with its C callbacks.

Checked: every status of the answer order (405 with Allow, 411, 413
without reading the body, 415, 400 for a NUL, 403 for the secret and
allowed_hooks, 400 malformed with its reason, 502 when Podio refuses a
verification, 200 once an event is stored) and that bad input costs no
API call; hook.verify validates the issued code and activates the hook;
item events are answered before they are processed (as CGI by a detached
child, as FastCGI by processor threads), then fetch the item with OAuth2
and hand the event to an "on" command and a "log" file (waited for, never
assumed); an item that cannot be fetched is retried; item.delete fetches
nothing; the secret in
the query or the body; CGI ignores its argv; webhook_secret is required;
concurrency, a held item fetch not blocking the answer or other events,
SIGTERM finishing the event in hand,
SIGHUP reloading (and keeping the old configuration when the new one is
broken); one token request across all of it; no secret in any output."""

import fcntl
import json
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
import urllib.parse

import fcgi
import testlib

t = testlib.Tap()

SECRET = "s3cr&t=+ %x-handler"
SECRET2 = "second-secret-4711"
FORM = fcgi.FORM
EXAMPLE = os.environ.get("PODIO_WEBHOOK_EXAMPLE") or os.path.join(
    testlib.BUILDDIR, "handler", "podio-webhook-example")
# Every output of the program (label, text), searched for secrets at the end.
OUTPUTS = []
# CGI runs that did not exit 0 (a CGI always answers and exits 0; under
# valgrind an error makes the exit status 99).
BAD_EXITS = []
SLOW = 10 if testlib.wrapper() else 1

D = testlib.tmpdir()
CMD_DIR = os.path.join(D, "cmd")
os.mkdir(CMD_DIR)
EVENTS = os.path.join(D, "events.jsonl")
CMD = os.path.join(D, "record.sh")
with open(CMD, "w") as f:
    # Keeps the event (stdin) and the environment of each run.
    f.write('#!/bin/sh\n'
            'cat > "$1/$$.tmp"\n'
            'env > "$1/$$.env"\n'
            # renamed last, so a reader never sees a half-written event
            'mv "$1/$$.tmp" "$1/$$.json"\n')
os.chmod(CMD, 0o755)
FAIL_CMD = os.path.join(D, "fail.sh")
with open(FAIL_CMD, "w") as f:
    f.write('#!/bin/sh\necho "cannot do file.change today" >&2\nexit 3\n')
os.chmod(FAIL_CMD, 0o755)

RULES = ["on item.* = %s %s" % (CMD, CMD_DIR),
         "on comment.* = %s %s" % (CMD, CMD_DIR),
         "on file.change = %s" % FAIL_CMD,
         "log * = %s" % EVENTS]


def write_conf(path, secret=SECRET, extra=(), **keys):
    """A configuration with the secret (None: none) and the rules."""
    lines = []
    if secret is not None:
        lines.append('webhook_secret = "%s"' % secret)
    for k, v in keys.items():
        lines.append("%s = %s" % (k, v))
    lines.extend(RULES)
    lines.extend(extra)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


CONF = write_conf(os.path.join(D, "handler.conf"))


def form(*pairs, secret=SECRET):
    """A form body from pairs, the secret last (None: no secret)."""
    pairs = list(pairs)
    if secret is not None:
        pairs.append(("secret", secret))
    return urllib.parse.urlencode(pairs).encode()


REVISIONS = iter(range(1000, 1000000))


def item_body(type_, item_id, hook_id=1001, secret=SECRET, rev=None,
              **more):
    """An item delivery; each gets its own item_revision_id unless rev is
    given (the same delivery twice would be a duplicate, run once)."""
    rev = next(REVISIONS) if rev is None else rev
    pairs = [("item_id", str(item_id)), ("item_revision_id", str(rev)),
             ("type", type_), ("hook_id", str(hook_id))]
    pairs += list(more.items())
    return form(*pairs, secret=secret)


def no_memory_errors(text):
    return not re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                         r"==\d+== (Invalid|Conditional|Syscall|.*lost)",
                         text)


class Cgi:
    """One CGI run: status, headers, body (bytes), text, stderr, rc."""

    def __init__(self, status, headers, body, stderr, rc, raw):
        self.status, self.headers, self.body = status, headers, body
        self.text = body.decode("utf-8", "replace").rstrip("\n")
        self.stderr, self.rc, self.raw = stderr, rc, raw

    def show(self):
        return "exit %d, status %d\nstdout: %r\nstderr: %s" % (
            self.rc, self.status, self.raw, self.stderr)


def cgi(env, body=b"", query="", method="POST", content_type=FORM,
        content_length=True, argv=(), program=None, label="cgi"):
    """Runs the handler as a CGI program with body on stdin."""
    e = dict(env)
    for k, v in fcgi.cgi_params(body, query, method, content_type,
                                content_length).items():
        e[k] = v
    if content_type is None:
        e.pop("CONTENT_TYPE", None)
    if content_length is False:
        e.pop("CONTENT_LENGTH", None)
    words = testlib.wrapper()
    r = subprocess.run(words + [program or testlib.PODIO_WEBHOOK] +
                       list(argv), env=e, input=body, capture_output=True,
                       timeout=60 * SLOW)
    stderr = r.stderr.decode("utf-8", "replace")
    OUTPUTS.append((label, r.stdout.decode("utf-8", "replace") + stderr))
    if r.returncode != 0:
        BAD_EXITS.append((label, r.returncode))
    status, headers, out = fcgi.parse_cgi(r.stdout)
    return Cgi(status, headers, out, stderr, r.returncode, r.stdout)


def pw(args, env, input=None, label=None, program=None):
    r = testlib.run([program or testlib.PODIO_WEBHOOK] + list(args),
                    env=env, input=input)
    OUTPUTS.append((label or " ".join(args), r.stdout + r.stderr))
    return r


def recorded_commands():
    """The events the "on" command received: [(event dict, env dict)],
    oldest first."""
    out = []
    # Only finished events: a command still running has a .tmp file that
    # it renames at any moment, so it is never looked at.
    names = sorted((n for n in os.listdir(CMD_DIR) if n.endswith(".json")),
                   key=lambda n: os.stat(os.path.join(CMD_DIR, n)).st_mtime)
    for name in names:
        base = os.path.join(CMD_DIR, name[:-5])
        with open(base + ".json") as f:
            text = f.read()
        env = {}
        if os.path.exists(base + ".env"):
            with open(base + ".env") as f:
                for line in f:
                    k, _, v = line.rstrip("\n").partition("=")
                    env[k] = v
        try:
            ev = json.loads(text)
        except ValueError:
            ev = {"unparsable": text}
        out.append((ev, env))
    return out


def clear_commands():
    for name in os.listdir(CMD_DIR):
        try:
            os.unlink(os.path.join(CMD_DIR, name))
        except FileNotFoundError:
            pass    # a running command renamed its .tmp meanwhile


def logged_events():
    if not os.path.exists(EVENTS):
        return []
    with open(EVENTS) as f:
        return [json.loads(line) for line in f if line.strip()]


def clear_events():
    if os.path.exists(EVENTS):
        os.unlink(EVENTS)


def spool_status(env):
    """`spool status --json` of env's spool ({} when it fails)."""
    r = testlib.run([testlib.PODIO_WEBHOOK, "spool", "status", "--json"],
                    env=env)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {}


def worker_gone(env):
    """Whether no detached CGI worker holds env's spool (the spool's
    worker lock is free)."""
    try:
        fd = os.open(os.path.join(env["PODIO_SPOOL_DIR"], "cgi-worker.lock"),
                     os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def settle(env):
    """Waits until env's spool holds nothing pending or in flight (every
    event stored so far was processed or waits for a retry) and its CGI
    worker is gone, so that the next CGI run starts a worker of its own."""
    def idle():
        st = spool_status(env)
        return (st and st.get("pending") == 0 and
                st.get("in_flight") == 0 and worker_gone(env))
    testlib.wait_for(idle, "the spool to be worked through")


def drain_until(env, fn, what):
    """Runs `spool drain` (retries not yet due wait for it, or for the
    next request) until fn() is true."""
    def step():
        testlib.run([testlib.PODIO_WEBHOOK, "spool", "drain"], env=env)
        return fn()
    return testlib.wait_for(step, what)


def post_all(server, bodies):
    """Posts each body to server on a thread of its own, all at once;
    returns (the started threads, the results): once the threads are
    joined, each result is the Response or the exception raised."""
    results = [None] * len(bodies)

    def post(i):
        try:
            results[i] = server.delivery(bodies[i])
        except Exception as exc:  # reported by the caller's check
            results[i] = exc
    threads = [threading.Thread(target=post, args=(i,))
               for i in range(len(bodies))]
    for th in threads:
        th.start()
    return threads, results


class Server:
    """A FastCGI server process; its stderr goes to a file."""

    def __init__(self, argv, env, stdin=None, address=None, label="server",
                 wait_socket=None, wrap=True):
        self.log = os.path.join(testlib.tmpdir(), "server.log")
        self.errf = open(self.log, "w")
        self.address = address
        self.label = label
        self.proc = testlib.popen(argv, env=env, stdin=stdin,
                                  stdout=subprocess.DEVNULL,
                                  stderr=self.errf, wrap=wrap)
        if wait_socket is not None:
            testlib.wait_for(lambda: os.path.exists(wait_socket) or
                     self.proc.poll() is not None, "the socket " +
                     wait_socket)
        testlib.wait_for(lambda: "serving FastCGI" in self.text() or
                 self.proc.poll() is not None, "the server to start")

    def text(self):
        return testlib.read_text(self.log)

    def delivery(self, body, **kw):
        return fcgi.delivery(self.address, body, timeout=60 * SLOW, **kw)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(60 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.errf.close()
        OUTPUTS.append((self.label, self.text()))
        return rc


with testlib.Sim() as sim:
    ENV = testlib.base_env(sim)
    ENV["PODIO_WEBHOOK_CONFIG"] = CONF
    ENV["PODIO_SPOOL_DIR"] = os.path.join(D, "spool")
    # Retries in a tenth of a second (the test seam of handler/process.c).
    ENV["PODIO_TEST_BACKOFF_MS"] = "100"
    # Outage probes every tenth of a second at first (handler/budget.c).
    ENV["PODIO_TEST_PROBE_MS"] = "100"
    # CGI runs (and everything else) share ENV's token cache and spool.

    # ---------------------------------------------------- the answer order
    sim.clear_requests()
    r = cgi(ENV, item_body("item.update", 42), method="GET")
    t.ok(r.status == 405 and r.headers.get("allow") == "POST" and
         r.rc == 0, "GET: 405 with Allow: POST", r.show())
    t.ok(r.headers.get("content-type", "").startswith("text/plain") and
         r.body.count(b"\n") == 1 and r.body.endswith(b"\n"),
         "answers are one line of text/plain", r.show())
    r = cgi(ENV, item_body("item.update", 42), content_length=False)
    t.ok(r.status == 411, "no CONTENT_LENGTH: 411", r.show())
    r = cgi(ENV, item_body("item.update", 42), content_length="")
    t.ok(r.status == 411, "an empty CONTENT_LENGTH (nginx): 411", r.show())
    r = cgi(ENV, item_body("item.update", 42), content_length="12abc")
    t.ok(r.status == 400 and "content-length" in r.text.lower(),
         "a malformed CONTENT_LENGTH: 400", r.show())

    # 413 before the body is read: stdin stays open and unwritten; a
    # handler that read it would hang until the timeout.
    e = dict(ENV)
    e.update(fcgi.cgi_params(b"", content_length="1000000000"))
    p = testlib.popen([testlib.PODIO_WEBHOOK], env=e, stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      text=False)
    try:
        out, err = p.communicate(timeout=30 * SLOW)
        finished = True
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        finished = False
    OUTPUTS.append(("413", (out + err).decode("utf-8", "replace")))
    st, hd, bd = fcgi.parse_cgi(out)
    t.ok(finished and st == 413, "a length over max_body: 413 without "
         "reading the body", "finished %r, %r" % (finished, out))

    many = "&".join("k%d=v" % i for i in range(300)).encode() + b"&" + \
        item_body("item.update", 42)
    r = cgi(ENV, many)
    t.ok(r.status == 413 and "parameters" in r.text,
         "more parameters than max_params: 413", r.show())
    r = cgi(ENV, item_body("item.update", 42), content_type="text/plain")
    t.ok(r.status == 415, "content type text/plain: 415", r.show())
    r = cgi(ENV, item_body("item.update", 42) + b"&x=a%00b")
    t.ok(r.status == 400 and "NUL" in r.text.upper(),
         "a %00 in the body: 400", r.show())
    r = cgi(ENV, item_body("item.update", 42, secret=None))
    t.ok(r.status == 403 and "missing secret" in r.text,
         "no secret: 403", r.show())
    r = cgi(ENV, item_body("item.update", 42, secret="wrong"))
    t.ok(r.status == 403 and "wrong secret" in r.text,
         "a wrong secret: 403", r.show())
    r = cgi(ENV, form(("hook_id", "1001")))
    t.ok(r.status == 400 and "missing type" in r.text,
         "no type: 400 with the reason", r.show())
    r = cgi(ENV, item_body("item.update", "4x2"))
    t.ok(r.status == 400 and "item_id" in r.text,
         "a bad item_id: 400 naming it", r.show())
    r = cgi(ENV, form(("type", "item.update"), ("hook_id", "1001")))
    t.ok(r.status == 400 and "item_id" in r.text,
         "item.update without item_id: 400", r.show())
    r = cgi(ENV, item_body("item.create", 0))
    t.ok(r.status == 400 and "item_id 0" in r.text,
         "item.create with item_id 0: 400", r.show())
    r = cgi(ENV, form(("type", "hook.verify"), ("hook_id", "1001"),
                      ("code", "x" * 2000)))
    t.ok(r.status == 400 and "code" in r.text,
         "hook.verify with a code Podio could never accept: 400", r.show())
    e = dict(ENV, PODIO_ALLOWED_HOOKS="1001, 1005")
    r = cgi(e, item_body("item.update", 42, hook_id=1002))
    t.ok(r.status == 403 and "allowed_hooks" in r.text,
         "a hook not in allowed_hooks: 403", r.show())
    r = cgi(e, item_body("item.update", 42, hook_id=1002, secret="wrong"))
    t.ok(r.status == 403 and "wrong secret" in r.text,
         "the secret is judged before allowed_hooks", r.show())
    # The order: 405 beats everything after it, 415 beats the secret.
    r = cgi(ENV, b"a%00", method="PUT", content_type="text/plain")
    t.ok(r.status == 405, "order: 405 before 415 and 400", r.show())
    r = cgi(ENV, item_body("item.update", 42, secret="wrong"),
            content_type="text/plain")
    t.ok(r.status == 415, "order: 415 before 403", r.show())
    r = cgi(ENV, form(("type", "item.update"), ("item_id", "x")) +
            b"&n=%00", )
    t.ok(r.status == 400 and "NUL" in r.text.upper(),
         "order: 400 (NUL) before 403", r.show())
    t.ok(sim.requests() == [],
         "bad input: not one request reached the API (tokens included)",
         [(q["method"], q["path"]) for q in sim.requests()])

    # ---------------------------------------------------------- hook.verify
    r = pw(["-c", CONF, "hooks", "create", "app", "1234",
            "https://hooks.example.com/podio", "item.create"], ENV)
    hook_id = int(r.stdout.strip()) if r.returncode == 0 else 0
    code = sim.verify_code(hook_id)
    t.ok(hook_id > 0 and code, "a hook to verify", r.stderr)
    sim.clear_requests()
    r = cgi(ENV, form(("type", "hook.verify"), ("hook_id", str(hook_id)),
                      ("code", "not-" + str(code))))
    t.ok(r.status == 502 and "refused" in r.text,
         "hook.verify with a code Podio refuses: 502", r.show())
    r = cgi(ENV, form(("type", "hook.verify"), ("hook_id", str(hook_id)),
                      ("code", code)))
    t.ok(r.status == 200, "hook.verify with the issued code: 200",
         r.show())
    val = sim.requests("/hook/%d/verify/validate" % hook_id)
    t.ok(len(val) == 2 and json.loads(val[1]["body"]) == {"code": code} and
         val[1]["headers"].get("authorization", "").startswith("OAuth2 ")
         and val[1]["method"] == "POST",
         "validate was called with JSON {code} and OAuth2",
         val)
    hooks = [h for h in sim.hooks() if h["hook_id"] == hook_id]
    t.ok(hooks and hooks[0]["status"] == "active", "the hook is active",
         hooks)
    t.ok(not any(ev.get("type") == "hook.verify"
                 for ev in logged_events()),
         "hook.verify reaches no callback", logged_events())
    e = dict(ENV, PODIO_API_URL="http://127.0.0.1:%d" % 1)
    e["PODIO_TOKEN_CACHE"] = os.path.join(D, "other-cache.json")
    r = cgi(e, form(("type", "hook.verify"), ("hook_id", str(hook_id)),
                    ("code", code)))
    t.ok(r.status == 502 and "cannot reach" in r.text,
         "hook.verify with Podio unreachable: 502, saying so", r.show())

    # ------------------------------------------------------- item events
    clear_commands()
    clear_events()
    sim.clear_requests()
    sim.add_item(42, title="The answer", revision=3)
    r = cgi(ENV, item_body("item.update", 42, rev=7),
            argv=["spool", "purge"])
    t.ok(r.status == 200 and
         r.text.startswith("ok: queued as intake event ") and r.rc == 0,
         "item.update: 200 once stored (argv 'spool purge' ignored)",
         r.show())
    testlib.wait_for(lambda: len(recorded_commands()) == 1 and
             len(logged_events()) == 1, "the callbacks of item.update 42")
    t.ok("unknown command" not in r.stderr and "spool" not in r.stderr and
         r.raw.startswith(b"Status: 200"),
         "CGI mode ran no command: its output is the CGI answer", r.show())
    gets = sim.requests("/item/42")
    t.ok(len(gets) == 1 and gets[0]["method"] == "GET" and
         gets[0]["query"] == "mark_as_viewed=0" and
         gets[0]["headers"].get("authorization", "").startswith("OAuth2 "),
         "GET /item/42?mark_as_viewed=0 with OAuth2", gets)
    ran = recorded_commands()
    ev, cenv = ran[0] if ran else ({}, {})
    t.ok(len(ran) == 1 and ev.get("type") == "item.update" and
         ev.get("hook_id") == 1001 and ev.get("item_id") == 42 and
         ev.get("item_revision_id") == 7 and
         ev.get("item", {}).get("title") == "The answer" and
         ev.get("item", {}).get("current_revision", {}).get("revision") == 3,
         "the on command got the event JSON with the item", ran)
    t.ok("secret" not in ev.get("params", {"secret": 1}) and
         ev.get("params", {}).get("item_id") == "42",
         "params holds the parameters, without the secret", ev)
    t.ok(cenv.get("PODIO_EVENT_TYPE") == "item.update" and
         cenv.get("PODIO_HOOK_ID") == "1001" and
         cenv.get("PODIO_ITEM_ID") == "42" and
         not any(k in cenv for k in ("PODIO_WEBHOOK_SECRET",
                                     "PODIO_APP_TOKEN", "REQUEST_METHOD",
                                     "PODIO_CLIENT_SECRET")),
         "the command's environment: PODIO_EVENT_TYPE, ids, no secret",
         cenv)
    logged = logged_events()
    t.ok(len(logged) == 1 and logged[0] == ev,
         "the log rule got the same event as one JSON line", logged)
    m = re.search(r"request method=POST type=item\.update hook_id=1001 "
                  r"item_id=42 status=200 ms=\d+: "
                  r"ok: queued as intake event \d+$", r.stderr, re.M)
    t.ok(m and len([ln for ln in r.stderr.splitlines()
                    if "request " in ln]) == 1 and
         "callbacks=" not in r.stderr,
         "one log line: method, type, ids, status, duration, what "
         "happened at intake (no callback counts)", r.stderr)

    settle(ENV)
    clear_commands()
    clear_events()
    sim.clear_requests()
    r = cgi(ENV, item_body("item.create", 43))
    ran = testlib.wait_for(lambda: recorded_commands(), "item.create 43")
    t.ok(r.status == 200 and len(ran) == 1 and
         ran[0][0].get("item", {}).get("title") == "Item 43",
         "item.create: fetched and handed on", r.show())
    r = cgi(ENV, item_body("item.delete", 44))
    testlib.wait_for(lambda: len(recorded_commands()) == 2, "item.delete 44")
    ran = recorded_commands()
    t.ok(r.status == 200 and len(ran) == 2 and "item" not in ran[1][0] and
         ran[1][0].get("type") == "item.delete" and
         ran[1][0].get("item_id") == 44,
         "item.delete: handed on without an item", ran)
    t.ok([q["path"] for q in sim.api_requests()] == ["/item/43"],
         "item.delete fetched nothing",
         [q["path"] for q in sim.api_requests()])
    r = cgi(ENV, form(("type", "comment.create"), ("hook_id", "1001"),
                      ("item_id", "45"), ("comment_id", "9007199254740993")))
    testlib.wait_for(lambda: len(recorded_commands()) == 3, "comment.create 45")
    ran = recorded_commands()
    t.ok(r.status == 200 and len(ran) == 3 and
         ran[2][0].get("comment_id") == 9007199254740993 and
         "item" not in ran[2][0],
         "comment.create: passed on with exact 64-bit ids, no fetch", ran)
    r = cgi(ENV, form(("type", "task.frobnicate"), ("hook_id", "1001")))
    testlib.wait_for(lambda: len(logged_events()) == 4, "task.frobnicate")
    t.ok(r.status == 200 and logged_events()[-1]["type"] ==
         "task.frobnicate", "an unknown type is accepted and logged",
         r.show())
    t.ok([q["path"] for q in sim.api_requests()] == ["/item/43"],
         "other types cost no API call",
         [q["path"] for q in sim.api_requests()])

    # The secret in the query string or in the body; the body wins.
    r = cgi(ENV, item_body("item.delete", 46, secret=None),
            query="secret=" + urllib.parse.quote(SECRET, safe=""))
    t.ok(r.status == 200, "the secret in the query string: 200", r.show())
    r = cgi(ENV, item_body("item.delete", 46),
            query="secret=wrong")
    t.ok(r.status == 200, "a wrong query secret, the right body one: 200",
         r.show())
    r = cgi(ENV, item_body("item.delete", 46, secret="wrong"),
            query="secret=" + urllib.parse.quote(SECRET, safe=""))
    t.ok(r.status == 403, "a wrong body secret beats the query's: 403",
         r.show())

    # Fetch failures and failing callbacks.  The item stays unavailable
    # until the check is made (a retry is due every tenth of a second, so
    # a single failure could be retried before anyone looks).
    settle(ENV)
    sim.fail("/item/47", status=503, count=None)
    clear_commands()
    r = cgi(ENV, item_body("item.update", 47))
    t.ok(r.status == 200 and "queued" in r.text,
         "an item Podio cannot serve now: still 200, the event is stored",
         r.show())
    testlib.wait_for(lambda: spool_status(ENV).get(
        "api_unavailable_since") and spool_status(ENV).get("pending") == 1,
        "the event to wait for the API's outage")
    t.ok(recorded_commands() == [] and
         len(sim.requests("/item/47")) >= 1,
         "the fetch failed with 503: no callback ran, the event waits for "
         "the outage to end", recorded_commands())
    failed = len(sim.requests("/item/47"))
    sim.clear_fails()
    drain_until(ENV, lambda: recorded_commands(), "the retry of item 47")
    ran = recorded_commands()
    t.ok(len(ran) == 1 and ran[0][0].get("item_id") == 47 and
         "item" in ran[0][0] and len(sim.requests("/item/47")) > failed,
         "once Podio answers, a probe fetches the item and runs the "
         "callbacks", ran)
    settle(ENV)
    clear_commands()
    sim.add_item(48)
    sim.delete_item(48, gone=True)
    r = cgi(ENV, item_body("item.update", 48))
    ran = testlib.wait_for(lambda: recorded_commands(), "item.update 48")
    t.ok(r.status == 200 and len(ran) == 1 and ran[0][0].get("item", 1)
         is None and ran[0][0].get("item_error") == "gone",
         "an item already gone: 200, item null, item_error", ran)
    # A spool directory others could write in (and so plant events in)
    # is refused: serve does not start, a CGI run answers 503.
    open_dir = os.path.join(D, "spool-open")
    os.mkdir(open_dir)
    os.chmod(open_dir, 0o770)
    EW = dict(ENV, PODIO_SPOOL_DIR=open_dir)
    sock3 = os.path.join(D, "refused.sock")
    r = pw(["serve", "--listen", "unix:" + sock3], EW)
    t.ok(r.returncode == 2 and "cannot start" in r.stderr and
         "chmod go-w" in r.stderr and not os.path.exists(sock3),
         "serve refuses a group-writable spool directory at start, "
         "saying what to fix", r.stderr)
    r = cgi(EW, item_body("item.update", 77), label="cgi, open spool")
    t.ok(r.status == 503 and "chmod go-w" in r.stderr and
         os.listdir(open_dir) == [],
         "CGI: a group-writable spool directory: 503, a log line saying "
         "what to fix, nothing stored", (r.status, r.stderr))
    # A spool of its own: the failing event is retried, and the retries
    # must not run the log rule while the others count its lines.
    EF = dict(ENV, PODIO_SPOOL_DIR=os.path.join(D, "spool-fail"))
    r = cgi(EF, form(("type", "file.change"), ("hook_id", "1001"),
                     ("item_id", "49")))
    testlib.wait_for(lambda: spool_status(EF).get("retrying") == 1,
             "the failed file.change")
    ls = pw(["spool", "list"], EF)
    t.ok(r.status == 200 and "cannot do file.change today" in ls.stdout and
         "exit status 3" in ls.stdout and " retrying " in ls.stdout,
         "a failing callback: still 200; retried, with its stderr as the "
         "reason", r.show() + "\n" + ls.stdout)

    # ----------------------------------------------- webhook_secret needed
    noconf = write_conf(os.path.join(D, "nosecret.conf"), secret=None)
    e = dict(ENV, PODIO_WEBHOOK_CONFIG=noconf)
    sim.clear_requests()
    r = cgi(e, item_body("item.delete", 50, secret=None))
    t.ok(r.status == 503 and r.text == "podio-webhook is not configured: "
         "webhook_secret is not set" and "webhook_secret" in r.stderr,
         "CGI without webhook_secret: 503, saying so, logged", r.show())
    e2 = dict(e, PODIO_ALLOW_NO_SECRET="yes")
    r = cgi(e2, item_body("item.delete", 50, secret=None))
    t.ok(r.status == 200, "allow_no_secret = yes: accepted without one",
         r.show())
    t.ok(sim.requests() == [], "neither made an API call",
         sim.requests())
    r = pw(["serve", "--listen", "unix:" + os.path.join(D, "x.sock")], e)
    t.ok(r.returncode == 2 and "webhook_secret is not set" in r.stderr and
         not os.path.exists(os.path.join(D, "x.sock")),
         "serve without webhook_secret: exit 2, no socket", r.stderr)
    badconf = os.path.join(D, "bad.conf")
    with open(badconf, "w") as f:
        f.write("webhook_secret = x\nnot a line\n")
    r = cgi(dict(ENV, PODIO_WEBHOOK_CONFIG=badconf),
            item_body("item.delete", 50))
    t.ok(r.status == 503 and badconf + ":2:" in r.stderr and
         badconf not in r.text,
         "CGI with a broken configuration: 503, file:line only in the log",
         r.show())

    # ------------------------------------------------------------- emit
    dfile = os.path.join(D, "delivery.txt")
    with open(dfile, "wb") as f:
        f.write(item_body("item.update", 42) + b"\n")
    # Events stored above may still wait for their item's settle window.
    settle(ENV)
    clear_commands()
    before = spool_status(ENV)
    sim.clear_requests()
    r = pw(["emit", dfile], ENV)
    out = r.stdout.splitlines()
    t.ok(r.returncode == 0 and out[:2] == [
        "status 200: ok: accepted (a POST is queued; emit runs the event "
        "now)", "delivery: item.update, hook 1001, item 42"] and
         "item 42 fetched" in out and
         out[-1] == "result: ok, 2 callbacks succeeded",
         "emit FILE: the answer of a POST, the delivery, the fetch, the "
         "result, exit 0", r.stdout + r.stderr)
    t.ok(re.search(r"^on item\.\* %s \(%s:\d+\): ok, \d+ ms$" % (
        re.escape(CMD), re.escape(CONF)), r.stdout, re.M) and
        re.search(r"^log \* %s \(%s:\d+\): ok" % (re.escape(EVENTS),
                                                 re.escape(CONF)),
                  r.stdout, re.M) and len(recorded_commands()) == 1,
        "emit prints one line per callback that ran", r.stdout)
    t.ok(len(sim.requests("/item/42")) == 1 and
         spool_status(ENV) == before,
         "emit fetched the item at once and left nothing in the spool",
         "%r\n%r" % (sim.requests(), spool_status(ENV)))
    r = pw(["emit", "-"], ENV, input=form(("type", "file.change"),
                                          ("hook_id", "1"),
                                          ("item_id", "2")).decode())
    t.ok(r.returncode == 1 and "exit status 3" in r.stdout and
         r.stdout.splitlines()[-1] == "result: 1 of 2 callbacks failed; "
         "the server would try the event again later",
         "emit - with a failing callback: exit 1", r.stdout + r.stderr)
    # Podio unreachable: a POST is answered 200 (stored, fetched later);
    # emit answers the same, then says the fetch failed: exit 3.
    clear_commands()
    e = dict(ENV, PODIO_API_URL="http://127.0.0.1:%d" % 1,
             PODIO_TOKEN_CACHE=os.path.join(D, "emit-cache.json"),
             PODIO_SPOOL_DIR=os.path.join(D, "emit-spool"))
    r = pw(["emit", dfile], e)
    out = r.stdout.splitlines()
    t.ok(r.returncode == 3 and out[:1] == [
        "status 200: ok: accepted (a POST is queued; emit runs the event "
        "now)"] and out[-1].startswith("result: ") and
         "the server would keep the event and try again later" in out[-1]
         and recorded_commands() == [],
         "emit with Podio unreachable: status 200 as a POST, the fetch "
         "failed, no callback, exit 3", r.stdout + r.stderr)
    posted = cgi(e, item_body("item.update", 42))
    t.ok(posted.status == 200 and posted.text.startswith("ok: queued as "
                                                        "intake event "),
         "the same delivery POSTed with Podio unreachable: 200, queued",
         posted.show())
    # A wrong secret: the 403 a POST gets, nothing run.
    wrong = item_body("item.update", 42, secret="no")
    r = pw(["emit", "-"], ENV, input=wrong.decode())
    posted = cgi(ENV, wrong)
    t.ok(r.returncode == 1 and r.stdout.strip() ==
         "status 403: forbidden: wrong secret" and posted.status == 403 and
         r.stdout.strip() == "status %d: %s" % (posted.status,
                                                posted.text.strip()),
         "emit with a wrong secret: status 403 as a POST, exit 1",
         r.stdout + r.stderr + posted.show())
    r = pw(["emit", "-"], ENV, input=form(("type", "item.update"),
                                          ("hook_id", "1001")).decode())
    t.ok(r.returncode == 1 and r.stdout.strip() == "status 400: malformed "
         "delivery: item.update without an item_id",
         "emit of an item event without an item id: 400 as a POST, exit 1",
         r.stdout + r.stderr)
    r = pw(["emit", os.path.join(D, "no-such-file")], ENV)
    t.ok(r.returncode == 2 and "no-such-file" in r.stderr,
         "emit of a missing file: exit 2", r.stderr)
    r = pw(["emit"], ENV)
    t.ok(r.returncode == 2, "emit without FILE: exit 2", r.stderr)
    r = pw(["emit", dfile], dict(ENV, PODIO_WEBHOOK_CONFIG=noconf))
    t.ok(r.returncode == 2 and "webhook_secret is not set" in r.stderr,
         "emit without webhook_secret: exit 2", r.stderr)

    # ------------------------------------------------- the example program
    settle(ENV)
    clear_commands()
    exlog = os.path.join(D, "example.log")
    r = cgi(dict(ENV, PODIO_LOG_TARGET="file:" + exlog),
            item_body("item.update", 42), program=EXAMPLE, label="example")
    testlib.wait_for(lambda: "(4 callbacks)" in testlib.read_text(exlog) and
             recorded_commands(), "the example's callbacks")
    OUTPUTS.append(("example log", testlib.read_text(exlog)))
    t.ok(r.status == 200 and 'example: item.update: item 42 titled "The '
         'answer" is now at revision 3' in testlib.read_text(exlog) and
         "done: ok (4 callbacks)" in testlib.read_text(exlog) and
         len(recorded_commands()) == 1,
         "the example program: its C callbacks, then the rules (in the "
         "detached child, logging to log_target)",
         r.show() + testlib.read_text(exlog))
    r = pw(["emit", dfile], ENV, program=EXAMPLE)
    t.ok(r.returncode == 0 and re.search(r"^function item\.update: ok",
                                         r.stdout, re.M) and
         re.search(r"^function item\.\*: ok", r.stdout, re.M) and
         r.stdout.index("function item.*") < r.stdout.index("on item.*"),
         "emit through the example: functions first, then the rules",
         r.stdout + r.stderr)
    r = pw(["emit", "-"], ENV, program=EXAMPLE,
           input=item_body("item.update", 48).decode())
    t.ok(r.returncode == 1 and "the item is gone (gone)" in r.stdout,
         "a C callback's failure message is reported", r.stdout)

    # ------------------------------------------------- serve: unix socket
    sock = os.path.join(D, "fcgi.sock")
    # A stale socket file, as a killed server leaves it.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)
    stale.close()
    srv = Server([testlib.PODIO_WEBHOOK, "serve", "--listen", "unix:" + sock],
                 ENV, address=sock, wait_socket=sock, label="serve")
    t.ok(srv.proc.poll() is None and
         stat.S_ISSOCK(os.stat(sock).st_mode) and
         stat.S_IMODE(os.stat(sock).st_mode) == 0o660,
         "serve --listen unix: replaces a stale socket, mode 0660",
         srv.text())
    r = pw(["serve", "--listen", "unix:" + sock], ENV)
    t.ok(r.returncode == 2 and "another server" in r.stderr,
         "a second serve on a live socket: exit 2", r.stderr)
    # The path appears only once the socket listens: it is bound under a
    # temporary name and renamed, so the watched directory sees the path
    # moved in, never created.
    wdir = os.path.join(D, "sockdir")
    os.mkdir(wdir)
    ino = testlib.inotify_watch(wdir)
    if ino is None:
        t.skip("serve: the socket path appears only once it listens",
               "inotify is not available here")
    else:
        path2 = os.path.join(wdir, "fcgi.sock")
        srv2 = Server([testlib.PODIO_WEBHOOK, "serve", "--listen",
                       "unix:" + path2], ENV, address=path2,
                      wait_socket=path2, label="serve (renamed socket)")
        evs = testlib.inotify_events(ino)
        os.close(ino)
        mine = [m for n, m in evs if n == "fcgi.sock"]
        t.ok(mine == [testlib.IN_MOVED_TO] and
             any(n.startswith(".pw-") and m == testlib.IN_CREATE for n, m in evs)
             and os.listdir(wdir) == ["fcgi.sock"] and
             srv2.delivery(item_body("item.delete", 59)).status == 200,
             "serve: the socket path appears only once it listens (bound "
             "under a temporary name, then renamed)", evs)
        srv2.stop()

    # ------------------------------------- serve: client_timeout deadlines
    # One worker and client_timeout 1s: each stalled client holds the
    # only worker for at most its deadline, then the delivery queued
    # behind it is answered.
    path4 = os.path.join(D, "deadline.sock")
    srv4 = Server([testlib.PODIO_WEBHOOK, "serve", "--listen",
                   "unix:" + path4, "--workers", "1"],
                  dict(ENV, PODIO_CLIENT_TIMEOUT="1s"), address=path4,
                  wait_socket=path4, label="serve (deadlines)")

    def stalled(send, label, n_late):
        """Opens a connection, sends send (bytes) and nothing more; a
        delivery behind it must be answered, the stalled connection
        closed by the server, and n_late more 408 lines logged."""
        before = srv4.text().count("status=408")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(60 * SLOW)
            s.connect(path4)
            if send:
                s.sendall(send)
            r = srv4.delivery(item_body("item.delete", 80))
            try:
                closed = s.recv(65536) == b"" or s.recv(65536) == b""
            except OSError:
                closed = True
        testlib.wait_for(lambda: srv4.text().count("status=408") >=
                         before + n_late, "the 408 line of " + label)
        t.ok(r.status == 200 and closed and
             srv4.text().count("status=408") == before + n_late,
             "client_timeout: %s: closed at its deadline, the delivery "
             "behind it answered 200, %d line(s) status=408 logged"
             % (label, n_late), (r, closed, srv4.text()[-1500:]))

    head = fcgi._record(fcgi.BEGIN_REQUEST, 1, struct.pack(
        "!HB5x", fcgi.RESPONDER, 0))
    body = item_body("item.delete", 81)
    params = fcgi._stream(fcgi.PARAMS, 1, fcgi.encode_params(
        fcgi.cgi_params(body)))
    stalled(b"", "a connection that sends nothing", 1)
    stalled(head[:5], "half a record header", 1)
    stalled(head + params, "a head without its body", 1)
    stalled(head + params + fcgi._record(fcgi.STDIN, 1, body[:10]),
            "a body cut short", 1)
    # A refusal is answered before its body is read: a 413 for a body
    # that is never sent at all.
    with fcgi.Connection(path4, timeout=60 * SLOW) as c:
        big = fcgi.cgi_params(b"", content_length=str(10 ** 8))
        rid = c.send_head(big)
        r = c.read_response(rid)
    t.ok(r.status == 413, "a refusal (413) is answered without its body "
         "being sent", r)
    # A kept connection left idle is closed at client_timeout.
    with fcgi.Connection(path4, timeout=60 * SLOW) as c:
        r1 = c.request(fcgi.cgi_params(item_body("item.delete", 82)),
                       item_body("item.delete", 82), keep_conn=True)
        r2 = srv4.delivery(item_body("item.delete", 83))
        try:
            idle_closed = c.sock.recv(1) == b""
        except OSError:
            idle_closed = True
    t.ok(r1.status == 200 and r2.status == 200 and idle_closed,
         "client_timeout: a kept connection left idle is closed, and the "
         "only worker takes the next connection", (r1, r2))
    t.ok(srv4.stop() == 0, "serve (deadlines) stops cleanly",
         srv4.text()[-1000:])

    # ---------------------- serve: requests still coming hold no worker
    # One worker, client_timeout 5 minutes: eight connections stuck
    # halfway through their requests (a head, half a record header, part
    # of a body) and four kept connections left idle hold no worker,
    # so deliveries sent meanwhile are answered while they are all still
    # open and none has reached its deadline.
    path6 = os.path.join(D, "slow.sock")
    srv6 = Server([testlib.PODIO_WEBHOOK, "serve", "--listen",
                   "unix:" + path6, "--workers", "1"],
                  dict(ENV, PODIO_CLIENT_TIMEOUT="300s"), address=path6,
                  wait_socket=path6, label="serve (slow clients)")
    slow = []
    tb = item_body("item.delete", 84)
    tp = fcgi._stream(fcgi.PARAMS, 1, fcgi.encode_params(
        fcgi.cgi_params(tb)))
    for i in range(8):
        s6 = socket.socket(socket.AF_UNIX)
        s6.settimeout(60 * SLOW)
        s6.connect(path6)
        s6.sendall([head + tp + fcgi._record(fcgi.STDIN, 1, tb[:20]),
                    head[:3], head + tp[:11], b""][i % 4])
        slow.append(s6)
    kept = []
    for i in range(4):
        c6 = fcgi.Connection(path6, timeout=60 * SLOW)
        b6 = item_body("item.delete", 85 + i)
        kept.append(c6.request(fcgi.cgi_params(b6), b6, keep_conn=True)
                    .status)
        slow.append(c6.sock)
    rs6 = [srv6.delivery(item_body("item.delete", 89 + i)).status
           for i in range(3)]
    still_open = 0
    for s6 in slow:
        s6.setblocking(False)
        try:
            s6.recv(1)
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    t.ok(kept == [200] * 4 and rs6 == [200] * 3 and still_open == 12 and
         "status=408" not in srv6.text(),
         "one worker: 8 connections stuck halfway through their requests "
         "and 4 idle kept ones hold no worker; deliveries meanwhile are "
         "answered 200 (%d of 12 still open, no deadline reached)"
         % still_open, (kept, rs6, still_open, srv6.text()[-1500:]))
    for s6 in slow:
        s6.close()
    t.ok(srv6.stop() == 0, "serve (slow clients) stops cleanly",
         srv6.text()[-1000:])

    # ------------------------- serve: connections waiting for their answer
    # With the spool's lock file held here, no event can be flushed, so
    # every delivery waits for its answer.  Under a descriptor limit that
    # leaves room for 6 such connections, 80 deliveries at once never make
    # the server run out of descriptors: past 6 it stops accepting, and
    # once the lock is let go every one is answered 200.
    bdir = os.path.join(D, "spool-bounded")
    EB = dict(ENV, PODIO_SPOOL_DIR=bdir)
    pw(["spool", "status"], EB)
    path5 = os.path.join(D, "bounded.sock")
    nofile = 64 + 4 * 2 + 6
    srv5 = Server(["prlimit", "--nofile=%d:%d" % (nofile, nofile)] +
                  testlib.wrapper() + [testlib.PODIO_WEBHOOK, "serve",
                                       "--listen", "unix:" + path5,
                                       "--workers", "2"],
                  EB, address=path5, wait_socket=path5,
                  label="serve (bounded)", wrap=False)
    lockf = open(os.path.join(bdir, "spool.lock"), "r+")
    fcntl.flock(lockf, fcntl.LOCK_EX)
    posters, answers = post_all(
        srv5, [item_body("item.delete", 9000 + i) for i in range(80)])
    full = testlib.wait_for(lambda: "connections are open" in srv5.text(),
                            "the bound on open connections")
    # prlimit runs the server (or valgrind with it) in its own process.
    open_fds = len(os.listdir("/proc/%d/fd" % srv5.proc.pid))
    fcntl.flock(lockf, fcntl.LOCK_UN)
    lockf.close()
    for th in posters:
        th.join()
    st = [getattr(x, "status", x) for x in answers]
    t.ok(full and open_fds < nofile and st == [200] * 80 and
         "Too many open files" not in srv5.text(),
         "80 deliveries waiting for a flush under a limit of %d "
         "descriptors: the server stops accepting at its bound (%d open), "
         "never runs out, and answers every one 200 once the flush "
         "happens" % (nofile, open_fds),
         (st, srv5.text()[-1500:]))
    t.ok(srv5.stop() == 0, "serve (bounded) stops cleanly",
         srv5.text()[-1000:])

    r = srv.delivery(item_body("item.update", 42))
    t.ok(r.status == 200 and "queued" in r.text and
         r.headers.get("content-type", "").startswith("text/plain"),
         "FastCGI: item.update answered 200", r)
    r = srv.delivery(item_body("item.update", 42), method="GET")
    t.ok(r.status == 405 and r.headers.get("allow") == "POST",
         "FastCGI: GET answered 405 with Allow", r)
    r = srv.delivery(item_body("item.update", 42, secret="x"))
    t.ok(r.status == 403, "FastCGI: a wrong secret answered 403", r)
    # A connection that ends before its head is dropped; the server goes on.
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(b"\x01\x01\x00")
    with fcgi.Connection(sock, timeout=60 * SLOW) as c:
        rs = [c.request(fcgi.cgi_params(item_body("item.delete", 60 + i)),
                        item_body("item.delete", 60 + i), keep_conn=True)
              for i in range(3)]
    t.ok([x.status for x in rs] == [200] * 3,
         "three requests on one kept connection, after a broken one",
         rs)
    r = srv.delivery(b"x" * 70000)
    t.ok(r.status == 413, "FastCGI: a body over max_body: 413", r)
    # The body a 413 left unread must not spoil a kept connection.
    with fcgi.Connection(sock, timeout=60 * SLOW) as c:
        big = b"x" * 200000
        r1 = c.request(fcgi.cgi_params(big), big, keep_conn=True)
        body = item_body("item.delete", 64)
        r2 = c.request(fcgi.cgi_params(body), body, keep_conn=True)
    t.ok(r1.status == 413 and r2.status == 200,
         "a kept connection carries the next request after a 413",
         (r1, r2))

    # Forged item events (no secret, a wrong one, a hook not allowed)
    # straight on the socket cost no API call and no spool write.
    settle(ENV)
    sim.clear_requests()
    wal = os.path.join(ENV["PODIO_SPOOL_DIR"], "spool.db-wal")
    dbf = os.path.join(ENV["PODIO_SPOOL_DIR"], "spool.db")

    def spool_files():
        return [(os.stat(f).st_size, os.stat(f).st_mtime_ns)
                for f in (dbf, wal) if os.path.exists(f)]
    files0, status0 = spool_files(), spool_status(ENV)
    n_forged = 1000 if testlib.wrapper() else 10000
    forged = [0, 0]

    def forge(k):
        for i in range(k, n_forged, 4):
            secret = (None, "not-the-secret")[i % 2]
            b = form(("type", "item.update"), ("hook_id", 1001),
                     ("item_id", 5000000 + i), ("item_revision_id", 1),
                     secret=secret)
            forged[srv.delivery(b).status == 403] += 1
    threads = [threading.Thread(target=forge, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.ok(forged == [0, n_forged] and not sim.requests() and
         spool_files() == files0 and spool_status(ENV) == status0,
         "%d forged item events on the socket: each 403, no API call, "
         "the spool's files untouched" % n_forged,
         (forged, sim.requests()[:3], files0, spool_files()))

    # 20 at once.
    settle(ENV)
    clear_events()
    sim.clear_requests()
    threads, results = post_all(
        srv, [item_body("item.update", 100 + i) for i in range(20)])
    for th in threads:
        th.join()
    statuses = [getattr(x, "status", x) for x in results]
    t.ok(statuses == [200] * 20, "20 concurrent deliveries: all 200",
         statuses)
    testlib.wait_for(lambda: len(logged_events()) >= 20, "20 events processed")
    settle(ENV)
    # Each item fetched once: by its own GET, or in one filter call for
    # the items of the app due together (the app learned from a GET).
    got = []
    for q in sim.requests("/item/"):
        if "/filter/" in q["path"]:
            got += json.loads(q["body"])["filters"]["item_id"]
        else:
            got.append(int(q["path"].split("/")[2]))
    t.ok(sorted(got) == list(range(100, 120)),
         "each item was fetched once (by GET or filter)", got)
    sources = [ev.get("item_source") for ev in logged_events()]
    t.ok(len(sources) == 20 and set(sources) <= {"get", "filter"},
         "each event says where its item came from", sources)
    t.ok(sorted(ev["item_id"] for ev in logged_events()) ==
         list(range(100, 120)), "each reached the log rule once",
         len(logged_events()))

    # The answer does not wait for the item: with its GET held at a gate
    # the 200 comes back, and another event is processed meanwhile.
    def logged_item(item_id):
        return [e for e in logged_events() if e.get("item_id") == item_id]
    gid = sim.gate("/item/200", method="GET")
    r = srv.delivery(item_body("item.update", 200))
    t.ok(r.status == 200 and "queued" in r.text,
         "FastCGI: 200 before the item is fetched", r)
    sim.wait_until(lambda: sim.gate_waiting(gid) == 1, timeout=30 * SLOW,
                   what="the item GET at the gate")
    r = srv.delivery(item_body("item.update", 201))
    testlib.wait_for(lambda: logged_item(201), "item 201 processed")
    t.ok(r.status == 200 and not logged_item(200) and
         sim.gate_waiting(gid) == 1,
         "another event is processed while the first fetch is held", r)
    sim.release(gid)
    testlib.wait_for(lambda: logged_item(200), "item 200 processed")
    t.ok(logged_item(200)[0].get("item", {}).get("item_id") == 200,
         "the held event runs its callbacks once released",
         logged_item(200))

    # SIGHUP: a new secret.
    write_conf(CONF, secret=SECRET2)
    srv.proc.send_signal(signal.SIGHUP)
    testlib.wait_for(lambda: "configuration reloaded" in srv.text(), "the reload")
    r1 = srv.delivery(item_body("item.delete", 70))
    r2 = srv.delivery(item_body("item.delete", 70, secret=SECRET2))
    t.ok(r1.status == 403 and r2.status == 200,
         "SIGHUP: the new secret is in force, the old one refused",
         (r1, r2))
    # SIGHUP with a broken file: the old configuration stays.
    with open(CONF, "a") as f:
        f.write("this line is broken\n")
    nlines = len(testlib.read_text(CONF).splitlines())
    srv.proc.send_signal(signal.SIGHUP)
    testlib.wait_for(lambda: "not reloaded" in srv.text(), "the failed reload")
    line = [ln for ln in srv.text().splitlines() if "not reloaded" in ln]
    r = srv.delivery(item_body("item.delete", 71, secret=SECRET2))
    t.ok(r.status == 200 and srv.proc.poll() is None and
         "%s:%d:" % (CONF, nlines) in line[0],
         "a broken file on SIGHUP: logged with file:line, old config kept",
         line)
    write_conf(CONF)
    srv.proc.send_signal(signal.SIGHUP)
    testlib.wait_for(lambda: srv.text().count("configuration reloaded") == 2,
             "the second reload")
    r = srv.delivery(item_body("item.delete", 72))
    t.ok(r.status == 200, "a fixed file on SIGHUP is taken", r)

    # SIGTERM with an event in hand: its fetch held at a gate.
    gid = sim.gate("/item/300", method="GET")
    held = {"r": srv.delivery(item_body("item.update", 300))}
    sim.wait_until(lambda: sim.gate_waiting(gid) == 1, timeout=30 * SLOW,
                   what="the event at the gate")
    srv.proc.send_signal(signal.SIGTERM)
    testlib.wait_for(lambda: not os.path.exists(sock), "the socket to go")
    try:
        fcgi.delivery(sock, item_body("item.delete", 73))
        refused = False
    except OSError:
        refused = True
    t.ok(refused and srv.proc.poll() is None,
         "SIGTERM: new connections refused at once, the server waits",
         srv.text())
    sim.release(gid)
    rc = srv.stop()
    t.ok(held.get("r") is not None and held["r"].status == 200 and
         logged_item(300) and spool_status(ENV).get("in_flight") == 0,
         "SIGTERM: the event in hand is finished before the exit", held)
    t.ok(rc == 0 and not os.path.exists(sock) and
         no_memory_errors(srv.text()),
         "SIGTERM: exit 0, socket removed", "exit %r\n%s" % (rc,
                                                              srv.text()))
    reqs = [ln for ln in srv.text().splitlines() if ": request " in ln]
    bad = [ln for ln in reqs if not re.search(
        r"request method=\S+ type=\S+ hook_id=\S+ item_id=\S+ "
        r"status=\d{3} ms=\d+: \S", ln)]
    t.ok(len(reqs) == 36 + n_forged and not bad, "one log line per request",
         "%d lines; not matching: %r" % (len(reqs), bad))

    # ------------------------------------------------ serve: TCP, options
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    srv = Server([testlib.PODIO_WEBHOOK, "-o", "log_level=debug", "serve",
                  "--listen", "127.0.0.1:%d" % port, "--workers", "2"],
                 ENV, address=("127.0.0.1", port), label="serve tcp")
    r = srv.delivery(item_body("item.delete", 80))
    t.ok(r.status == 200 and "with 2 workers" in srv.text(),
         "serve --listen 127.0.0.1:PORT --workers 2", srv.text())
    t.ok(srv.stop() == 0, "... stops with exit 0", srv.text())
    srv = Server([testlib.PODIO_WEBHOOK, "serve", "--listen",
                  "127.0.0.1:%d" % port, "--workers", "1"],
                 dict(ENV, FCGI_WEB_SERVER_ADDRS="10.9.9.9"),
                 address=("127.0.0.1", port), label="serve addrs")
    try:
        srv.delivery(item_body("item.delete", 82))
        refused = False
    except (OSError, fcgi.ProtocolError):
        refused = True
    t.ok(refused and "not in FCGI_WEB_SERVER_ADDRS" in srv.text(),
         "FCGI_WEB_SERVER_ADDRS without 127.0.0.1: the connection is "
         "refused", srv.text())
    t.ok(srv.stop() == 0, "... stops with exit 0", srv.text())
    sock6 = os.path.join(D, "mode.sock")
    srv = Server([testlib.PODIO_WEBHOOK, "serve", "--listen",
                  "unix:" + sock6, "--socket-mode", "0600"], ENV,
                 address=sock6, wait_socket=sock6, label="serve mode")
    mode = stat.S_IMODE(os.stat(sock6).st_mode)
    r = srv.delivery(item_body("item.delete", 83))
    t.ok(mode == 0o600 and r.status == 200 and srv.stop() == 0 and
         not os.path.exists(sock6), "--socket-mode 0600", oct(mode))
    for args, what in ((["--listen", "unix:" + sock, "--workers", "0"],
                        "--workers 0"),
                       (["--listen", "nowhere"], "--listen without a port"),
                       (["--listen", "unix:" + sock, "--socket-mode", "999"],
                        "a bad --socket-mode"),
                       ([], "no --listen"),
                       (["--listen", "unix:" + D], "a directory")):
        r = pw(["serve"] + args, ENV)
        t.ok(r.returncode == 2 and "podio-webhook: serve: " in r.stderr,
             "serve with %s: exit 2" % what, r.stderr)

    # --------------------------------------- a listening socket on fd 0
    sock0 = os.path.join(D, "fd0.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(sock0)
    lsock.listen(128)
    srv = Server([testlib.PODIO_WEBHOOK, "-o", "max_params=300", "serve",
                  "--workers", "4"], ENV, stdin=lsock.fileno(),
                 address=sock0, label="fd 0")
    many = "&".join("k%d=v" % i for i in range(280)).encode() + b"&" + \
        item_body("item.delete", 81)
    r = srv.delivery(many)
    t.ok(r.status == 200 and "fd 0" in srv.text() and
         "with 4 workers" in srv.text(),
         "a listening socket on fd 0: FastCGI, with -o and --workers from "
         "argv", srv.text())
    threads, results = post_all(
        srv, [item_body("item.update", 100 + i) for i in range(20)])
    for th in threads:
        th.join()
    t.ok([getattr(x, "status", x) for x in results] == [200] * 20,
         "fd 0: 20 concurrent deliveries, all 200",
         [getattr(x, "status", x) for x in results])
    rc = srv.stop()
    t.ok(rc == 0 and os.path.exists(sock0) and
         no_memory_errors(srv.text()),
         "fd 0: SIGTERM exits 0 and leaves the inherited socket alone",
         srv.text())
    # Not a command: only serve may follow the options.
    p = testlib.popen([testlib.PODIO_WEBHOOK, "config"], env=ENV,
                      stdin=lsock.fileno())
    out, err = p.communicate(timeout=60 * SLOW)
    t.ok(p.returncode == 2 and "fd 0" in err and out == "",
         "fd 0: a command in argv is refused, exit 2", err)
    p = testlib.popen([testlib.PODIO_WEBHOOK], env=dict(
        ENV, PODIO_WEBHOOK_CONFIG=noconf), stdin=lsock.fileno())
    out, err = p.communicate(timeout=60 * SLOW)
    t.ok(p.returncode == 2 and "webhook_secret is not set" in err,
         "fd 0 without webhook_secret: exit 2", err)
    lsock.close()

    # ------------------------------------------------ across all of it
    t.ok(sim.stats()["token_calls"] == 1,
         "one token request across CGI runs, servers and emit",
         sim.stats())
    tokens = set()
    for tok in sim.tokens():
        for key in ("access_token", "refresh_token"):
            if tok.get(key):
                tokens.add(tok[key])
    needles = {"webhook_secret": SECRET, "second secret": SECRET2,
               "encoded secret": urllib.parse.quote(SECRET, safe=""),
               "form secret": urllib.parse.quote_plus(SECRET),
               "app_token": "app-token", "client_secret": "test-secret",
               "verify code": code}
    for i, tok in enumerate(sorted(tokens)):
        needles["token %d" % i] = tok
    leaks = [(label, name) for label, text in OUTPUTS
             for name, needle in needles.items() if needle in text]
    leaks += [("events.jsonl", name) for name, needle in needles.items()
              if needle in testlib.read_text(EVENTS)]
    t.ok(not leaks and len(OUTPUTS) > 40,
         "no secret, code or token in any output or event (%d outputs)"
         % len(OUTPUTS), leaks)
    bad = [label for label, text in OUTPUTS if not no_memory_errors(text)]
    t.ok(not bad, "no memory error reported by any run", bad)
    t.ok(not BAD_EXITS, "every CGI run exited 0", BAD_EXITS)

t.done()
