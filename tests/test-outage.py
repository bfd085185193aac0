#!/usr/bin/env python3
"""An outage of the API is one shared state, not a backoff per event,
against the simulator through the FastCGI server (`serve`):

 - a blip of 3 failures (503): the event waits for the probes (at most
   3 failed calls, then the one that succeeds), and no event has a try
   or a failure counted;
 - a long outage (an hour of probe intervals passed quickly with the
   test-only PODIO_TEST_PROBE_MS) with 500 pending events of 50 items:
   at most 40 probe calls in all; after the simulator answers again,
   every event reaches the callbacks with at most 5 fetch calls;
 - 100 edits of one item across an outage cost one successful fetch;
   `spool status` shows the outage and `spool resume` ends it.

Checks are on what the simulator recorded and on counts, never on the
product's speed."""

import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse

import fcgi
import testlib

t = testlib.Tap()
SECRET = "outage-secret-4711"
PW = testlib.PODIO_WEBHOOK
D = testlib.tmpdir()
HOOK = 1001
# PODIO_TEST_PROBE_MS of the long outage: probe intervals 1000 times
# shorter than Podio's (2 s .. 2 min), so an hour lasts 3.6 s.
FAST = 2
HOUR_S = 3600.0 * FAST / 2000


def form(pairs):
    pairs = [(k, str(v)) for k, v in pairs] + [("secret", SECRET)]
    return urllib.parse.urlencode(pairs).encode()


def item_body(item_id, rev):
    return form([("type", "item.update"), ("hook_id", HOOK),
                 ("item_id", item_id), ("item_revision_id", rev)])


def show(reqs, most=20):
    lines = ["%s %s -> %s" % (r["method"], r["path"], r["status"])
             for r in reqs]
    if len(lines) > most:
        lines = lines[:most] + ["... %d more" % (len(lines) - most)]
    return "\n".join(lines)


def fetches(sim):
    """The item fetches recorded (GET of an item, filter calls)."""
    return [r for r in sim.requests("/item/")]


class Setup:
    """A spool, a log callback and `serve` on a unix socket."""

    def __init__(self, sim, name, probe_ms, **keys):
        self.dir = os.path.join(D, name)
        os.mkdir(self.dir)
        self.log = os.path.join(self.dir, "events.jsonl")
        self.conf = os.path.join(self.dir, "handler.conf")
        with open(self.conf, "w") as f:
            f.write('webhook_secret = "%s"\nlog * = %s\n' % (SECRET,
                                                              self.log))
        self.env = testlib.base_env(sim, spool_dir=os.path.join(
            self.dir, "spool"), **keys)
        self.env["PODIO_TEST_PROBE_MS"] = str(probe_ms)
        self.sock = os.path.join(self.dir, "serve.sock")
        self.errlog = os.path.join(self.dir, "serve.log")
        self.errf = open(self.errlog, "w")
        self.proc = testlib.popen(
            [PW, "-c", self.conf, "serve", "--listen", "unix:" + self.sock,
             "--workers", "4"], env=self.env, stdout=subprocess.DEVNULL,
            stderr=self.errf)
        testlib.wait_for(lambda: "serving FastCGI" in testlib.read_text(
            self.errlog) or self.proc.poll() is not None, "the server")

    def deliver(self, body):
        try:
            return fcgi.delivery(self.sock, body, timeout=120).status
        except Exception as exc:  # reported through the status
            t.diag("delivery failed: %r" % exc)
            return 0

    def deliver_many(self, bodies, threads=8):
        todo = list(range(len(bodies)))
        lock = threading.Lock()
        statuses = [None] * len(bodies)

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop(0)
                statuses[i] = self.deliver(bodies[i])
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        return statuses

    def logged(self):
        out = []
        for line in testlib.read_text(self.log).split("\n")[:-1]:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"unparsable": line})
        return out

    def pw(self, *args):
        return testlib.run([PW, "-c", self.conf] + list(args),
                           env=self.env, timeout=60)

    def json_of(self, *args):
        r = testlib.run([PW, "-c", self.conf] + list(args) + ["--json"],
                        env=self.env, wrap=False)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"error": r.stdout + r.stderr}

    def status(self):
        return self.json_of("spool", "status")

    def untried(self):
        """Whether no stored event has a try or failure counted (each
        pending, or in flight with a probe)."""
        evs = self.json_of("spool", "list")
        return isinstance(evs, list) and all(
            e.get("attempts") == 0 and e.get("failures") == 0 and
            e.get("state") in ("pending", "in flight") for e in evs), evs

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.errf.close()
        text = testlib.read_text(self.errlog)
        t.ok(rc == 0 and "Sanitizer" not in text and
             "runtime error:" not in text,
             "%s: the server stops cleanly" % os.path.basename(self.dir),
             "exit %r\n%s" % (rc, text[-3000:]))
        return text


with testlib.Sim() as sim:
    # ------------------------------------------------------------ blip
    s = Setup(sim, "blip", 100, coalesce_window="0")
    sim.fail("/item/", status=503, count=3)
    t.ok(s.deliver(item_body(501, 1)) == 200, "an item event: 200")
    testlib.wait_for(lambda: s.logged(), "the event after the blip")
    got = fetches(sim)
    t.ok([r["status"] for r in got] == [503, 503, 503, 200],
         "a blip of 3 failures: 3 failed calls (the fetch, 2 probes), "
         "then the probe that succeeds, nothing else", show(got))
    ev = s.logged()[0]
    t.ok(ev.get("item_id") == 501 and isinstance(ev.get("item"), dict),
         "the event reached the callbacks with its item", ev)
    text = s.stop()
    t.ok("not counted as a try" not in text and "failed, next in" not in
         text and "unavailable" in text and "answers again" in text,
         "the event got no delay nor try of its own; the outage's start "
         "and end are logged", text[-3000:])

    # ------------------------------------------------------------ long
    sim.reset()
    s = Setup(sim, "long", FAST, coalesce_window="0")
    # The app of the hook is learned first: later fetches are filters.
    s.deliver(item_body(1, 1))
    testlib.wait_for(lambda: s.logged(), "the first item")
    sim.clear_requests()
    sim.fail("/item/", status=503, count=None)
    items = list(range(2001, 2051))
    bodies = [item_body(i, rev) for rev in range(1, 11) for i in items]
    sts = s.deliver_many(bodies)
    t.ok(sts == [200] * 500, "500 events of 50 items: 200 each",
         [x for x in sts if x != 200][:10])
    testlib.wait_for(lambda: fetches(sim), "the first failed fetch")
    start = time.monotonic()
    st = s.status()
    t.ok(st.get("api_unavailable_since") and
         st.get("api_next_probe_s") is not None,
         "spool status --json: api_unavailable_since, api_next_probe_s",
         st)
    time.sleep(max(0.0, HOUR_S - (time.monotonic() - start)))
    ok, evs = s.untried()
    t.ok(ok and len(evs) == 500, "after an hour of outage the 500 events "
         "wait, none with a try or failure counted",
         json.dumps(evs)[:2000])
    probes = fetches(sim)
    t.diag("an hour of outage: %d calls" % len(probes))
    t.ok(2 <= len(probes) <= 40 and all(r["status"] == 503
                                        for r in probes),
         "an hour of outage costs %d calls (at most 40)" % len(probes),
         show(probes))
    t.ok(not s.logged()[1:], "no event ran during the outage")
    sim.clear_requests()
    sim.clear_fails()
    testlib.wait_for(lambda: len(s.logged()) >= 501, "the 500 events", 120)
    after = fetches(sim)
    t.diag("after the outage: %s" % show(after))
    t.ok(len(after) <= 5 and all(r["status"] == 200 for r in after),
         "after the outage the 500 events cost %d fetch calls (at most 5)"
         % len(after), show(after))
    evs = s.logged()[1:]
    want = sorted((i, rev) for rev in range(1, 11) for i in items)
    t.is_(sorted((e.get("item_id"), e.get("item_revision_id"))
                 for e in evs), want,
          "every event reached the log callback once")
    t.ok(all(isinstance(e.get("item"), dict) for e in evs),
         "each with its item")
    s.stop()

    # ------------------------------------------------------------ edits
    sim.reset()
    s = Setup(sim, "edits", 50, coalesce_window="0")
    sim.fail("/item/", status=503, count=None)
    t.ok(s.deliver(item_body(7001, 1)) == 200, "the first edit: 200")
    testlib.wait_for(lambda: fetches(sim), "the first failed fetch")
    sts = s.deliver_many([item_body(7001, rev) for rev in range(2, 101)])
    t.ok(sts == [200] * 99, "99 more edits of the item: 200 each")
    r = s.pw("spool", "status")
    t.ok(r.returncode == 0 and "unavailable since" in r.stdout and
         "next probe in" in r.stdout, "spool status: 'api: unavailable "
         "since TIME, next probe in N s'", r.stdout + r.stderr)
    r = s.pw("spool", "resume")
    t.ok(r.returncode == 0 and "outage" in r.stdout,
         "spool resume ends the outage: exit 0, names it",
         r.stdout + r.stderr)
    testlib.wait_for(lambda: s.status().get("api_unavailable_since"),
                     "the outage again (the simulator still fails)")
    ok, evs = s.untried()
    t.ok(ok and len(evs) == 100, "the 100 edits wait, none with a try "
         "counted", json.dumps(evs)[:2000])
    sim.clear_fails()
    testlib.wait_for(lambda: len(s.logged()) >= 100, "the 100 edits", 120)
    got = fetches(sim)
    good = [r for r in got if r["status"] == 200]
    t.ok(len(good) == 1, "100 edits of one item across an outage cost "
         "one fetch", show(got))
    t.is_(sorted(e.get("item_revision_id") for e in s.logged()),
          list(range(1, 101)), "every edit reached the callbacks once")
    t.ok(s.status().get("api_unavailable_since") is None,
         "spool status: no outage after the first success", s.status())
    s.stop()

t.done()
