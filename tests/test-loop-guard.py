#!/usr/bin/env python3
"""The loop guard, end to end against the simulator: an `on` command
that writes back to the item (PUT /item/{id}, as a callback would) makes
the simulator fire item.update again, through a small HTTP front that
passes Podio's POSTs to `serve` (FastCGI), as a web server would.

 - app authentication, skip_self = no: the event of the user's edit
   carries "by_self": false, the event of the write-back "by_self": true,
   and the callbacks run for both;
 - "by_self" is false for an event whose revision is no longer the
   item's current one (a user edited after the write-back) and for a
   revision another app made;
 - the password flow (the user known from the token answer's "ref"),
   skip_self = yes: the write-back's event is settled without running
   any callback (the log rule included), in one log line; the callbacks
   ran once, for the user's edit.

No check is about speed: each step waits for what it needs."""

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse

import fcgi
import testlib

t = testlib.Tap()
SLOW = 10 if testlib.wrapper() else 1
SECRET = "loop-guard-secret-5150"
PW = testlib.PODIO_WEBHOOK
D = testlib.tmpdir()

# The callback: records what it saw, and writes the item back once (the
# title "Original" becomes "Written back") with the credential named by
# its arguments, as a user's script would.
WRITEBACK = os.path.join(D, "writeback.py")
with open(WRITEBACK, "w") as f:
    f.write('''import json, sys, urllib.parse, urllib.request
api, runs, flow = sys.argv[1:4]
ev = json.load(sys.stdin)
with open(runs, "a") as f:
    f.write(json.dumps({"item_id": ev.get("item_id"),
                        "item_revision_id": ev.get("item_revision_id"),
                        "by_self": ev.get("by_self")}) + "\\n")
item = ev.get("item") or {}
if item.get("title") != "Original":
    sys.exit(0)
form = {"client_id": "test-client", "client_secret": "test-secret"}
if flow == "app":
    form.update(grant_type="app", app_id="1234", app_token="app-token")
else:
    form.update(grant_type="password", username="user@example.com",
                password="pw")
req = urllib.request.Request(api + "/oauth/token",
                             urllib.parse.urlencode(form).encode())
with urllib.request.urlopen(req, timeout=30) as r:
    token = json.load(r)["access_token"]
req = urllib.request.Request(
    "%s/item/%d" % (api, ev["item_id"]), method="PUT",
    data=json.dumps({"title": "Written back"}).encode(),
    headers={"Content-Type": "application/json",
             "Authorization": "OAuth2 " + token})
urllib.request.urlopen(req, timeout=30).read()
''')


def no_memory_errors(text):
    return not re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                         r"==\d+== (Invalid|Conditional|Syscall|.*lost)",
                         text)


class Front:
    """An HTTP server on loopback that passes each POST to the FastCGI
    socket `sock` and answers with its status: the web server in front
    of `serve`."""

    def __init__(self):
        self.sock = None
        owner = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                try:
                    st = fcgi.delivery(owner.sock, body,
                                       timeout=60 * SLOW).status
                except Exception:  # the sender only sees a 502
                    st = 502
                self.send_response(st)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/podio" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Receiver:
    """`podio-webhook serve` with a configuration of its own: the
    write-back callback, a log of every event, the flow's credentials."""

    def __init__(self, sim, name, flow, skip_self):
        self.dir = os.path.join(D, name)
        os.mkdir(self.dir)
        self.events = os.path.join(self.dir, "events.jsonl")
        self.runs = os.path.join(self.dir, "runs.jsonl")
        self.conf = testlib.write_config(
            os.path.join(self.dir, "handler.conf"),
            ["on item.update = %s %s %s %s %s" % (
                sys.executable, WRITEBACK, sim.url, self.runs, flow),
             "log item.* = %s" % self.events],
            webhook_secret=SECRET, skip_self=skip_self)
        creds = {}
        if flow != "app":
            creds = dict(testlib.PASSWORD_CREDS, app_id=None,
                         app_token=None)
        self.env = testlib.base_env(
            sim, spool_dir=os.path.join(self.dir, "spool"),
            coalesce_window="100ms", **creds)
        self.sock = os.path.join(self.dir, "fcgi.sock")
        self.logfile = os.path.join(self.dir, "server.log")
        self.errf = open(self.logfile, "w")
        self.proc = testlib.popen(
            [PW, "-c", self.conf, "serve", "--listen", "unix:" + self.sock,
             "--workers", "2"], env=self.env, stdout=subprocess.DEVNULL,
            stderr=self.errf)
        testlib.wait_for(lambda: "serving FastCGI" in self.log() or
                         self.proc.poll() is not None, "the server " + name)

    def log(self):
        return testlib.read_text(self.logfile)

    def logged(self, item_id):
        out = []
        for line in testlib.read_text(self.events).splitlines():
            ev = json.loads(line)
            if ev.get("item_id") == item_id:
                out.append(ev)
        return out

    def ran(self, item_id):
        return [r for r in (json.loads(line) for line in
                            testlib.read_text(self.runs).splitlines())
                if r["item_id"] == item_id]

    def idle(self):
        r = testlib.run([PW, "-c", self.conf, "spool", "status", "--json"],
                        env=self.env, wrap=False)
        try:
            st = json.loads(r.stdout)
        except ValueError:
            return False
        return st["pending"] == 0 and st["retrying"] == 0 and \
            st["in_flight"] == 0

    def deliver(self, item_id, rev):
        body = urllib.parse.urlencode([
            ("item_id", item_id), ("item_revision_id", rev),
            ("type", "item.update"), ("hook_id", 1), ("secret", SECRET)])
        return fcgi.delivery(self.sock, body, timeout=60 * SLOW).status

    def stop(self, name):
        rc = testlib.stop_process(self.proc)
        self.errf.close()
        t.ok(rc == 0 and no_memory_errors(self.log()),
             "%s: the server stops cleanly (exit 0, no memory error)" % name,
             "exit %r\n%s" % (rc, self.log()[-3000:]))


def brief(events):
    return [(e.get("item_revision_id"), e.get("by_self")) for e in events]


with testlib.Sim() as sim:
    front = Front()
    sim.add_hook(front.url + "?secret=" + SECRET, type="item.update",
                 status="active")

    # ------------------------------------------ app flow, skip_self = no
    rx = Receiver(sim, "app", "app", "no")
    front.sock = rx.sock
    sim.add_item(901, title="Original")
    edit = sim.edit_item(901, title="Original")
    testlib.wait_for(lambda: len(rx.logged(901)) >= 2 and rx.idle(),
                     "the edit's event and the write-back's")
    evs = rx.logged(901)
    item = (evs[-1].get("item") or {}) if evs else {}
    rev = item.get("current_revision") or {}
    t.ok(brief(evs) == [(edit["item_revision_id"], False),
                        (rev.get("item_revision_id"), True)] and
         rev.get("created_by", {}).get("type") == "app" and
         rev.get("created_by", {}).get("id") == 1234 and
         item.get("title") == "Written back",
         "the user's edit: by_self false; the callback's write-back, "
         "fired again by Podio: by_self true (made by app 1234)",
         brief(evs))
    t.ok(list(evs[0])[-1] == "by_self" if evs else False,
         '"by_self" is the event\'s last member', evs[:1])
    runs = rx.ran(901)
    t.ok([r["by_self"] for r in runs] == [False, True] and
         len([d for d in sim.deliveries() if d["kind"] == "item.update"])
         == 2,
         "skip_self = no: the callbacks ran for both events (the second "
         "run wrote nothing)", runs)

    # An event whose revision is no longer the current one: the app
    # wrote (no hook fired), then a user edited; the event of the app's
    # revision comes late.
    sim.add_item(902, title="Other")
    r = sim.control("POST", "items/902/edit", {
        "by": {"type": "app", "id": 1234}, "hook": False})
    late = sim.edit_item(902, hook=False)
    st1 = rx.deliver(902, r["item_revision_id"])
    st2 = rx.deliver(902, late["item_revision_id"])
    testlib.wait_for(lambda: len(rx.logged(902)) >= 2 and rx.idle(),
                     "the events of item 902")
    t.ok(st1 == 200 and st2 == 200 and brief(rx.logged(902)) ==
         [(r["item_revision_id"], False), (late["item_revision_id"], False)],
         "by_self false for the app's revision once a user's came after "
         "it, and for the user's", brief(rx.logged(902)))
    # A revision made by another app.
    other = sim.edit_item(902, by={"type": "app", "id": 4321}, hook=False)
    rx.deliver(902, other["item_revision_id"])
    testlib.wait_for(lambda: len(rx.logged(902)) >= 3 and rx.idle(),
                     "the event of another app's revision")
    t.ok(brief(rx.logged(902))[2:] == [(other["item_revision_id"], False)],
         "by_self false for a revision another app made",
         brief(rx.logged(902)))
    rx.stop("app flow")

    # ------------------------------------ password flow, skip_self = yes
    rx = Receiver(sim, "password", "password", "yes")
    front.sock = rx.sock
    sim.clear_deliveries()
    sim.add_item(903, title="Original")
    edit = sim.edit_item(903, by={"type": "user", "id": 9},
                         title="Original")
    skip_re = re.compile(r"event id=(\d+) type=item\.update hook_id=\d+ "
                         r"item_id=903: done: [^\n]*by_self[^\n]*skip_self")
    testlib.wait_for(lambda: skip_re.search(rx.log()) and rx.idle(),
                     "the write-back's event to be settled")
    runs = rx.ran(903)
    dl = [d for d in sim.deliveries() if d["kind"] == "item.update"]
    ids = skip_re.findall(rx.log())
    t.ok([(r["item_revision_id"], r["by_self"]) for r in runs] ==
         [(edit["item_revision_id"], False)] and len(dl) == 2 and
         all(d["status"] == 200 for d in dl),
         "password flow: the edit by user 9 ran the callbacks; the "
         "write-back by this user (5678, from the token answer) fired "
         "item.update, which ran none", (runs, dl))
    t.ok(len(ids) == 1 and len(re.findall(r"event id=%s " % ids[0],
                                          rx.log())) == 1 and
         [e["item_revision_id"] for e in rx.logged(903)] ==
         [edit["item_revision_id"]],
         "skip_self = yes: the settled event is logged once, at info, "
         "and reaches no callback (not even the log)", rx.log()[-2000:])
    rx.stop("password flow")
    front.close()

t.done()
