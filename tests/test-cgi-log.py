"""Concurrent CGI processes append to one JSON-lines log safely.

20 CGI processes run at once, each handling 50 deliveries one after the
other (1,000 CGI runs in all), every one matching a `log * = FILE` rule.
Every line of the file must parse as one event and each delivery must be
there exactly once.  item.delete events are used, so no API call is made:
the simulator must see none.

The full 20 x 50 runs with the plain build's binary.  A sanitizer build
runs 8 x 25 (each process starts slowly there: the 1,000 runs would
hold up the whole suite, and 20 at once would starve the test running
beside this one); under a valgrind wrapper, 20 x 2 wrapped runs come
first, then the full 20 x 50 with the same binary unwrapped.  The counts
are checked exactly in every case.
"""
import json
import os
import subprocess
import threading
import time
import urllib.parse

import fcgi
import testlib

SECRET = "cgi-log-secret"
WORKERS = 20
FULL = 50


def phases():
    """(label, wrapped, workers, runs per worker) of each round of this
    build."""
    if os.environ.get("PODIO_TEST_WRAPPER"):
        return [("under the wrapper", True, WORKERS, 2),
                ("", False, WORKERS, FULL)]
    if os.environ.get("PODIO_TEST_SANITIZERS") == "1":
        return [("", False, 8, 25)]
    return [("", False, WORKERS, FULL)]


def main():
    t = testlib.Tap()
    with testlib.Sim() as sim:
        for n, (label, wrapped, workers, per_worker) in enumerate(
                phases()):
            one_round(t, sim, n, label, wrapped, workers, per_worker)
        t.ok(not sim.api_requests() and not sim.token_requests(),
             "item.delete made no API call")
    t.done()


def one_round(t, sim, n, label, wrapped, workers, per_worker):
    """workers threads each run per_worker CGI processes one after the
    other into a log of their own; checks the log."""
    d = testlib.tmpdir()
    log = os.path.join(d, "events.jsonl")
    env = testlib.base_env(sim)
    conf = os.path.join(d, "handler.conf")
    with open(conf, "w") as f:
        f.write('webhook_secret = "%s"\nlog * = %s\n' % (SECRET, log))
        f.write("spool_dir = %s\n" % os.path.join(d, "spool")
                if has_key("spool_dir") else "")
    env["PODIO_WEBHOOK_CONFIG"] = conf
    words = testlib.wrapper() if wrapped else []
    failures = []
    lock = threading.Lock()
    base = (n + 1) * 1000000
    tag = " (%s)" % label if label else ""

    def worker(w):
        for i in range(per_worker):
            item = base + w * 1000 + i + 1
            body = urllib.parse.urlencode([
                ("type", "item.delete"), ("hook_id", "1001"),
                ("item_id", str(item)), ("item_revision_id", "1"),
                ("secret", SECRET)]).encode()
            e = dict(env)
            e.update(fcgi.cgi_params(body))
            r = subprocess.run(words + [testlib.PODIO_WEBHOOK], env=e,
                               input=body, capture_output=True,
                               timeout=120)
            status, _h, out = fcgi.parse_cgi(r.stdout)
            if r.returncode != 0 or status != 200:
                with lock:
                    failures.append((item, r.returncode, status,
                                     r.stderr[-300:]))

    threads = [threading.Thread(target=worker, args=(w,))
               for w in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    total = workers * per_worker
    t.ok(not failures, "all %d CGI runs answered 200%s" % (total, tag),
         repr(failures[:3]))

    # Callbacks may run after the answer (a detached process works
    # through the spool): wait until every line is there.
    def count():
        if not os.path.exists(log):
            return 0
        with open(log, "rb") as f:
            return f.read().count(b"\n")
    deadline = time.monotonic() + 300
    while count() < total and time.monotonic() < deadline:
        time.sleep(0.1)
    with open(log, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    t.ok(lines[-1] == b"", "the log ends with a whole line" + tag)
    lines = lines[:-1]
    t.ok(len(lines) == total, "exactly %d lines%s" % (total, tag),
         "got %d" % len(lines))
    seen = {}
    bad = 0
    for ln in lines:
        try:
            ev = json.loads(ln)
        except ValueError:
            bad += 1
            continue
        seen[ev.get("item_id")] = seen.get(ev.get("item_id"), 0) + 1
    t.ok(bad == 0, "every line parses as JSON" + tag, "%d bad" % bad)
    want = {base + w * 1000 + i + 1 for w in range(workers)
            for i in range(per_worker)}
    t.ok(set(seen) == want and all(v == 1 for v in seen.values()),
         "each delivery is there exactly once" + tag)


def has_key(name):
    r = testlib.run([testlib.PODIO_WEBHOOK, "config", "--keys"], wrap=False)
    return name in r.stdout.split()


testlib.main(main)
