#!/usr/bin/env python3
"""Changing webhook_secret without losing deliveries, end to end against
the Podio API simulator and a running `podio-webhook serve`.

A hook is created with secret A (its URL carries A).  The configuration
then changes to webhook_secret = B and webhook_secret_previous = A and
the server reloads (SIGHUP): deliveries to the old URL (A) and with B are
both answered 200 and stored, each one with A logs a warning naming its
hook; `config` masks the previous secret; `hooks list` marks the old hook
as secret=***(previous).  A new hook is created (its URL carries B) and
the old one deleted; webhook_secret_previous is removed and the server
reloads: A is refused with 403, B still answered 200.  No secret appears
in any output.  Deliveries are posted as a web server would pass them on:
the hook URL's query as QUERY_STRING, the form as the body.
"""

import json
import os
import re
import signal
import subprocess
import time
import urllib.parse

import fcgi
import testlib

t = testlib.Tap()

A = "old+secret&A=1 %2F"
B = "new-secret-B-4711"
URL = "https://hooks.example/podio?site=1"
SLOW = 10 if testlib.wrapper() else 1
OUTPUTS = []
REVISIONS = iter(range(5000, 1000000))

D = testlib.tmpdir()
CONF = os.path.join(D, "podio-webhook.conf")
EVENTS = os.path.join(D, "events.jsonl")
SOCK = os.path.join(D, "serve.sock")


def write_conf(secret, previous=None):
    testlib.write_config(CONF, lines=["log * = " + EVENTS],
                         webhook_secret='"%s"' % secret,
                         webhook_secret_previous=(
                             '"%s"' % previous if previous else None),
                         spool_dir=os.path.join(D, "spool"))


def pw(args, env):
    r = testlib.run([testlib.PODIO_WEBHOOK] + list(args), env=env)
    OUTPUTS.append((" ".join(args), r.stdout + r.stderr))
    return r


def hook_url(sim, hook_id):
    """The URL the simulator keeps for the hook (None: no such hook)."""
    for h in sim.hooks():
        if h["hook_id"] == hook_id:
            return h["url"]
    return None


def url_secret(url):
    """The secret a delivery to url carries, as the handler decodes it."""
    query = urllib.parse.urlsplit(url).query
    values = [v for k, v in urllib.parse.parse_qsl(query) if k == "secret"]
    return values[-1] if values else None


def deliver(url, hook_id, item_id):
    """Posts an item event to url's query as Podio would; returns the
    FastCGI response."""
    body = urllib.parse.urlencode([
        ("type", "item.delete"), ("hook_id", str(hook_id)),
        ("item_id", str(item_id)),
        ("item_revision_id", str(next(REVISIONS)))]).encode()
    return fcgi.delivery(SOCK, body, query=urllib.parse.urlsplit(url).query,
                         timeout=60 * SLOW)


def logged_items():
    out = []
    for line in testlib.read_text(EVENTS).splitlines():
        if line.strip():
            out.append(json.loads(line).get("item_id"))
    return out


def warnings(text, hook_id):
    return [ln for ln in text.splitlines()
            if "warn" in ln and "hook_id=%d" % hook_id in ln and
            "webhook_secret_previous" in ln]


def main():
    with testlib.Sim() as sim:
        env = testlib.base_env(sim)
        env["PODIO_WEBHOOK_CONFIG"] = CONF
        write_conf(A)

        r = pw(["hooks", "create", "app", "1234", URL, "item.create"], env)
        old_id = int(r.stdout.strip()) if r.returncode == 0 else 0
        old_url = hook_url(sim, old_id) or ""
        t.ok(r.returncode == 0 and url_secret(old_url) == A,
             "hooks create with secret A: the hook's URL carries A",
             r.stderr)

        log = os.path.join(D, "server.log")
        errf = open(log, "w")
        proc = testlib.popen([testlib.PODIO_WEBHOOK, "serve", "--listen",
                              "unix:" + SOCK], env=env,
                             stdout=subprocess.DEVNULL, stderr=errf)
        try:
            testlib.wait_for(lambda: "serving FastCGI" in testlib.read_text(log) or
                     proc.poll() is not None, "the server to start")
            r = deliver(old_url, old_id, 1)
            t.ok(r.status == 200, "a delivery with A: 200", r)

            # The new secret, the old one kept as the previous one.
            write_conf(B, previous=A)
            proc.send_signal(signal.SIGHUP)
            testlib.wait_for(lambda: "configuration reloaded" in
                     testlib.read_text(log), "the reload")
            r = pw(["config"], env)
            t.ok(r.returncode == 0 and re.search(
                r"^webhook_secret_previous\s*=\s*\(set\)", r.stdout, re.M),
                 "config shows webhook_secret_previous as (set)", r.stdout)
            r = deliver(old_url, old_id, 2)
            t.ok(r.status == 200,
                 "B current, A previous: a delivery to the old URL (A): "
                 "200", r)
            testlib.wait_for(lambda: warnings(testlib.read_text(log), old_id),
                     "the warning")
            t.ok(len(warnings(testlib.read_text(log), old_id)) == 1,
                 "the delivery with the previous secret logs a warning "
                 "with its hook id", testlib.read_text(log))
            new_query_url = URL + "&secret=" + urllib.parse.quote(B)
            r = deliver(new_query_url, old_id, 3)
            t.ok(r.status == 200 and
                 len(warnings(testlib.read_text(log), old_id)) == 1,
                 "a delivery with B: 200, no warning", r)

            # Which hooks are left to re-create.
            r = pw(["hooks", "list", "app", "1234"], env)
            rows = [ln for ln in r.stdout.splitlines()
                    if ln.startswith(str(old_id) + " ")]
            t.ok(r.returncode == 0 and len(rows) == 1 and
                 "secret=***(previous)" in rows[0],
                 "hooks list marks the old hook secret=***(previous)",
                 r.stdout + r.stderr)
            r = pw(["hooks", "create", "app", "1234", URL, "item.create"],
                   env)
            new_id = int(r.stdout.strip()) if r.returncode == 0 else 0
            new_url = hook_url(sim, new_id) or ""
            t.ok(r.returncode == 0 and url_secret(new_url) == B,
                 "hooks create with B current: the new hook's URL carries "
                 "B", r.stderr)
            r = pw(["hooks", "list", "app", "1234", "--json"], env)
            try:
                listed = {h["hook_id"]: h["url"] for h in json.loads(r.stdout)}
            except (ValueError, KeyError, TypeError):
                listed = {}
            t.ok(listed.get(old_id, "").endswith("secret=***(previous)") and
                 listed.get(new_id, "").endswith("secret=***"),
                 "hooks list --json: the old hook marked, the new one not",
                 r.stdout + r.stderr)
            r = deliver(new_url, new_id, 4)
            t.ok(r.status == 200, "a delivery to the new URL (B): 200", r)
            r = pw(["hooks", "delete", str(old_id)], env)
            t.ok(r.returncode == 0 and hook_url(sim, old_id) is None,
                 "hooks delete the old hook", r.stderr)
            testlib.wait_for(lambda: sorted(logged_items()) == [1, 2, 3, 4],
                     "the events of the accepted deliveries")
            t.ok(True, "every accepted delivery was stored and processed")

            # The previous secret removed: A is refused, B goes on.
            write_conf(B)
            proc.send_signal(signal.SIGHUP)
            testlib.wait_for(lambda: testlib.read_text(log).count(
                "configuration reloaded") == 2, "the second reload")
            r = deliver(old_url, old_id, 5)
            t.ok(r.status == 403, "previous secret removed: a delivery "
                 "with A: 403", r)
            r = deliver(new_url, new_id, 6)
            t.ok(r.status == 200, "previous secret removed: a delivery "
                 "with B: 200", r)
            testlib.wait_for(lambda: 6 in logged_items(), "the last event")
            t.ok(5 not in logged_items(), "the refused delivery was not "
                 "stored", logged_items())
            r = pw(["hooks", "list", "app", "1234"], env)
            t.ok(r.returncode == 0 and "(previous)" not in r.stdout and
                 str(new_id) in r.stdout,
                 "hooks list without a previous secret marks nothing",
                 r.stdout)
        finally:
            testlib.stop_process(proc)
            errf.close()
        OUTPUTS.append(("serve", testlib.read_text(log)))
        t.ok(proc.returncode == 0, "the server exits 0",
             testlib.read_text(log)[-2000:])
    leaks = []
    for label, text in OUTPUTS:
        for secret in (A, B, urllib.parse.quote(A, safe=""),
                       urllib.parse.quote_plus(A)):
            if secret in text:
                leaks.append(label)
    t.ok(not leaks, "no secret in any output", leaks)
    t.ok(not any(re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                           r"==\d+== ", text) for _, text in OUTPUTS),
         "no memory error in any output")
    t.done()


testlib.main(main)
