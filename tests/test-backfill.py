#!/usr/bin/env python3
"""Catching up with the changes Podio did not deliver, against the
simulator (items edited there without any delivery).

`backfill --app ID --since TIME` queues one item.update event marked
"source": "backfill" per item edited since TIME, and `spool drain` runs
them through the callbacks with the item; run again it skips the items
whose events wait in the spool, then those fetched at their current
revision, and queues an item edited since once more; --dry-run queues
nothing; small pages (the test seam PODIO_TEST_BACKFILL_PAGE) walk the
app with offsets and stop at the first item edited before TIME; a 420 on
the filter stops it with exit 1, and the pause it leaves stops the next
run before any call.

`serve` with catch_up = yes: a receiver stopped while items were edited
(no delivery reaches it) catches up every changed item once when it
starts again, and an event it already held (delivered and processed
before it stopped) is not run again."""

import json
import os
import subprocess
import urllib.parse

import fcgi
import testlib

t = testlib.Tap()
SLOW = 10 if testlib.wrapper() else 1
SECRET = "backfill-secret"
APP = 1234
D = testlib.tmpdir()
SPOOL = os.path.join(D, "spool")
EVENTS = os.path.join(D, "events.jsonl")
CONF = os.path.join(D, "handler.conf")
with open(CONF, "w") as f:
    f.write('webhook_secret = "%s"\n'
            "log * = %s\n" % (SECRET, EVENTS))


def pw(env, *args):
    return testlib.run([testlib.PODIO_WEBHOOK, "-c", CONF] + list(args),
                       env=env)


def logged():
    try:
        with open(EVENTS) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


def lines(r, action):
    """The item ids of the output lines of r for action."""
    return sorted(int(line[len(action) + 6:].split()[0])
                  for line in r.stdout.splitlines()
                  if line.startswith(action + " item "))


def filter_calls(sim):
    return [json.loads(r["body"]) for r in
            sim.requests("/item/app/%d/filter/" % APP)]


def pending(env):
    r = pw(env, "spool", "status", "--json")
    try:
        return json.loads(r.stdout)["pending"]
    except (ValueError, KeyError):
        return None


def cli(sim):
    env = testlib.base_env(sim, spool_dir=SPOOL)
    # One old item: the walk stops there; five edited now.
    sim.add_item(500, app_id=APP, last_edit_on="2024-01-01 00:00:00")
    for item in range(501, 506):
        sim.add_item(item, app_id=APP, revision=3)

    r = pw(env, "backfill", "--app", str(APP), "--since", "1h")
    t.ok(r.returncode == 0 and lines(r, "queued") == list(range(501, 506))
         and "5 items edited since" in r.stdout,
         "backfill queues one event per item edited since TIME", r)
    t.ok(pending(env) == 5, "five events wait in the spool")
    calls = filter_calls(sim)
    t.ok(len(calls) == 1 and calls[0] == {
        "sort_by": "last_edit_on", "sort_desc": True, "limit": 500,
        "offset": 0}, "one filter call, newest edit first", calls)

    r = pw(env, "backfill", "--app", str(APP), "--since", "1h")
    t.ok(r.returncode == 0 and lines(r, "pending") == list(range(501, 506))
         and not lines(r, "queued") and pending(env) == 5,
         "run again: the items with an event waiting are skipped", r)

    r = pw(env, "spool", "drain")
    evs = logged()
    t.ok(r.returncode == 0 and len(evs) == 5
         and all(e.get("source") == "backfill" and e["type"] == "item.update"
                 and e["hook_id"] == 0 and e["item"]["item_id"] == e["item_id"]
                 and "item_revision_id" not in e for e in evs)
         and sorted(e["item_id"] for e in evs) == list(range(501, 506)),
         "drain runs them: item.update, source backfill, the item fetched",
         (r, evs))

    r = pw(env, "backfill", "--app", str(APP), "--since", "1h")
    t.ok(r.returncode == 0 and lines(r, "current") == list(range(501, 506))
         and not lines(r, "queued"),
         "items fetched at their current revision are skipped", r)

    sim.edit_item(503, hook=False)
    r = pw(env, "backfill", "--app", str(APP), "--since", "1h", "--json")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = {}
    t.ok(r.returncode == 0 and j.get("queued") == 1 and j.get("current") == 4
         and j.get("complete") is True and j.get("stopped") is None
         and [i["item_id"] for i in j["items"]
              if i["action"] == "queued"] == [503]
         and {"item_id": 503, "revision": 4, "action": "queued"}.items()
         <= [i for i in j["items"] if i["item_id"] == 503][0].items(),
         "an item edited since its fetch is queued again (--json)", r)
    pw(env, "spool", "drain")
    t.ok(len(logged()) == 6 and logged()[-1]["item_id"] == 503
         and logged()[-1]["item"]["current_revision"]["revision"] == 4,
         "its event carries the new revision")

    sim.edit_item(504, hook=False)
    r = pw(env, "backfill", "--app", str(APP), "--since", "1h", "--dry-run")
    t.ok(r.returncode == 0 and lines(r, "would queue") == [504]
         and pending(env) == 0, "--dry-run lists and queues nothing", r)

    # Pages of two: 504 503 | 505 502 | 501 500: the third page ends it.
    sim.clear_requests()
    env2 = dict(env, PODIO_TEST_BACKFILL_PAGE="2")
    r = pw(env2, "backfill", "--app", str(APP), "--since", "1h", "--dry-run")
    offsets = [c["offset"] for c in filter_calls(sim)]
    t.ok(r.returncode == 0 and offsets == [0, 2, 4]
         and all(c["limit"] == 2 for c in filter_calls(sim))
         and lines(r, "would queue") == [504]
         and len(lines(r, "current")) == 4 and "500" not in r.stdout,
         "small pages walk the app by offset, stop at the older item",
         (r, offsets))

    r = pw(env, "backfill", "--app", str(APP), "--since",
           "2023-12-31T00:00:00Z", "--dry-run")
    t.ok(r.returncode == 0 and lines(r, "would queue") == [500, 504],
         "an ISO date and time reaches the older item too", r)

    sim.clear_requests()
    sim.fail("/item/app/%d/filter/" % APP, status=420, count=1)
    r = pw(env, "backfill", "--app", str(APP), "--since", "1h")
    t.ok(r.returncode == 1 and "rate limit" in r.stderr
         and "run it again" in r.stderr and pending(env) == 0,
         "a 420 on the filter stops it: exit 1, said so", r)
    r = pw(env, "backfill", "--app", str(APP), "--since", "1h")
    t.ok(r.returncode == 1 and "rate limit" in r.stderr
         and len(filter_calls(sim)) == 1,
         "the pause it left stops the next run before any call", r)
    pw(env, "spool", "resume")

    r = pw(env, "backfill", "--app", "x", "--since", "1h")
    r2 = pw(env, "backfill", "--app", str(APP), "--since", "yesterday")
    t.ok(r.returncode == 2 and r2.returncode == 2,
         "a bad app id or time: exit 2", (r, r2))


def serve(env, log):
    """Starts serve with env, its stderr appended to log; returns it
    once it serves."""
    sock = os.path.join(D, "fcgi.sock")
    errf = open(log, "a")
    srv = testlib.popen([testlib.PODIO_WEBHOOK, "-c", CONF, "serve",
                         "--listen", "unix:" + sock, "--workers", "2"],
                        env=env, stdout=subprocess.DEVNULL, stderr=errf)
    errf.close()
    testlib.wait_for(lambda: "serving FastCGI" in read(log)
                     or srv.poll() is not None, "the server")
    return srv, sock


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def catch_up(sim):
    """A receiver stopped while items were edited catches up once."""
    sim.reset()
    spool = os.path.join(D, "spool2")
    log = os.path.join(D, "server.log")
    open(log, "w").close()
    if os.path.exists(EVENTS):
        os.unlink(EVENTS)
    env = testlib.base_env(sim, spool_dir=spool, catch_up="yes",
                           coalesce_window="0")
    for item in (701, 702):
        sim.add_item(item, app_id=APP)

    srv, sock = serve(env, log)
    for item in (701, 702):
        body = urllib.parse.urlencode([
            ("type", "item.update"), ("hook_id", "1001"),
            ("item_id", str(item)), ("item_revision_id", str(item * 10)),
            ("secret", SECRET)])
        r = fcgi.delivery(sock, body, timeout=60 * SLOW)
        t.ok(r.status == 200, "item %d delivered while it runs" % item, r)
    testlib.wait_for(lambda: len(logged()) == 2, "the two delivered events")
    t.ok(testlib.stop_process(srv) == 0
         and "the spool knows no earlier run" in read(log),
         "the first start has nothing to catch up; stopped", read(log))

    # While it is down: 702 edited, 703 created; Podio delivers nothing.
    sim.edit_item(702, hook=False)
    sim.add_item(703, app_id=APP)
    srv, sock = serve(env, log)
    testlib.wait_for(lambda: "catch-up: app %d:" % APP in read(log),
                     "the catch-up")
    testlib.wait_for(lambda: len(logged()) >= 4, "the caught-up events")
    testlib.wait_for(lambda: pending(env) == 0, "an empty spool")
    evs = logged()
    caught = sorted(e["item_id"] for e in evs if e.get("source"))
    t.ok(caught == [702, 703] and len(evs) == 4
         and all(e["source"] == "backfill" for e in evs[2:])
         and [e["item"]["current_revision"]["revision"] for e in evs
              if e["item_id"] == 702] == [1, 2],
         "the restarted receiver catches up every changed item once, "
         "and no event it already held again", evs)
    t.ok("2 queued, 1 current" in read(log),
         "the catch-up logs what it did", read(log))
    t.ok(testlib.stop_process(srv) == 0, "stopped again")


def main():
    with testlib.Sim() as sim:
        cli(sim)
        catch_up(sim)
    t.done()


if __name__ == "__main__":
    testlib.main(main)
