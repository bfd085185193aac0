#!/usr/bin/env python3
"""Bulk fetches of any size and the shared API budget, against the
simulator through the FastCGI server (`serve`):

 - 2,000 item events for distinct items of one app, stored while the
   reserve holds the fetches, go as soon as a later answer shows calls
   left, and cost filter pages of at most 500 ids: at most 6 API calls
   (the hook.verify that shows the calls, 4 filter pages, one spare), no
   GET of an item, and every event reaches the callbacks once;
 - while the reserve holds them no API call is made at all;
 - a 420 naming `Retry-After: 99999999999` pauses the calls for at most
   an hour (`spool status`), and `spool resume` ends the pause: the
   fetch then happens.

Checks are on what the simulator recorded, never on the product's speed.
Under a wrapper (valgrind) the event count is scaled down; the limits
follow the number of pages."""

import json
import os

import servesetup
import testlib

t = testlib.Tap()
WRAPPED = bool(testlib.wrapper())
SECRET = "bulk-secret-4711"
PW = testlib.PODIO_WEBHOOK
D = testlib.tmpdir()
HOOK = 1001
PAGE = 500


def form(pairs):
    return servesetup.form(SECRET, pairs)


def item_body(item_id, rev):
    return form([("type", "item.update"), ("hook_id", HOOK),
                 ("item_id", item_id), ("item_revision_id", rev)])


def Setup(sim, name, **keys):
    return servesetup.ServeSetup(t, sim, os.path.join(D, name), SECRET,
                                 **keys)


with testlib.Sim() as sim:
    # ------------------------------------------------------------ bulk
    n = 2000 if not WRAPPED else 600
    pages = (n + PAGE - 1) // PAGE
    s = Setup(sim, "bulk", coalesce_window="0", rate_reserve=5)
    # The app of the hook is learned from a first item (one GET).
    s.deliver(item_body(1, 1))
    testlib.wait_for(lambda: len(s.logged()) == 1, "the first item")
    # The next call answers X-Rate-Limit-Remaining: 5 (= rate_reserve).
    sim.configure(rate_limit_limit=sim.stats()["api_calls"] + 1 + 5)
    s.deliver(item_body(2, 1))
    testlib.wait_for(lambda: len(s.logged()) == 2, "the second item")
    t.ok(s.status().get("api_remaining") == 5,
         "Podio said 5 calls are left: the reserve holds the fetches",
         s.status())
    sim.configure(rate_limit_limit=100000)
    sim.clear_requests()
    items = list(range(10001, 10001 + n))
    sts = s.deliver_many([item_body(i, 7) for i in items])
    t.ok(sts == [200] * n, "%d item events for distinct items: 200 each"
         % n, [x for x in sts if x != 200][:10])
    testlib.wait_for(lambda: s.status().get("pending") == n,
                     "the events pending")
    t.ok(not sim.requests() and len(s.logged()) == 2,
         "while the reserve holds them, no API call and no event ran",
         servesetup.show(sim.requests()))
    # A hook.verify answered now shows calls left: the events go.
    hook = sim.add_hook("http://127.0.0.1:9/podio", type="item.create")
    code = sim.verify_code(hook["hook_id"])
    st = s.deliver(form([("type", "hook.verify"),
                         ("hook_id", hook["hook_id"]), ("code", code)]))
    t.ok(st == 200, "hook.verify: 200", st)
    testlib.wait_for(lambda: len(s.logged()) >= n + 2 and
                     s.status().get("pending") == 0, "%d events in the log"
                     % n, 120)
    reqs = sim.requests()
    evs = [e for e in s.logged() if e.get("item_id", 0) > 10000]
    t.is_(sorted(e.get("item_id") for e in evs), items,
          "every event reached the log callback once")
    t.ok(all(isinstance(e.get("item"), dict) and
             e["item"].get("item_id") == e.get("item_id") and
             e.get("item_source") == "filter" for e in evs),
         'each event carries its own item, "item_source": "filter"')
    filt = [r for r in reqs if r["path"] == "/item/app/1234/filter/"]
    sizes = []
    for r in filt:
        try:
            sizes.append(len(json.loads(r["body"])["filters"]["item_id"]))
        except (ValueError, KeyError, TypeError):
            sizes.append(-1)
    t.diag("the calls: %s; filter pages of %r ids" % (
        ", ".join("%s %s" % (r["method"], r["path"]) for r in reqs), sizes))
    t.ok(len(reqs) <= pages + 2, "%d events cost %d API calls (at most %d:"
         " hook.verify, %d filter pages, one spare)" % (
             n, len(reqs), pages + 2, pages), servesetup.show(reqs))
    t.ok(filt and all(0 < k <= PAGE for k in sizes) and
         all(r["status"] == 200 for r in filt),
         "filter pages of at most %d ids, none refused" % PAGE,
         "%r\n%s" % (sizes, servesetup.show(filt)))
    t.ok(not [r for r in reqs if r["method"] == "GET" and
              r["path"].startswith("/item/")], "no GET of an item",
         servesetup.show(reqs))
    s.stop()

    # ------------------------------------------------------------ a
    # 420 naming a huge wait, and `spool resume`
    sim.reset()
    s = Setup(sim, "resume", coalesce_window="0")
    sim.fail("/item/", status=420, count=1, method="GET",
             headers={"Retry-After": "99999999999"})
    s.deliver(item_body(3001, 1))
    testlib.wait_for(lambda: sim.requests("/item/3001"), "the item fetch")
    testlib.wait_for(lambda: s.status().get("api_paused_s", 0) > 0,
                     "the pause")
    st = s.status()
    t.ok(3500 <= st.get("api_paused_s", 0) <= 3600,
         "Retry-After: 99999999999 pauses the API calls for at most an "
         "hour (%r s)" % st.get("api_paused_s"), st)
    t.ok(not s.logged() and len(sim.requests("/item/3001")) == 1,
         "during the pause the event waits, no second fetch",
         servesetup.show(sim.requests()))
    r = s.pw("spool", "resume")
    t.ok(r.returncode == 0 and "default" in r.stdout,
         "spool resume: exit 0, names what it resumed", r.stdout + r.stderr)
    testlib.wait_for(lambda: s.logged(), "the event after spool resume")
    gets = sim.requests("/item/3001")
    t.ok([g["status"] for g in gets] == [420, 200] and
         s.logged()[0].get("item_id") == 3001,
         "after spool resume the item is fetched and the event runs",
         servesetup.show(gets))
    t.ok(s.status().get("api_paused_s") == 0, "spool status: no pause",
         s.status())
    r = s.pw("spool", "resume")
    t.ok(r.returncode == 1 and "nothing" in r.stdout,
         "spool resume with nothing paused: exit 1", r.stdout + r.stderr)
    r = s.pw("spool", "resume", "--json")
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        doc = None
    t.ok(r.returncode == 1 and doc == {"resumed": []},
         "spool resume --json with nothing paused: {\"resumed\": []}",
         r.stdout + r.stderr)
    r = s.pw("spool", "resume", "now")
    t.ok(r.returncode == 2 and "Usage" in r.stderr,
         "spool resume with an argument: usage, exit 2", r.stderr)
    r = s.pw("spool", "resume", "--help")
    t.ok(r.returncode == 0 and "spool resume" in r.stdout,
         "spool resume --help: usage on stdout, exit 0", r.stdout)
    s.stop()

t.done()
