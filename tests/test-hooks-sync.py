#!/usr/bin/env python3
"""`podio-webhook hooks sync [--dry-run] [--json]` against the Podio API
simulator, which records every call.

Hook lines declare item.create and item.update on app 1234 and
comment.create on app 55, at hook_url.  On Podio: the declared
item.create hook (kept), a duplicate of it (deleted), an item.update hook
at hook_url without the secret (replaced: the new one created, then the
old one deleted), an undeclared item.delete hook at hook_url (deleted)
and a hook with another URL (never touched).  --dry-run changes nothing;
the run makes the plan true; a second run's plan is all "keep" and makes
no write call.  A plan that would put an 11th hook of a type on an app,
or create hooks while allowed_hooks is set, is refused before any call;
with allowed_hooks set, a plan of deletions alone goes on.  Bad hook
lines are refused by every command.
"""

import json
import os
import re
import urllib.parse

import testlib

t = testlib.Tap()

SECRET = "sync-secret-0815-abcdef"
HOOK_URL = "https://hooks.example.com/podio"
OTHER_URL = "https://elsewhere.example.com/hook"
D = testlib.tmpdir()
OUTPUTS = []


def conf(name, lines, **keys):
    path = os.path.join(D, name)
    keys.setdefault("webhook_secret", SECRET)
    keys.setdefault("hook_url", HOOK_URL)
    return testlib.write_config(path, lines=lines, **keys)


DECLARED = ["hook app 1234 = item.create item.update",
            "hook app 55 = comment.create"]
CONF = conf("sync.conf", DECLARED)


def pw(env, path, *args):
    r = testlib.run([testlib.PODIO_WEBHOOK, "-c", path] + list(args),
                    env=env)
    OUTPUTS.append((" ".join(args), r.stdout + r.stderr))
    return r


def show(r):
    return "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout,
                                                 r.stderr)


def writes(sim):
    """The calls that change hooks, as (method, path)."""
    return [(r["method"], r["path"]) for r in sim.requests("/hook/")
            if r["method"] in ("POST", "DELETE")]


def by_id(sim):
    return {h["hook_id"]: h for h in sim.hooks()}


def secret_of(url):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return q.get("secret")


def main():
    with testlib.Sim(deliver_verify=False) as sim:
        env = testlib.base_env(sim)
        mine = HOOK_URL + "?secret=" + SECRET
        keep = sim.add_hook(mine, type="item.create", status="active")
        dup = sim.add_hook(mine, type="item.create")
        old = sim.add_hook(HOOK_URL, type="item.update", status="active")
        gone = sim.add_hook(mine, type="item.delete", status="active")
        other = sim.add_hook(OTHER_URL, type="item.delete")
        other2 = sim.add_hook(OTHER_URL + "?secret=x", type="item.update")
        before = by_id(sim)

        sim.clear_requests()
        r = pw(env, CONF, "hooks", "sync", "--dry-run")
        plan = r.stdout.splitlines()
        want = [
            "keep   app 1234 item.create hook %d" % keep["hook_id"],
            "delete app 1234 item.create hook %d: a duplicate of hook %d"
            % (dup["hook_id"], keep["hook_id"]),
            "create app 1234 item.update: replaces hook %d (its URL has "
            "no secret)" % old["hook_id"],
            "delete app 1234 item.update hook %d: replaced: its URL has "
            "no secret" % old["hook_id"],
            "delete app 1234 item.delete hook %d: not declared"
            % gone["hook_id"],
            "create app 55 comment.create",
        ]
        t.ok(r.returncode == 0 and plan == want,
             "--dry-run prints the plan, one line per step", show(r))
        t.ok(writes(sim) == [] and by_id(sim) == before,
             "--dry-run changes nothing", writes(sim))

        r = pw(env, CONF, "hooks", "sync")
        after = by_id(sim)
        made = [h for i, h in after.items() if i not in before]
        ids = {(h["ref_id"], h["type"]): h["hook_id"] for h in made}
        changes = [
            "deleted hook %d (app 1234, item.create)" % dup["hook_id"],
            "deleted hook %d (app 1234, item.delete)" % gone["hook_id"],
            "created hook %d (app 1234, item.update)" % ids.get(
                (1234, "item.update"), 0),
            "created hook %d (app 55, comment.create)" % ids.get(
                (55, "comment.create"), 0),
            "deleted hook %d (app 1234, item.update)" % old["hook_id"],
        ]
        t.ok(r.returncode == 0 and r.stdout.splitlines() == want + changes,
             "sync prints the plan, then one line per change", show(r))
        w = writes(sim)
        t.ok(len(w) == 5 and w[0] == ("DELETE", "/hook/%d" %
                                      dup["hook_id"]) and
             w[1] == ("DELETE", "/hook/%d" % gone["hook_id"]) and
             w[2] == ("POST", "/hook/app/1234/") and
             w[3] == ("POST", "/hook/app/55/") and
             w[4] == ("DELETE", "/hook/%d" % old["hook_id"]),
             "deletions first, then creations, then the replaced hook", w)
        t.ok(sorted((h["ref_id"], h["type"]) for h in made) ==
             [(55, "comment.create"), (1234, "item.update")] and
             all(h["url"].startswith(HOOK_URL + "?") and
                 secret_of(h["url"]) == [SECRET] for h in made),
             "the created hooks: hook_url with the secret", made)
        t.ok(keep["hook_id"] in after and dup["hook_id"] not in after and
             old["hook_id"] not in after and gone["hook_id"] not in after,
             "kept the declared hook, deleted the duplicate, the replaced "
             "and the undeclared one", sorted(after))
        t.ok(after.get(other["hook_id"]) == before[other["hook_id"]] and
             after.get(other2["hook_id"]) == before[other2["hook_id"]],
             "hooks with other URLs untouched")

        # A second run: all keep, no write.
        sim.clear_requests()
        r = pw(env, CONF, "hooks", "sync")
        lines = r.stdout.splitlines()
        t.ok(r.returncode == 0 and len(lines) == 3 and
             all(ln.startswith("keep ") for ln in lines),
             "a second run's plan is all keep", show(r))
        t.is_(writes(sim), [], "a second run makes no write call")
        t.ok(by_id(sim) == after, "a second run changes nothing")
        r = pw(env, CONF, "hooks", "sync", "--json")
        try:
            steps = json.loads(r.stdout)
        except ValueError:
            steps = []
        t.ok(r.returncode == 0 and len(steps) == 3 and
             all(s["action"] == "keep" and s["result"] == "kept" and
                 s["hook_id"] in after for s in steps),
             "--json: one object per step", show(r))

        # An 11th hook of a type on an app: refused before any call.
        for i in range(10):
            sim.add_hook("%s/%d" % (OTHER_URL, i), ref_id=77,
                         type="item.delete")
        full = conf("full.conf", DECLARED + [
            "hook app 77 = item.delete", "hook app 1234 = file.change"])
        snapshot = by_id(sim)
        sim.clear_requests()
        r = pw(env, full, "hooks", "sync")
        t.ok(r.returncode == 1 and re.search(
            r"app 77 would have 11 item.delete hooks, and Podio allows 10",
            r.stderr) and "nothing changed" in r.stderr,
             "a plan past 10 hooks of a type: refused, exit 1", show(r))
        t.ok(writes(sim) == [] and by_id(sim) == snapshot,
             "the refused plan made no call (not even its other "
             "creation)", writes(sim))

        # allowed_hooks: no creation, deletions alone go on.
        allowed = ",".join(str(i) for i in sorted(after))
        more = conf("allowed.conf", DECLARED + [
            "hook app 1234 = file.change"], allowed_hooks=allowed)
        sim.clear_requests()
        r = pw(env, more, "hooks", "sync")
        t.ok(r.returncode == 2 and "allowed_hooks is set" in r.stderr and
             "nothing changed" in r.stderr and
             "create app 1234 file.change" in r.stdout,
             "with allowed_hooks, a plan that creates: refused, exit 2",
             show(r))
        t.ok(writes(sim) == [], "the refused plan made no call",
             writes(sim))
        upd = [i for i, h in after.items() if h["type"] == "item.update"
               and h["url"].startswith(HOOK_URL)][0]
        fewer = conf("fewer.conf", ["hook app 1234 = item.create"],
                     allowed_hooks=allowed)
        sim.clear_requests()
        r = pw(env, fewer, "hooks", "sync")
        t.ok(r.returncode == 0 and writes(sim) == [
            ("DELETE", "/hook/%d" % upd)] and
             "delete app 1234 item.update hook %d: not declared" % upd
             in r.stdout,
             "with allowed_hooks, deletions alone go on", show(r))
        t.ok(any(h["ref_id"] == 55 for h in sim.hooks()),
             "the hooks of an app no longer configured are left alone")

        # Without hook_url, and with bad hook lines.
        r = pw(env, conf("nourl.conf", DECLARED, hook_url=None),
               "hooks", "sync")
        t.ok(r.returncode == 2 and "hook_url is not set" in r.stderr,
             "without hook_url: exit 2", show(r))
        bad = conf("bad.conf", ["hook app 1234 = item.create item.bogus"])
        for args in (["hooks", "sync"], ["hooks", "heal"], ["check"]):
            r = pw(env, bad, *args)
            t.ok(r.returncode == 2 and "unknown event type 'item.bogus'"
                 in r.stderr and "bad.conf:3" in r.stderr,
                 "%s: a bad hook line is refused with its line, exit 2"
                 % " ".join(args), show(r))
    leaks = [label for label, text in OUTPUTS
             if SECRET in text or urllib.parse.quote(SECRET) in text]
    t.ok(not leaks, "no secret in any output", leaks)
    t.ok(not any(re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                           r"==\d+== ",
                           text) for _, text in OUTPUTS),
         "no memory error in any output")
    t.done()


testlib.main(main)
