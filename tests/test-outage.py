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
import time

import servesetup
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
    return servesetup.form(SECRET, pairs)


def item_body(item_id, rev):
    return form([("type", "item.update"), ("hook_id", HOOK),
                 ("item_id", item_id), ("item_revision_id", rev)])


def fetches(sim):
    """The item fetches recorded (GET of an item, filter calls)."""
    return [r for r in sim.requests("/item/")]


class Setup(servesetup.ServeSetup):
    """A server whose first probe interval is probe_ms
    (PODIO_TEST_PROBE_MS)."""

    def __init__(self, sim, name, probe_ms, **keys):
        super().__init__(t, sim, os.path.join(D, name), SECRET,
                         extra_env={"PODIO_TEST_PROBE_MS": str(probe_ms)},
                         **keys)

    def untried(self):
        """Whether no stored event has a try or failure counted (each
        pending, or in flight with a probe)."""
        evs = self.json_of("spool", "list")
        return isinstance(evs, list) and all(
            e.get("attempts") == 0 and e.get("failures") == 0 and
            e.get("state") in ("pending", "in flight") for e in evs), evs


with testlib.Sim() as sim:
    # ------------------------------------------------------------ blip
    s = Setup(sim, "blip", 100, coalesce_window="0")
    sim.fail("/item/", status=503, count=3)
    t.ok(s.deliver(item_body(501, 1)) == 200, "an item event: 200")
    testlib.wait_for(lambda: s.logged(), "the event after the blip")
    got = fetches(sim)
    t.ok([r["status"] for r in got] == [503, 503, 503, 200],
         "a blip of 3 failures: 3 failed calls (the fetch, 2 probes), "
         "then the probe that succeeds, nothing else", servesetup.show(got))
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
         servesetup.show(probes))
    t.ok(not s.logged()[1:], "no event ran during the outage")
    sim.clear_requests()
    sim.clear_fails()
    testlib.wait_for(lambda: len(s.logged()) >= 501, "the 500 events", 120)
    after = fetches(sim)
    t.diag("after the outage: %s" % servesetup.show(after))
    t.ok(len(after) <= 5 and all(r["status"] == 200 for r in after),
         "after the outage the 500 events cost %d fetch calls (at most 5)"
         % len(after), servesetup.show(after))
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
         "one fetch", servesetup.show(got))
    t.is_(sorted(e.get("item_revision_id") for e in s.logged()),
          list(range(1, 101)), "every edit reached the callbacks once")
    t.ok(s.status().get("api_unavailable_since") is None,
         "spool status: no outage after the first success", s.status())
    s.stop()

t.done()
