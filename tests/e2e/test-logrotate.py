#!/usr/bin/env python3
"""deploy/logrotate, its placeholders replaced, rotates the logs of a
running `podio-webhook serve` with the real logrotate while deliveries go
on, and no line is lost or written twice.

The server logs to `log_target = file:PATH` (kept open, opened again on
SIGHUP: the file's postrotate sends it) and hands every event to a
`log * = FILE` rule (opened anew for each line).  Events are delivered
before, during and after `logrotate -f`; then every event's line must be
in exactly one of the rotated and the new events file, and every request
line in exactly one of the rotated and the new server log, with the lines
delivered after the rotation in the new files.  A second rotation while
the configuration file is broken (the reload fails) still reopens the
log, and compresses the files of the first (delaycompress).  logrotate
itself comes from the Debian package of that name: without it the test
skips.
"""
import gzip
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fcgi  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

SECRET = "rotation-secret-0815"
SLOW = 10 if testlib.wrapper() else 1
BEFORE = range(1, 21)        # delivered before the rotation
DURING = range(21, 81)       # delivered while logrotate runs
AFTER = range(81, 101)       # delivered once the server reopened its log
AGAIN = range(101, 121)      # after a second rotation, config broken


def body(item_id):
    """An item.delete delivery (nothing to fetch) of its own revision."""
    return urllib.parse.urlencode([
        ("item_id", str(item_id)), ("item_revision_id", str(item_id)),
        ("type", "item.delete"), ("hook_id", "1001"),
        ("secret", SECRET)]).encode()


def event_ids(path):
    """The item ids of the events logged in path, in order."""
    out = []
    for line in testlib.read_text(path).splitlines():
        if line.strip():
            out.append(json.loads(line).get("item_id"))
    return out


def request_ids(path):
    """The item ids of the 200 request lines of the server log at path."""
    out = []
    for line in testlib.read_text(path).splitlines():
        if " request " not in line or " status=200 " not in line:
            continue
        for word in line.split():
            if word.startswith("item_id="):
                out.append(int(word[8:]))
    return out


def exactly_once(ids_old, ids_new, want):
    """The ids of want that are not in exactly one file exactly once."""
    bad = []
    for i in want:
        if ids_old.count(i) + ids_new.count(i) != 1:
            bad.append((i, ids_old.count(i), ids_new.count(i)))
    return bad


def read_rotated(path, suffix):
    """The text of the rotated file path + suffix, gunzipped (.gz), with
    path + ".1" before it when suffix is ".2.gz" (the lines written to
    the file last renamed)."""
    if not suffix.endswith(".gz"):
        return testlib.read_text(path + suffix)
    try:
        with gzip.open(path + suffix, "rt", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    return text + testlib.read_text(path + ".1")


def ids_of(text, fn):
    """fn (event_ids or request_ids) over text instead of a file."""
    d = testlib.tmpdir()
    path = os.path.join(d, "text")
    with open(path, "w") as f:
        f.write(text)
    return fn(path)


def check_files(t, what, events, server_log, suffix, everything, first,
                last):
    """Every id of everything once in the rotated files (suffix) or the
    current one, the ids of first in the rotated ones and those of last
    in the current one; for the events file and the server log."""
    for name, path, fn in (("events file", events, event_ids),
                           ("server log", server_log, request_ids)):
        old = ids_of(read_rotated(path, suffix), fn)
        new = fn(path)
        t.ok(not exactly_once(old, new, everything) and
             len(old) + len(new) == len(everything),
             "%s, %s: every line in exactly one of the old and the new "
             "files, once" % (what, name),
             exactly_once(old, new, everything))
        t.ok(set(first) <= set(old) and set(last) <= set(new),
             "%s, %s: the lines before the rotation in the old file, "
             "those after the reopen in the new one" % (what, name),
             "old: %s\nnew: %s" % (old, new))


def main():
    t = testlib.Tap()
    logrotate = shutil.which("logrotate") or (
        "/usr/sbin/logrotate" if os.path.exists("/usr/sbin/logrotate")
        else None)
    if not logrotate:
        t.skip_all("logrotate is not installed (Debian package logrotate)")
    d = testlib.tmpdir()
    logs = os.path.join(d, "logs")
    os.mkdir(logs, 0o750)
    server_log = os.path.join(logs, "podio-webhook.log")
    events = os.path.join(logs, "events.jsonl")
    sock = os.path.join(d, "serve.sock")
    pidfile = os.path.join(d, "serve.pid")
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name

    # The configuration as deploy/logrotate documents it, pointed at this
    # test's server through a pid file.
    try:
        text = servers.substitute(
            "logrotate", LOGS="%s/*.log %s/*.jsonl" % (logs, logs),
            USER=user, GROUP=group,
            RELOAD='kill -HUP "$(cat %s)"' % pidfile)
    except servers.ServerError as exc:
        t.ok(False, "deploy/logrotate: only the documented placeholders",
             str(exc))
        t.done()
        return
    t.ok(True, "deploy/logrotate: only the documented placeholders")
    t.ok("copytruncate" not in text.split("#")[-1] and
         "delaycompress" in text,
         "no copytruncate; the renamed file is compressed one rotation "
         "later")
    conf = servers.write_file(os.path.join(d, "logrotate.conf"), text)
    state = os.path.join(d, "logrotate.state")

    with testlib.Sim() as sim:
        env = testlib.base_env(sim)
        cfg = testlib.write_config(
            os.path.join(d, "podio-webhook.conf"),
            lines=["log * = " + events],
            webhook_secret=SECRET, log_target="file:" + server_log,
            spool_dir=os.path.join(d, "spool"))
        env["PODIO_WEBHOOK_CONFIG"] = cfg
        errf = open(os.path.join(d, "stderr"), "w")
        proc = testlib.popen([testlib.PODIO_WEBHOOK, "serve", "--listen",
                              "unix:" + sock], env=env,
                             stdout=subprocess.DEVNULL, stderr=errf)
        try:
            with open(pidfile, "w") as f:
                f.write("%d\n" % proc.pid)
            testlib.wait_for(lambda: "serving FastCGI" in
                     testlib.read_text(server_log) or
                     proc.poll() is not None, "the server to start")
            t.ok(proc.poll() is None, "serve logs to its file: log",
                 testlib.read_text(os.path.join(d, "stderr")))

            answers = {}

            def deliver(ids):
                for i in ids:
                    r = fcgi.delivery(sock, body(i), timeout=60 * SLOW)
                    answers[i] = r.status

            deliver(BEFORE)
            testlib.wait_for(lambda: len(event_ids(events)) == len(BEFORE),
                     "the first events in the log")
            t.ok(all(answers[i] == 200 for i in BEFORE),
                 "%d deliveries before the rotation: 200" % len(BEFORE))

            # The rotation, while another thread goes on delivering.
            th = threading.Thread(target=deliver, args=(DURING,))
            th.start()
            testlib.wait_for(lambda: len(answers) >= len(BEFORE) + 5,
                     "deliveries under way")
            r = subprocess.run([logrotate, "-f", "-s", state, conf],
                               capture_output=True, text=True,
                               timeout=120)
            th.join()
            t.ok(r.returncode == 0,
                 "logrotate -f with deploy/logrotate: exit 0",
                 r.stdout + r.stderr)
            t.ok(all(answers.get(i) == 200 for i in DURING),
                 "%d deliveries during the rotation: 200" % len(DURING),
                 {i: answers.get(i) for i in DURING
                  if answers.get(i) != 200})
            t.ok(os.path.exists(events + ".1") and
                 os.path.exists(server_log + ".1") and
                 not os.path.exists(events + ".1.gz"),
                 "both logs renamed to .1, not yet compressed",
                 sorted(os.listdir(logs)))

            # The SIGHUP of the postrotate: the server opens its log anew
            # (its first line there says so), then more deliveries.
            testlib.wait_for(lambda: "configuration reloaded" in
                     testlib.read_text(server_log), "the reopened log")
            deliver(AFTER)
            everything = list(BEFORE) + list(DURING) + list(AFTER)
            testlib.wait_for(lambda: len(event_ids(events + ".1")) +
                     len(event_ids(events)) >= len(everything),
                     "every event in the logs")
            t.ok(all(answers[i] == 200 for i in AFTER),
                 "%d deliveries after the rotation: 200" % len(AFTER))
            check_files(t, "first rotation", events, server_log, ".1",
                        everything, BEFORE, AFTER)

            # A second rotation while the configuration cannot be read:
            # the reload fails, the log file is opened anew all the same,
            # and the file renamed the first time is compressed now.
            with open(cfg, "a") as f:
                f.write("this line is broken\n")
            r = subprocess.run([logrotate, "-f", "-s", state, conf],
                               capture_output=True, text=True,
                               timeout=120)
            t.ok(r.returncode == 0 and os.path.exists(events + ".2.gz") and
                 os.path.exists(server_log + ".2.gz"),
                 "a second logrotate -f: the first rotated files "
                 "compressed (.2.gz)", r.stdout + r.stderr +
                 " ".join(sorted(os.listdir(logs))))
            testlib.wait_for(lambda: "not reloaded" in testlib.read_text(server_log),
                     "the failed reload, logged to the new file")
            deliver(AGAIN)
            testlib.wait_for(lambda: len(event_ids(events)) >= len(AGAIN),
                     "the last events in the log")
            t.ok(all(answers[i] == 200 for i in AGAIN),
                 "%d deliveries after a rotation with a broken "
                 "configuration: 200" % len(AGAIN))
            check_files(t, "second rotation, broken configuration",
                        events, server_log, ".2.gz", everything + list(AGAIN),
                        everything, AGAIN)
        finally:
            testlib.stop_process(proc)
            errf.close()

        t.ok(proc.returncode == 0 and
             "stopping" in testlib.read_text(server_log),
             "the server stops cleanly and logs it to the new file",
             "exit %s" % proc.returncode)
        text = testlib.read_text(os.path.join(d, "stderr")) + \
            testlib.read_text(server_log) + \
            testlib.read_text(server_log + ".1")
        t.ok(SECRET not in text and not re.search(
             r"AddressSanitizer|LeakSanitizer|runtime error:|==\d+== ", text),
             "no secret and no memory error in the output",
             testlib.read_text(os.path.join(d, "stderr"))[-2000:])
    t.done()


testlib.main(main)
