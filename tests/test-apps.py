#!/usr/bin/env python3
"""Several apps behind one receiver, against the simulator (each app
token sees only its own app's items, as with Podio) through the FastCGI
server (`serve`), with app_id/app_token for app 1234 and the line
`app 777 = tok-777`:

 - each app's events are fetched with its own app's token (the simulator
   records which token made each call);
 - a 420 for app 777's token pauses that app's fetches only: app 1234's
   events keep flowing, and app 777's run once the pause is over;
 - an event of a hook created without podio_app gets its app from the
   configured apps' hook lists (GET /hook/app/ID/);
 - an event whose hook is in no list is fetched with the other
   credential after a 403: it never ends as item_error not_found.

Checks are on what the simulator recorded, never on the product's
speed."""

import json
import os
import urllib.parse

import servesetup
import testlib

t = testlib.Tap()
SECRET = "apps-secret-4711"
D = testlib.tmpdir()
URL = "https://hooks.example.com/podio"


def body(hook, item_id, app=None):
    pairs = [("type", "item.update"), ("hook_id", hook),
             ("item_id", item_id), ("item_revision_id", 1)]
    if app is not None:
        pairs.append(("podio_app", app))
    return servesetup.form(SECRET, pairs)


def app_of_token(sim):
    """Access token -> the app it was issued for."""
    return {x["access_token"]: x["ref"].get("id") for x in sim.tokens()}


def fetched_by(sim, item_id):
    """[(status, app of the token)] of the GETs of item item_id."""
    apps = app_of_token(sim)
    out = []
    for r in sim.requests("/item/%d" % item_id, "GET"):
        if r["path"] != "/item/%d" % item_id:
            continue
        tok = r["headers"].get("authorization", "").split(" ")[-1]
        out.append((r["status"], apps.get(tok)))
    return out


def event_of(s, item_id):
    for e in s.logged():
        if e.get("item_id") == item_id:
            return e
    return None


with testlib.Sim(apps={"1234": "app-token", "777": "tok-777"},
                 app_scope=True, rate_limit_wait=2) as sim:
    for i in (7001, 7002, 7003, 7004):
        sim.add_item(i, app_id=777)
    h1234 = sim.add_hook(URL + "?podio_app=1234", ref_id=1234,
                         status="active")["hook_id"]
    h777 = sim.add_hook(URL + "?podio_app=777", ref_id=777,
                        status="active")["hook_id"]
    s = servesetup.ServeSetup(t, sim, os.path.join(D, "apps"), SECRET,
                              conf_extra="app 777 = tok-777\n",
                              coalesce_window="0")

    # ------------------------------------------------ command line
    r = s.pw("config")
    t.ok(r.returncode == 0 and "app 777 = (set)\n" in r.stdout and
         "tok-777" not in r.stdout + r.stderr,
         "config shows the app line, its token masked", r.stdout[-300:])
    r = s.pw("check")
    t.ok(r.returncode == 0 and "as app 1234 " in r.stdout and
         "as app 777 " in r.stdout, "check authenticates every "
         "credential, one line each", r.stdout + r.stderr)
    sim.clear_requests()
    r = s.pw("hooks", "list", "app", "777")
    t.ok(r.returncode == 0 and str(h777) in r.stdout,
         "hooks list app 777 with app 777's token (app_scope)",
         r.stdout + r.stderr)

    # ------------------------------------------------ own tokens
    t.ok(s.deliver(body(h777, 7001, 777)) == 200 and
         s.deliver(body(h1234, 5, 1234)) == 200, "two apps' events: 200")
    testlib.wait_for(lambda: event_of(s, 7001) and event_of(s, 5),
                     "the two events")
    t.is_(fetched_by(sim, 7001), [(200, 777)],
          "app 777's item is fetched once, with app 777's token")
    t.is_(fetched_by(sim, 5), [(200, 1234)],
          "app 1234's item is fetched once, with app 1234's token")
    e = event_of(s, 7001)
    t.ok(isinstance(e.get("item"), dict) and
         e["item"]["app"]["app_id"] == 777 and
         e.get("params", {}).get("podio_app") == "777",
         "the event carries its item and podio_app in its params", e)

    # ------------------------------------------------ 420 on one app
    sim.clear_requests()
    sim.configure(app_rate_limit_after={"777": 0})
    t.ok(s.deliver(body(h777, 7002, 777)) == 200, "app 777 event: 200")
    testlib.wait_for(lambda: fetched_by(sim, 7002), "app 777's fetch")
    # One after the other: each a GET of its own (two at once would be
    # one filter call).
    for i in (6, 7):
        t.ok(s.deliver(body(h1234, i, 1234)) == 200, "app 1234 event: 200")
        testlib.wait_for(lambda: event_of(s, i), "app 1234's event %d "
                         "during app 777's pause" % i)
    # (Its pause is 2 s: a try after it meets the 420 again.)
    got = fetched_by(sim, 7002)
    t.ok(event_of(s, 7002) is None and got and
         all(x == (420, 777) for x in got),
         "app 777's event waits after its 420", got)
    t.ok(fetched_by(sim, 6) == [(200, 1234)] and
         fetched_by(sim, 7) == [(200, 1234)],
         "app 1234's events went on with its own token",
         (fetched_by(sim, 6), fetched_by(sim, 7)))
    sim.configure(app_rate_limit_after={})
    testlib.wait_for(lambda: event_of(s, 7002), "app 777's event after "
                     "its pause")
    e = event_of(s, 7002)
    t.ok(isinstance(e.get("item"), dict) and
         fetched_by(sim, 7002)[-1] == (200, 777),
         "after the pause app 777's event ran with its item", e)

    # spool status shows each credential's API state: the first one's as
    # before, an app line's in "credentials".
    r = s.pw("spool", "status", "--json")
    try:
        st = json.loads(r.stdout)
    except ValueError:
        st = {}
    creds = st.get("credentials") or []
    t.ok(r.returncode == 0 and "api_remaining" in st and
         [c.get("credential") for c in creds] == ["app:777"] and
         all(k in creds[0] for k in ("api_paused_s", "api_remaining",
                                     "filter_paused_s",
                                     "api_unavailable_since")),
         "spool status --json: the app line's credential has its own API "
         "state", r.stdout + r.stderr)
    r = s.pw("spool", "status")
    t.ok(r.returncode == 0 and "\napp:777\n" in r.stdout,
         "spool status: a block for the app line's credential", r.stdout)

    # ------------------------------------------------ no podio_app
    h2 = sim.add_hook(URL, ref_id=777, status="active")["hook_id"]
    sim.clear_requests()
    t.ok(s.deliver(body(h2, 7003)) == 200, "an event of a hook without "
         "podio_app: 200")
    testlib.wait_for(lambda: event_of(s, 7003), "its event")
    lists = [r["path"] for r in sim.requests("/hook/app/", "GET")]
    t.ok("/hook/app/777/" in lists and "/hook/app/1234/" in lists,
         "the configured apps' hooks were listed", lists)
    t.is_(fetched_by(sim, 7003), [(200, 777)],
          "its item is fetched with the token of the hook's app, once")

    # ------------------------------------------------ unknown hook
    sim.clear_requests()
    t.ok(s.deliver(body(4242, 7004)) == 200, "an event of a hook in no "
         "list: 200")
    testlib.wait_for(lambda: event_of(s, 7004), "its event")
    e = event_of(s, 7004)
    t.is_(fetched_by(sim, 7004), [(403, 1234), (200, 777)],
          "a 403 with the first credential is tried with the other")
    t.ok(isinstance(e.get("item"), dict) and "item_error" not in e,
         "the event has its item, no item_error", e)
    cache = s.env["PODIO_TOKEN_CACHE"] + ".app-777"
    st = os.stat(cache) if os.path.exists(cache) else None
    t.ok(st is not None and st.st_mode & 0o777 == 0o600 and
         "app:777" in testlib.read_text(cache),
         "app 777's tokens are cached in a file of their own (mode 0600)",
         cache)
    text = s.stop()
    t.ok("tok-777" not in text and "app-token" not in text,
         "no app token in the server's log")

t.done()
