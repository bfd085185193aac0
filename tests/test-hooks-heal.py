#!/usr/bin/env python3
"""`podio-webhook hooks heal` against the Podio API simulator and a running
`podio-webhook serve`, which the simulator reaches through an HTTP front
(fcgi.HttpFront, standing for the web server) to deliver hook.verify.

A declared hook (hook app 1234 = item.create, at hook_url) is created and
verified through the server, then set inactive: Podio sends it nothing.
`hooks heal` asks Podio to verify it again, the server answers that
hook.verify, the hook is active and receives events again.  Set inactive
again, with verification deliveries off: a second run within the minute
does not ask again; once the request is older than the minute (the state
file aged), the next run re-creates the hook (the new one first, then the
old one deleted), which the server verifies.  An undeclared hook of this
receiver that stays inactive is reported with the command that
re-creates it (exit 1), and not asked for again within the hour; a hook
with another URL is never touched.  Then `serve` with heal_interval
heals an inactive hook by itself as it starts, and logs it.

Last, the edits of the time a hook was inactive (Podio delivers them to
no one), over a spool of their own: with catch_up = yes, a run that
finds the hooks active notes it; the item.update hook is set inactive
and items edited; the next run asks for verification, and the one after
backfills since the last run that found all active: each item edited in
the gap reaches the callbacks once, marked "source": "backfill", an item
edited before it is not sent again, and a further run backfills nothing.
Without catch_up, the run that finds the hook active again names the
`backfill` command of the gap (exit 1), and that command recovers it.
`serve` with heal_interval catches up a gap that its first run ends.
"""

import json
import os
import re
import subprocess
import urllib.parse

import fcgi
import testlib

t = testlib.Tap()

SECRET = "heal-secret-4711-abcdef"
D = testlib.tmpdir()
CONF = os.path.join(D, "podio-webhook.conf")
EVENTS = os.path.join(D, "events.jsonl")
SOCK = os.path.join(D, "serve.sock")
SPOOL = os.path.join(D, "spool")
STATE = os.path.join(SPOOL, "hooks-heal.state")
GAP_CONF = os.path.join(D, "gap.conf")
GAP_EVENTS = os.path.join(D, "gap-events.jsonl")
OUTPUTS = []
WRITES = ("/hook/app/", "/hook/")


def pw(env, *args, conf=CONF):
    r = testlib.run([testlib.PODIO_WEBHOOK, "-c", conf] + list(args),
                    env=env)
    OUTPUTS.append((" ".join(args), r.stdout + r.stderr))
    return r


def show(r):
    return "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout,
                                                 r.stderr)


def hook(sim, hook_id):
    for h in sim.hooks():
        if h["hook_id"] == hook_id:
            return h
    return None


def writes(sim):
    """The API calls that change hooks (verify requests, creations,
    deletions), as (method, path)."""
    return [(r["method"], r["path"]) for r in sim.requests("/hook/")
            if r["method"] in ("POST", "DELETE") and
            not r["path"].endswith("/verify/validate")]


def event(hook_id, item_id):
    """The parameters of an item.create delivery of hook_id."""
    return {"type": "item.create", "hook_id": str(hook_id),
            "item_id": str(item_id), "item_revision_id": "1"}


def logged_items():
    out = []
    for line in testlib.read_text(EVENTS).splitlines():
        if line.strip():
            out.append(json.loads(line).get("item_id"))
    return out


def age_state(ms):
    """Makes every request of the state file ms older."""
    lines = []
    for line in testlib.read_text(STATE).splitlines():
        m = re.match(r"^(\d+) (\w+) (\d+)$", line)
        lines.append("%s %s %d" % (m.group(1), m.group(2),
                                   int(m.group(3)) - ms) if m else line)
    with open(STATE, "w") as f:
        f.write("\n".join(lines) + "\n")


def start_serve(env, log, conf=CONF):
    errf = open(log, "a")
    proc = testlib.popen([testlib.PODIO_WEBHOOK, "-c", conf, "serve",
                          "--listen", "unix:" + SOCK, "--workers", "2"],
                         env=env, stdout=subprocess.DEVNULL, stderr=errf)
    errf.close()
    testlib.wait_for(lambda: "serving FastCGI" in testlib.read_text(log)
                     or proc.poll() is not None, "the server to start")
    return proc


def main():
    with testlib.Sim() as sim:
        front = fcgi.HttpFront(SOCK)
        hook_url = front.url + "/podio"
        testlib.write_config(CONF, lines=[
            "log * = " + EVENTS, "hook app 1234 = item.create"],
            webhook_secret=SECRET, hook_url=hook_url, spool_dir=SPOOL,
            coalesce_window="0")
        env = testlib.base_env(sim)
        log = os.path.join(D, "serve.log")
        proc = start_serve(env, log)
        try:
            run(sim, env, hook_url)
        finally:
            testlib.stop_process(proc)
        OUTPUTS.append(("serve", testlib.read_text(log)))
        t.ok(proc.returncode == 0, "the server exits 0",
             testlib.read_text(log)[-2000:])
        heal_thread(sim, env)
        gap(sim, env, hook_url)
        front.stop()
    leaks = [label for label, text in OUTPUTS
             if SECRET in text or urllib.parse.quote(SECRET) in text]
    t.ok(not leaks, "no secret in any output", leaks)
    t.ok(not any(re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                           r"==\d+== ",
                           text) for _, text in OUTPUTS),
         "no memory error in any output")
    t.done()


def run(sim, env, hook_url):
    # A declared hook, verified through the server.
    r = pw(env, "hooks", "create", "app", "1234", hook_url, "item.create")
    hid = int(r.stdout.strip()) if r.returncode == 0 else 0
    testlib.wait_for(lambda: (hook(sim, hid) or {}).get("status") ==
                     "active", "the new hook's verification")
    t.ok(hid > 0, "a hook created and verified through the server",
         show(r))
    other = sim.add_hook("http://127.0.0.1:9/elsewhere", type="item.create")

    # Podio turns it inactive: nothing arrives any more.
    sim.set_hook_status(hid, "inactive")
    d = sim.deliver_full(hid, event(hid, 11), active_only=True)
    t.ok(d["status"] == 0 and 11 not in logged_items(),
         "an inactive hook receives nothing", d)

    sim.clear_requests()
    r = pw(env, "hooks", "heal")
    t.ok(r.returncode == 0 and r.stdout == "hook %d (app 1234, "
         "item.create): inactive: verification requested\n" % hid,
         "heal asks for verification, one line", show(r))
    t.is_(writes(sim), [("POST", "/hook/%d/verify/request" % hid)],
          "heal's one write: POST /hook/ID/verify/request (the other "
          "URL's inactive hook untouched)")
    testlib.wait_for(lambda: (hook(sim, hid) or {}).get("status") ==
                     "active", "the hook to be active again")
    t.ok(any(d["hook_id"] == hid and d["kind"] == "verify" and
             d["status"] == 200 for d in sim.deliveries()),
         "the server answered the new hook.verify 200", sim.deliveries())
    d = sim.deliver_full(hid, event(hid, 12), active_only=True)
    testlib.wait_for(lambda: 12 in logged_items(), "the event")
    t.ok(d["status"] == 200, "healed, the hook receives events again", d)
    t.ok(hook(sim, other["hook_id"])["status"] == "inactive",
         "the hook with another URL is left inactive")

    # Inactive again, and Podio's hook.verify does not get through.
    sim.configure(deliver_verify=False)
    sim.set_hook_status(hid, "inactive")
    sim.clear_requests()
    r = pw(env, "hooks", "heal")
    t.ok(r.returncode == 0 and "waiting for its hook.verify" in r.stdout,
         "a second run within the minute waits", show(r))
    t.is_(writes(sim), [], "a second run does not ask again")

    # A minute later, still inactive: re-created, the old one deleted.
    age_state(2 * 60 * 1000)
    sim.configure(deliver_verify=True)
    sim.clear_requests()
    r = pw(env, "hooks", "heal", "--json")
    try:
        lines = json.loads(r.stdout)
    except ValueError:
        lines = []
    new = int(lines[0].get("new_hook_id", 0)) if len(lines) == 1 else 0
    t.ok(r.returncode == 0 and len(lines) == 1 and
         lines[0].get("action") == "recreated" and
         lines[0].get("hook_id") == hid and new > 0,
         "still inactive at the next run: re-created (--json)", show(r))
    w = writes(sim)
    t.ok(w == [("POST", "/hook/app/1234/"), ("DELETE", "/hook/%d" % hid)],
         "re-created: the new hook first, then the old one deleted", w)
    testlib.wait_for(lambda: (hook(sim, new) or {}).get("status") ==
                     "active", "the re-created hook's verification")
    made = hook(sim, new)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(
        made["url"]).query)
    t.ok(hook(sim, hid) is None and made["type"] == "item.create" and
         made["url"].startswith(hook_url + "?") and
         query == {"podio_app": ["1234"], "secret": [SECRET]},
         "the new hook: hook_url with its app and the secret, verified",
         made)
    d = sim.deliver_full(new, event(new, 13), active_only=True)
    testlib.wait_for(lambda: 13 in logged_items(), "the event")
    t.ok(d["status"] == 200, "the re-created hook receives events", d)

    # An undeclared hook of this receiver that stays inactive.
    r = pw(env, "hooks", "create", "app", "1234", hook_url, "item.delete")
    und = int(r.stdout.strip()) if r.returncode == 0 else 0
    testlib.wait_for(lambda: (hook(sim, und) or {}).get("status") ==
                     "active", "the undeclared hook's verification")
    sim.configure(deliver_verify=False)
    sim.set_hook_status(und, "inactive")
    r = pw(env, "hooks", "heal")
    t.ok(r.returncode == 0 and "verification requested" in r.stdout,
         "an undeclared inactive hook: verification requested", show(r))
    age_state(2 * 60 * 1000)
    sim.clear_requests()
    r = pw(env, "hooks", "heal")
    fix = ("podio-webhook hooks create app 1234 '%s' item.delete && "
           "podio-webhook hooks delete %d" % (hook_url, und))
    t.ok(r.returncode == 1 and len(r.stdout.splitlines()) == 1 and
         r.stdout.startswith("hook %d (app 1234, item.delete): still "
                             "inactive" % und) and
         r.stdout.rstrip("\n").endswith(fix),
         "still inactive and undeclared: reported with the command that "
         "re-creates it, exit 1", show(r))
    r = pw(env, "hooks", "heal")
    t.ok(r.returncode == 1 and writes(sim) == [],
         "within the hour it is not asked for again, nor re-created",
         show(r) + "\n%s" % writes(sim))
    sim.configure(deliver_verify=True)
    pw(env, "hooks", "delete", str(und))


def heal_thread(sim, env):
    """serve with heal_interval heals by itself as it starts."""
    hooks = [h for h in sim.hooks() if h["type"] == "item.create" and
             "secret=" in h["url"]]
    hid = hooks[0]["hook_id"] if hooks else 0
    sim.set_hook_status(hid, "inactive")
    os.unlink(STATE)
    log = os.path.join(D, "serve-heal.log")
    proc = start_serve(dict(env, PODIO_HEAL_INTERVAL="1h"), log)
    try:
        testlib.wait_for(lambda: (hook(sim, hid) or {}).get("status") ==
                         "active", "the server's heal thread")
        testlib.wait_for(lambda: "hooks heal: hook %d" % hid in
                         testlib.read_text(log), "its log line")
    finally:
        testlib.stop_process(proc)
    text = testlib.read_text(log)
    OUTPUTS.append(("serve heal_interval", text))
    t.ok(proc.returncode == 0 and re.search(
        r"hooks heal: hook %d \(app 1234, item.create\): inactive: "
        r"verification requested" % hid, text),
         "serve with heal_interval: the inactive hook is healed as it "
         "starts, and logged", text[-3000:])


def gap_events():
    """The events the callbacks got in the gap part: (item_id, source)."""
    return [(e.get("item_id"), e.get("source"))
            for e in (json.loads(line) for line in
                      testlib.read_text(GAP_EVENTS).splitlines()
                      if line.strip())]


def spool_idle(env):
    """Whether the gap part's spool holds no event still to run."""
    r = pw(env, "spool", "status", "--json", conf=GAP_CONF)
    try:
        st = json.loads(r.stdout)
    except ValueError:
        return False
    return st["pending"] + st["retrying"] + st["in_flight"] == 0


def heal_json(env, *opts):
    r = pw(env, *(list(opts) + ["hooks", "heal", "--json"]), conf=GAP_CONF)
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        return r, None


def gap(sim, env, hook_url):
    """The edits of the time a hook was inactive (see the top)."""
    testlib.write_config(GAP_CONF, lines=["log * = " + GAP_EVENTS],
                         webhook_secret=SECRET, hook_url=hook_url,
                         spool_dir=os.path.join(D, "gap-spool"),
                         coalesce_window="0", catch_up="yes",
                         app_id="1234")
    log = os.path.join(D, "serve-gap.log")
    proc = start_serve(env, log, conf=GAP_CONF)
    try:
        upd = gap_run(sim, env, hook_url)
        # A gap that serve's heal thread ends as it starts.
        sim.set_hook_status(upd, "inactive")
        sim.edit_item(25)
        heal_json(env)
        testlib.wait_for(lambda: (hook(sim, upd) or {}).get("status") ==
                         "active", "the hook to be active again")
    finally:
        testlib.stop_process(proc)
        OUTPUTS.append(("serve gap", testlib.read_text(log)))
    t.ok(proc.returncode == 0, "the server of the gap part exits 0",
         testlib.read_text(log)[-2000:])
    log = os.path.join(D, "serve-gap-heal.log")
    proc = start_serve(dict(env, PODIO_HEAL_INTERVAL="1h"), log,
                       conf=GAP_CONF)
    try:
        testlib.wait_for(lambda: "hooks heal: app 1234:" in
                         testlib.read_text(log), "the heal thread's line")
        testlib.wait_for(lambda: (25, "backfill") in gap_events(),
                         "item 25's event")
        testlib.wait_for(lambda: spool_idle(env), "the spool to be idle")
    finally:
        testlib.stop_process(proc)
    text = testlib.read_text(log)
    OUTPUTS.append(("serve gap heal_interval", text))
    t.ok(proc.returncode == 0 and re.search(
        r"hooks heal: app 1234: a hook was inactive \(found so at [^)]*\): "
        r"caught up since ", text) and
         gap_events().count((25, "backfill")) == 1,
         "serve with heal_interval: the gap ended as it starts is caught up, "
         "logged, and its item reaches the callbacks once", text[-3000:])


def gap_run(sim, env, hook_url):
    r = pw(env, "hooks", "create", "app", "1234", hook_url, "item.update",
           conf=GAP_CONF)
    upd = int(r.stdout.strip()) if r.returncode == 0 else 0
    testlib.wait_for(lambda: (hook(sim, upd) or {}).get("status") ==
                     "active", "the item.update hook's verification")
    sim.edit_item(21)
    testlib.wait_for(lambda: (21, None) in gap_events(), "item 21's event")
    r, lines = heal_json(env)
    t.ok(r.returncode == 0 and lines == [],
         "catch_up: a run that finds every hook active says nothing",
         show(r))

    # Inactive: Podio sends the edits of that time to no one.
    sim.set_hook_status(upd, "inactive")
    sim.clear_deliveries()
    sim.edit_item(22)
    sim.edit_item(23)
    r, lines = heal_json(env)
    t.ok(r.returncode == 0 and [(x.get("hook_id"), x.get("action"))
                                for x in lines or []] ==
         [(upd, "verify_requested")],
         "the run that finds it inactive asks for verification", show(r))
    testlib.wait_for(lambda: (hook(sim, upd) or {}).get("status") ==
                     "active", "the hook to be active again")
    t.ok(not [d for d in sim.deliveries() if d["kind"] == "item.update"],
         "no delivery of the edits made while it was inactive",
         sim.deliveries())

    r, lines = heal_json(env)
    caught = lines[0] if lines and len(lines) == 1 else {}
    t.ok(r.returncode == 0 and caught.get("action") == "caught_up" and
         caught.get("ref_id") == 1234 and caught.get("queued") == 2 and
         "1 current" in caught.get("message", ""),
         "the run that finds it active again catches up: 2 queued, the "
         "item edited before the gap current", show(r))
    testlib.wait_for(lambda: len(gap_events()) >= 3, "the caught-up events")
    r, lines = heal_json(env)
    t.ok(r.returncode == 0 and lines == [],
         "a further run backfills nothing", show(r))
    testlib.wait_for(lambda: spool_idle(env), "the spool to be idle")
    t.is_(sorted(gap_events(), key=str),
          sorted([(21, None), (22, "backfill"), (23, "backfill")], key=str),
          "each item edited in the gap reached the callbacks once, "
          "\"source\": \"backfill\"; the one edited before it not again")

    # Without catch_up: the gap is reported with its backfill command.
    sim.set_hook_status(upd, "inactive")
    sim.edit_item(24)
    r, lines = heal_json(env, "-o", "catch_up=no")
    t.ok(r.returncode == 0 and len(lines or []) == 1,
         "catch_up off: inactive, verification requested", show(r))
    testlib.wait_for(lambda: (hook(sim, upd) or {}).get("status") ==
                     "active", "the hook to be active again")
    r = pw(env, "-o", "catch_up=no", "hooks", "heal", conf=GAP_CONF)
    m = re.search(r"^app 1234: a hook was inactive .*catch_up is off.*: "
                  r"(podio-webhook backfill --app 1234 --since "
                  r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ))$", r.stdout)
    t.ok(r.returncode == 1 and m and len(r.stdout.splitlines()) == 1,
         "the run that finds it active again names the backfill command "
         "of the gap, exit 1", show(r))
    cmd = m.group(1).split()[1:] if m else ["backfill"]
    b = pw(env, *cmd, conf=GAP_CONF)
    t.ok(b.returncode == 0 and re.search(r"^queued item 24 ", b.stdout,
                                         re.M) and
         not re.search(r"^queued item 2[123] ", b.stdout, re.M),
         "that command queues the item edited in the gap, and only it",
         show(b))
    r = pw(env, "-o", "catch_up=no", "hooks", "heal", conf=GAP_CONF)
    t.ok(r.returncode == 0 and r.stdout == "",
         "reported once: the next run says nothing", show(r))
    testlib.wait_for(lambda: (24, "backfill") in gap_events(),
                     "item 24's event")
    return upd


testlib.main(main)
