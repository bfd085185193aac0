"""The checks every end-to-end test runs through its web server, and the
deployment they share.

A Deployment is what a person following deploy/README.md would set up on
a server: the podio-webhook binary in a bin directory, a configuration
file readable only by the handler's user, a state directory for the token
cache and a directory for the callbacks' output, owned by that user.  The
configuration has a `log *` rule (a JSON-lines file) and an `on item.*`
rule running a small script that keeps each event it gets.

run() then drives the server as Podio would, against the simulator:
hooks created with `podio-webhook hooks create` and verified through the
server, item events delivered, every answer of the handler provoked, 20
deliveries at once, and finally that one token served everything.  A
failed check shows the tail of the web server's and the handler's logs.
"""

import json
import os
import pwd
import secrets
import shutil
import socket
import threading
import time
import urllib.parse

import servers
import testlib

APP_ID = 1234
FIRST_HOOK = 5001
EVENTS = ("item.create", "item.update", "item.delete")
MAX_BODY = 16 * 1024

ON_SCRIPT = r"""#!/bin/sh
# `on item.*` callback of the end-to-end tests: keeps each event it gets,
# after one line saying what it saw (its uid, the PODIO_* variables and
# the names of all its environment variables).
out='%(out)s'
tmp=$(mktemp "$out/.event.XXXXXX") || exit 1
names=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | tr '\n' ,)
{
	echo "uid=$(id -u) type=${PODIO_EVENT_TYPE:-}" \
		"hook=${PODIO_HOOK_ID:-} item=${PODIO_ITEM_ID:-} env=$names"
	cat
} > "$tmp" || exit 1
mv "$tmp" "$out/event-${tmp##*.}"
"""

# What a callback command's environment may hold: what the handler gives
# it, and what /bin/sh adds itself.
COMMAND_ENV = {"PATH", "LANG", "TZ", "PODIO_EVENT_TYPE", "PODIO_HOOK_ID",
               "PODIO_ITEM_ID", "PWD", "OLDPWD", "SHLVL", "_"}

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")


class Deployment:
    """The handler's files, owned as in a real deployment.

    user:group is what podio-webhook runs as (for CGI and mod_fcgid:
    Apache's user).  Layout under a fresh root (mode 0755):
      bin/podio-webhook      the binary under test (root, 0755)
      bin/on-event           the `on item.*` command (root, 0755)
      etc/podio-webhook.conf the configuration (user, 0600)
      state/                 the token cache and the spool (user, 0700)
      events/                events.jsonl (`log *`) and on/ (user, 0750)
      run/                   sockets (user:www-data, 0750)
    """

    def __init__(self, sim, user, group):
        self.sim = sim
        self.user = user
        self.group = group
        self.uid = pwd.getpwnam(user).pw_uid
        self.root = servers.make_root()
        r = self.root
        self.bindir = servers.mkdir(os.path.join(r, "bin"))
        self.binary = os.path.join(self.bindir, "podio-webhook")
        shutil.copy(testlib.PODIO_WEBHOOK, self.binary)
        os.chmod(self.binary, 0o755)
        self.etc = servers.mkdir(os.path.join(r, "etc"))
        self.config = os.path.join(self.etc, "podio-webhook.conf")
        self.state = servers.mkdir(os.path.join(r, "state"), 0o700, user,
                                   group)
        self.token_cache = os.path.join(self.state, "token-cache.json")
        self.events = servers.mkdir(os.path.join(r, "events"), 0o750, user,
                                    group)
        self.events_log = os.path.join(self.events, "events.jsonl")
        self.on_dir = servers.mkdir(os.path.join(self.events, "on"), 0o750,
                                    user, group)
        self.rundir = servers.mkdir(os.path.join(r, "run"), 0o750, user,
                                    servers.WEB_GROUP)
        self.on_script = servers.write_file(
            os.path.join(self.bindir, "on-event"),
            ON_SCRIPT % dict(out=self.on_dir), 0o755)
        self.secret = "e2e-" + secrets.token_hex(16)
        self.logs = []     # (label, path): shown when a check fails
        self.hook_ids = [FIRST_HOOK + i for i in range(len(EVENTS))]
        sim.configure(next_hook_id=FIRST_HOOK)

    def config_lines(self):
        """The configuration every setup uses (a setup may put lines of
        its own before them)."""
        lines = ["%s = %s" % kv for kv in testlib.DEFAULT_CREDS.items()]
        lines += [
            "api_url = " + self.sim.url,
            "token_cache = " + self.token_cache,
            "spool_dir = " + os.path.join(self.state, "spool"),
            "webhook_secret = " + self.secret,
            "allowed_hooks = " + ",".join(str(h) for h in self.hook_ids),
            "max_body = %dK" % (MAX_BODY // 1024),
            "log_level = info",
            "on item.* = " + self.on_script,
            "log * = " + self.events_log,
        ]
        return lines

    def write_config(self, before="", omit=()):
        """Writes the configuration file (user, mode 0600): `before`, then
        config_lines() but those starting with a word of omit."""
        lines = [ln for ln in self.config_lines()
                 if not any(ln.startswith(w + " ") for w in omit)]
        servers.write_file(self.config, before + "\n".join(lines) + "\n",
                           0o600, self.user, self.group)

    def env(self):
        """A clean environment, as a service or a shell would give."""
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    def cli(self, *args):
        """Runs `podio-webhook -c CONFIG ARGS...` as the handler's user,
        the way README tells people to (it shares the token cache)."""
        return testlib.run(servers.as_user(self.user, self.group) +
                           [self.binary, "-c", self.config] + list(args),
                           env=self.env(), wrap=False)

# ------------------------------------------------------------------ reading


def read_events(path):
    """The events of a JSON-lines file: (list of objects, list of lines
    that did not parse)."""
    good, bad = [], []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    good.append(json.loads(line))
                except ValueError:
                    bad.append(line)
    except OSError:
        pass
    return good, bad


def read_on_events(on_dir):
    """The events the `on` command kept: list of (header dict, event or
    None when its JSON does not parse, raw text)."""
    out = []
    for name in sorted(os.listdir(on_dir)):
        if name.startswith("."):
            continue
        with open(os.path.join(on_dir, name), encoding="utf-8",
                  errors="replace") as f:
            text = f.read()
        head, _, body = text.partition("\n")
        header = dict(w.split("=", 1) for w in head.split() if "=" in w)
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        out.append((header, event, text))
    return out

# ------------------------------------------------------------------ HTTP


def http(port, method, path, body=b"", headers=None, length=True,
         timeout=60):
    """One HTTP/1.1 request on a fresh connection, written by hand so that
    nothing is added (no Content-Length when length is False).  Returns
    (status, headers dict with lower-case names, body text)."""
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port,
             "Connection: close", "User-Agent: podio-e2e"]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    if length:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                break
            if not c:
                break
            chunks.append(c)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    hlines = head.decode("iso-8859-1").split("\r\n")
    try:
        status = int(hlines[0].split()[1])
    except (IndexError, ValueError):
        return 0, {}, raw.decode(errors="replace")
    hdrs = {}
    for line in hlines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        rest = _unchunk(rest)
    return status, hdrs, rest.decode(errors="replace")


def _unchunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def form(*pairs):
    return urllib.parse.urlencode(list(pairs))

# ------------------------------------------------------------------ checks


class Checker:
    """TAP checks that show the deployment's logs when they fail."""

    def __init__(self, tap, dep, prefix=""):
        self.t = tap
        self.dep = dep
        self.prefix = prefix

    def ok(self, cond, name, diag=None):
        if self.t.ok(cond, self.prefix + name, diag):
            return True
        for label, path in self.dep.logs:
            text = servers.tail(path, 30)
            self.t.diag("--- %s (%s), last lines:" % (label, path))
            self.t.diag(text or "(empty)")
        return False

    def is_(self, got, expected, name):
        return self.ok(got == expected, name,
                       "got:      %r\nexpected: %r" % (got, expected))


def _wait(sim, fn, what, timeout=30):
    try:
        return sim.wait_until(fn, timeout=timeout, what=what)
    except testlib.SimError:
        return None


def _event_for(dep, type_, item_id):
    events, _ = read_events(dep.events_log)
    for e in events:
        if e.get("type") == type_ and e.get("item_id") == item_id:
            return e
    return None


def _on_for(dep, type_, item_id):
    for header, event, _text in read_on_events(dep.on_dir):
        if event and event.get("type") == type_ and \
                event.get("item_id") == item_id:
            return header, event
    return None


def check_hooks(ck, dep, url):
    """Creates one hook per item event with the command line; each gets
    its hook.verify through the server and is validated with its code."""
    sim = dep.sim
    hooks = {}
    for ev in EVENTS:
        r = dep.cli("hooks", "create", "app", str(APP_ID), url, ev)
        out = r.stdout.strip()
        ok = ck.ok(r.returncode == 0 and out.isdigit(),
                   "hooks create %s (as %s) prints the hook id" % (
                       ev, dep.user),
                   "status %d\nstdout: %s\nstderr: %s" % (
                       r.returncode, r.stdout, r.stderr))
        hooks[ev] = int(out) if ok else None
    for ev, hid in hooks.items():
        if hid is None:
            ck.t.skip(ck.prefix + "hook %s verified" % ev, "no hook")
            continue

        def active(hid=hid):
            if any(h["hook_id"] == hid and h["status"] == "active"
                   for h in sim.hooks()):
                return True
            # A refused delivery: no use waiting any longer.
            return any(d["hook_id"] == hid and d["kind"] == "verify" and
                       d["status"] != 200 for d in sim.deliveries()) and -1
        ck.ok(_wait(sim, active, "hook %d active" % hid) is True,
              "hook.verify of the %s hook %d goes through the server and "
              "the hook becomes active" % (ev, hid),
              json.dumps([d for d in sim.deliveries()
                          if d["hook_id"] == hid], indent=1))
        code = sim.verify_code(hid)
        reqs = sim.requests("/hook/%d/verify/validate" % hid, "POST")
        bodies = []
        for q in reqs:
            try:
                bodies.append(json.loads(q["body"]))
            except ValueError:
                bodies.append(q["body"])
        ck.ok(code is not None and {"code": code} in bodies,
              "hook %d: POST /hook/%d/verify/validate with JSON "
              "{\"code\": the code Podio sent}" % (hid, hid),
              "code %r, bodies %r" % (code, bodies))
        ck.ok(reqs and all(q["headers"].get("authorization", "").startswith(
            "OAuth2 ") for q in reqs),
              "hook %d: the validation is authenticated with OAuth2" % hid,
              repr([q["headers"].get("authorization") for q in reqs]))
        # The simulator records a delivery once it has read the answer,
        # which may be after the validation it led to.
        verify = _wait(sim, lambda hid=hid: [
            d for d in sim.deliveries()
            if d["hook_id"] == hid and d["kind"] == "verify"],
            "the verify delivery of hook %d" % hid, 20)
        ck.ok(verify and verify[-1]["status"] == 200,
              "hook %d: the server answered the hook.verify delivery 200"
              % hid,
              repr(verify))
    r = dep.cli("hooks", "list", "app", str(APP_ID), "--json")
    try:
        listed = {h["hook_id"]: h["status"] for h in json.loads(r.stdout)}
    except (ValueError, TypeError, KeyError):
        listed = {}
    ck.ok(r.returncode == 0 and all(listed.get(h) == "active"
                                    for h in hooks.values()),
          "hooks list shows the three hooks active",
          "status %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    ck.ok(dep.secret not in r.stdout,
          "hooks list masks the secret in the URLs", r.stdout)
    return hooks


def check_item_event(ck, dep, hooks, ev, item_id, extra=(), fetched=True):
    """Delivers one item event to its hook (secret moved into the body by
    the simulator, as Podio does) and follows it to the callbacks."""
    sim = dep.sim
    hid = hooks[ev]
    params = [("type", ev), ("hook_id", str(hid)), ("item_id", str(item_id)),
              ("item_revision_id", str(item_id * 10 + 1))] + list(extra)
    res = sim.deliver_full(hid, params)
    ck.is_(res["status"], 200, "%s of item %d: 200" % (ev, item_id))
    # Refused: nothing will come, no use waiting.
    patience = 20 if res["status"] == 200 else 0
    event = _wait(sim, lambda: _event_for(dep, ev, item_id),
                  "%s %d in the event log" % (ev, item_id), patience)
    ck.ok(event is not None, "%s of item %d reaches the `log *` file" % (
        ev, item_id), "answer: %r" % res)
    gets = sim.requests("/item/%d" % item_id, "GET")
    gets = [g for g in gets if g["path"] == "/item/%d" % item_id]
    if fetched:
        ck.ok(len(gets) == 1, "%s: exactly one GET /item/%d" % (ev, item_id),
              repr(gets))
        ck.ok(gets and gets[0]["headers"].get(
            "authorization", "").startswith("OAuth2 ")
              and "mark_as_viewed=0" in gets[0]["query"],
              "%s: GET /item/%d?mark_as_viewed=0 with Authorization: OAuth2"
              % (ev, item_id), repr(gets))
        item = (event or {}).get("item") or {}
        ck.ok(item.get("item_id") == item_id and
              item.get("title") == "E2E item %d" % item_id,
              "%s: the event carries the item as Podio sent it" % ev,
              json.dumps(event)[:2000])
    else:
        ck.ok(not gets, "%s: no GET /item/%d" % (ev, item_id), repr(gets))
        ck.ok(event is not None and "item" not in event,
              "%s: the event has no item" % ev, json.dumps(event))
    if event is not None:
        ck.ok(event.get("hook_id") == hid and
              event.get("item_revision_id") == item_id * 10 + 1,
              "%s: hook_id and item_revision_id are JSON numbers" % ev,
              json.dumps(event)[:2000])
        ck.ok("secret" not in event.get("params", {}) and
              dep.secret not in json.dumps(event),
              "%s: the event does not carry the secret" % ev,
              json.dumps(event)[:2000])
    on = _wait(sim, lambda: _on_for(dep, ev, item_id),
               "the on command for %s %d" % (ev, item_id), patience)
    ck.ok(on is not None and on[1] == event,
          "%s of item %d: the `on item.*` command gets the same event on "
          "stdin" % (ev, item_id), repr(on)[:2000])
    if on is not None:
        header = on[0]
        ck.ok(header.get("uid") == str(dep.uid) and
              header.get("type") == ev and
              header.get("hook") == str(hid) and
              header.get("item") == str(item_id),
              "%s: the command runs as %s with PODIO_EVENT_TYPE, "
              "PODIO_HOOK_ID, PODIO_ITEM_ID" % (ev, dep.user), repr(header))
        names = set(filter(None, header.get("env", "").split(",")))
        ck.ok(names and names <= COMMAND_ENV,
              "%s: the command's environment holds nothing else (no CGI "
              "variable, no secret)" % ev,
              "unexpected: %s" % ", ".join(sorted(names - COMMAND_ENV)))
    return event


def check_answer_first(ck, dep, hooks):
    """The 200 goes out once the event is stored, before the item is
    fetched: with the item reply held at a gate, the answer comes back,
    and the callbacks run only after the release."""
    sim = dep.sim
    hid = hooks["item.update"]
    item_id = 4251
    sim.add_item(item_id, title="E2E item %d" % item_id)
    gid = sim.gate("/item/%d" % item_id, method="GET")
    res = sim.deliver_full(hid, [("type", "item.update"),
                                 ("hook_id", str(hid)),
                                 ("item_id", str(item_id)),
                                 ("item_revision_id", "1")])
    ck.is_(res["status"], 200, "item.update with its item GET held: 200")
    held = _wait(sim, lambda: sim.gate_waiting(gid) == 1,
                 "the item GET at the gate", 20 if res["status"] == 200
                 else 0)
    ck.ok(held and not _event_for(dep, "item.update", item_id),
          "the answer came while the item GET was held; no callback yet",
          "answer %r, held %r" % (res, held))
    sim.release(gid)
    event = _wait(sim, lambda: _event_for(dep, "item.update", item_id),
                  "item.update %d after release" % item_id,
                  20 if held else 0)
    ck.ok(event is not None and (event.get("item") or {}).get(
        "item_id") == item_id,
          "after release the callbacks get the event with the item",
          json.dumps(event)[:2000])


def check_secret_places(ck, dep, hooks, url):
    """The secret is accepted in the query string and in the body."""
    sim = dep.sim
    hid = hooks["item.create"]
    sep = "&" if "?" in url else "?"
    base = [("type", "item.create"), ("hook_id", str(hid))]
    res = sim.deliver_full(url=url + sep + form(("secret", dep.secret)),
                           params=base + [("item_id", "4211")],
                           query_to_body=False)
    ck.is_(res["status"], 200, "the secret in the query string: 200")
    ck.ok(_wait(sim, lambda: _event_for(dep, "item.create", 4211),
                "event 4211", 20 if res["status"] == 200 else 0),
          "the secret in the query string: the event reaches the callbacks")
    res = sim.deliver_full(url=url, params=base + [
        ("item_id", "4212"), ("secret", dep.secret)], query_to_body=False)
    ck.is_(res["status"], 200, "the secret in the body: 200")
    ck.ok(_wait(sim, lambda: _event_for(dep, "item.create", 4212),
                "event 4212", 20 if res["status"] == 200 else 0),
          "the secret in the body: the event reaches the callbacks")


def check_statuses(ck, dep, hooks, port, path, no_length=411):
    """Every answer of the handler, through the server, in its order.
    no_length: what a POST without Content-Length gets (a server that
    reads the body itself and always passes CONTENT_LENGTH, as mod_fcgid
    does, makes it an empty body: 403, for the missing secret)."""
    sim = dep.sim
    hid = hooks["item.create"]
    sec = ("secret", dep.secret)
    good = [("type", "item.create"), ("hook_id", str(hid)),
            ("item_id", "4221")]
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    before = len(sim.api_requests())

    st, h, body = http(port, "GET", path)
    ck.ok(st == 405 and "POST" in h.get("allow", ""),
          "GET: 405 with Allow: POST", "%d %r %r" % (st, h, body))
    ck.ok(h.get("content-type", "").startswith("text/plain"),
          "the 405 answer is text/plain", repr(h))
    st, h, body = http(port, "PUT", path, form(sec, *good), ctype)
    ck.ok(st == 405 and "POST" in h.get("allow", ""),
          "PUT: 405 with Allow: POST", "%d %r %r" % (st, h, body))

    st, h, body = http(port, "POST", path, b"", ctype, length=False)
    ck.is_(st, no_length, "POST without Content-Length: %d" % no_length)

    big = form(sec, *good) + "&pad=" + "x" * MAX_BODY
    st, h, body = http(port, "POST", path, big, ctype)
    ck.is_(st, 413, "a body over max_body: 413")

    st, h, body = http(port, "POST", path, json.dumps(dict(good)),
                       {"Content-Type": "application/json"})
    ck.is_(st, 415, "a JSON body: 415")

    st, h, body = http(port, "POST", path, form(*good) + "&x=%00", ctype)
    ck.is_(st, 400, "a NUL in the body (and no secret): 400, before 403")

    st, h, body = http(port, "POST", path, form(*good), ctype)
    ck.is_(st, 403, "no secret: 403")
    st, h, body = http(port, "POST", path,
                       form(("secret", dep.secret + "x"), *good), ctype)
    ck.is_(st, 403, "a wrong secret: 403")
    ck.ok(dep.secret not in body, "the 403 answer does not echo the secret",
          body)
    st, h, body = http(port, "POST", path, form(
        sec, ("type", "item.create"), ("hook_id", "999"), ("item_id", "1")),
        ctype)
    ck.is_(st, 403, "a hook id not in allowed_hooks: 403")

    st, h, body = http(port, "POST", path,
                       form(sec, ("hook_id", str(hid)), ("item_id", "1")),
                       ctype)
    ck.ok(st == 400 and "type" in body,
          "no type: 400 with the reason", "%d %r" % (st, body))
    ck.ok(h.get("content-type", "").startswith("text/plain") and
          body.count("\n") <= 1,
          "the 400 answer is one line of text/plain", "%r %r" % (h, body))
    st, h, body = http(port, "POST", path, form(
        sec, ("type", "item.create"), ("hook_id", "12x"), ("item_id", "1")),
        ctype)
    ck.is_(st, 400, "a malformed hook_id: 400")
    st, h, body = http(port, "POST", path, form(
        sec, ("type", "Item Create"), ("hook_id", str(hid))), ctype)
    ck.is_(st, 400, "a type outside [a-z0-9_.-]: 400")

    after = len(sim.api_requests())
    ck.is_(after, before, "no refused request reached the API")

    st, h, body = http(port, "POST", path, form(
        sec, ("type", "hook.verify"), ("hook_id", str(hid)),
        ("code", "not-the-code")), ctype)
    ck.ok(st == 502, "Podio refuses the validation: 502",
          "%d %r" % (st, body))

    st, h, body = http(port, "POST", path, form(sec, *good), ctype)
    ck.is_(st, 200, "a good delivery: 200")


def check_concurrent(ck, dep, hooks, n=20):
    """n deliveries at once: every one answered 200 and handled."""
    sim = dep.sim
    hid = hooks["item.create"]
    ids = [4300 + i for i in range(n)]
    for i in ids:
        sim.add_item(i, title="E2E item %d" % i)
    barrier = threading.Barrier(n)
    results = {}

    def one(item_id):
        barrier.wait()
        results[item_id] = sim.deliver(hid, {
            "type": "item.create", "hook_id": str(hid),
            "item_id": str(item_id)})
    threads = [threading.Thread(target=one, args=(i,)) for i in ids]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    all_ok = ck.ok(all(results.get(i) == 200 for i in ids),
                   "%d concurrent deliveries: all answered 200" % n,
                   repr(results))
    patience = 30 if all_ok else 0

    def all_logged():
        return all(_event_for(dep, "item.create", i) for i in ids)
    ck.ok(_wait(sim, all_logged, "%d events logged" % n, patience),
          "%d concurrent deliveries: each reaches the log" % n)

    def all_on():
        got = {e.get("item_id") for _h, e, _t in read_on_events(dep.on_dir)
               if e}
        return all(i in got for i in ids)
    ck.ok(_wait(sim, all_on, "%d on commands" % n, patience),
          "%d concurrent deliveries: each reaches the on command" % n)
    # Each item fetched once: by its own GET, or within one filter call
    # for the items of its app that were due together.
    fetched = []
    for q in sim.requests("/item/"):
        if q["method"] == "POST" and q["path"].endswith("/filter/"):
            try:
                fetched += json.loads(q["body"])["filters"]["item_id"]
            except (ValueError, KeyError, TypeError):
                fetched.append(q["path"])
        elif q["method"] == "GET":
            fetched.append(q["path"])
    wanted = [i for i in ids]
    got = [f if isinstance(f, int) else
           int(f.rsplit("/", 1)[-1]) if f.rsplit("/", 1)[-1].isdigit()
           else f for f in fetched]
    mine = sorted(g for g in got if g in wanted)
    ck.ok(mine == sorted(wanted),
          "%d concurrent deliveries: each item fetched once (GET or "
          "filter)" % n, repr(fetched))


def check_logs(ck, dep):
    """The event log parses, no secret or token leaks into any log, no
    sanitizer report, the files belong to the handler's user."""
    sim = dep.sim
    events, bad = read_events(dep.events_log)
    ck.ok(events and not bad, "every line of the event log is JSON",
          "%d bad lines: %r" % (len(bad), bad[:3]))
    tokens = [tk["access_token"] for tk in sim.tokens()] + \
        [tk["refresh_token"] for tk in sim.tokens()]
    texts = []
    for label, path in dep.logs + [("events", dep.events_log)]:
        try:
            with open(path, errors="replace") as f:
                texts.append((label, f.read()))
        except OSError:
            pass
    for _h, _e, text in read_on_events(dep.on_dir):
        texts.append(("on command", text))
    leaks = [label for label, text in texts
             if dep.secret in text or any(tk and tk in text for tk in tokens)]
    ck.ok(not leaks, "no secret or token in the logs and events",
          "found in: %s" % ", ".join(leaks))
    san = [label for label, text in texts
           if any(m in text for m in SANITIZER_MARKS)]
    ck.ok(not san, "no sanitizer report in the logs", ", ".join(san))
    for what, path, mode in (("token cache", dep.token_cache, 0o600),
                             ("event log", dep.events_log, None)):
        try:
            st = os.stat(path)
        except OSError as exc:
            ck.ok(False, "the %s exists" % what, str(exc))
            continue
        ck.ok(st.st_uid == dep.uid and
              (mode is None or (st.st_mode & 0o777) == mode),
              "the %s belongs to %s%s" % (
                  what, dep.user, " with mode %o" % mode if mode else ""),
              "uid %d mode %o" % (st.st_uid, st.st_mode & 0o777))


def check_one_token(ck, dep):
    toks = dep.sim.token_requests()
    ck.ok(len(toks) == 1,
          "one token request served the command line and every delivery",
          "%d token requests:\n%s" % (len(toks), "\n".join(
              "%s %s" % (q["method"], q["body"].split("&")[0])
              for q in toks)))


def run(tap, dep, port, path, prefix="", no_length=411):
    """Every check, through the server listening on port, the handler at
    path (e.g. "/podio-hook"); prefix starts the name of each check;
    no_length: see check_statuses().  Returns (the Checker, the hooks
    {event: id})."""
    ck = Checker(tap, dep, prefix)
    url = "http://127.0.0.1:%d%s" % (port, path)
    for i in (4201, 4202, 4221):
        dep.sim.add_item(i, title="E2E item %d" % i)
    dep.sim.delete_item(4203)
    hooks = check_hooks(ck, dep, url)
    if None in hooks.values():
        tap.bail_out("no hooks: nothing else can work")
    check_item_event(ck, dep, hooks, "item.create", 4201)
    check_item_event(ck, dep, hooks, "item.update", 4202,
                     extra=[("external_id", "ext-4202")])
    event = _event_for(dep, "item.update", 4202) or {}
    ck.is_(event.get("external_id"), "ext-4202",
           "item.update: external_id is passed on")
    check_item_event(ck, dep, hooks, "item.delete", 4203, fetched=False)
    check_answer_first(ck, dep, hooks)
    check_secret_places(ck, dep, hooks, url)
    check_statuses(ck, dep, hooks, port, path, no_length)
    check_concurrent(ck, dep, hooks)
    check_one_token(ck, dep)
    check_logs(ck, dep)
    return ck, hooks


def check_workers(ck, server):
    """The processes the web server started run as its unprivileged user
    (its master alone stays root).  A child the master has just forked
    is root until it drops its privileges: the processes are looked at
    again (up to 20 times, 0.1 s apart) until none is, so that only a
    child that stays root fails."""
    uid = pwd.getpwnam(servers.WEB_USER).pw_uid
    leader = server.proc.sid
    for _ in range(20):
        uids = {p: servers.proc_uid(p)
                for p in servers.pids_in_session(leader) if p != leader}
        uids = {p: u for p, u in uids.items() if u is not None}
        if uids and all(u == uid for u in uids.values()):
            break
        time.sleep(0.1)
    ck.ok(uids and all(u == uid for u in uids.values()),
          "%s's workers run as %s" % (server.name, servers.WEB_USER),
          "\n".join("%d uid %s %s" % (p, u, servers.proc_cmdline(p))
                    for p, u in sorted(uids.items())))


def stop_all(ck, *things):
    """Stops the servers and processes (in the order given) and checks
    that each stopped by itself, leaving nothing behind."""
    for thing in things:
        name = getattr(thing, "name", None) or type(thing).__name__
        killed = thing.stop()
        ck.ok(not killed, "%s stopped, nothing left running" % name,
              "had to kill:\n" + "\n".join(killed))
