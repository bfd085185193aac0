"""CGI deliveries with cgi_budget = 0 keep the log of the spool's intake
bounded.

A CGI run stores its event in the spool's intake (DIR/intake.db), which
the next process that opens the spool moves in.  With cgi_budget = 0 no
worker runs between two `spool drain`s: every delivery is a process of
its own that opens the intake alone, and SQLite
then rebuilds its WAL index by reading the log from its header up to the
last valid frame.  What it reads is what this test measures: the frames
of the -wal file that carry the header's salts and a chain of checksums
that holds, up to the last commit frame (the WAL format of SQLite's
file-format documentation, read here byte by byte).  Neither the file's
size (the log is kept at its largest, so that appends overwrite blocks
already there) nor a checkpoint pragma (it would change what it measures)
would do.

400 deliveries (300 in a sanitizer build, 40 under a valgrind wrapper)
are stored one after the other, the log read every 25: its valid frames
must stay below 1,024 (4 MiB; one delivery adds about ten), which they
pass after some 100 deliveries when nothing starts the log over.  Then
every event is still there: each answer was 200, `spool status` counts
them all pending, `spool drain` writes each to the log rule once, and
both databases pass PRAGMA integrity_check.  item.delete events are
used, so no API call is made.

A second spool gets the same number of deliveries from 4 threads at once
(the runs that find the lock file taken leave the log to a later one):
every answer is 200, every event is there once and the databases are
sound; its log's valid frames are reported, not checked.
"""
import json
import os
import sqlite3
import struct
import subprocess
import threading
import urllib.parse

import fcgi
import testlib

SECRET = "cgi-wal-secret"
# Frames a new process may read: 4 MiB of 4 KiB pages.
MAX_FRAMES = 1024
EVERY = 25
MASK = 0xffffffff


def deliveries():
    if testlib.wrapper():
        return 40
    if os.environ.get("PODIO_TEST_SANITIZERS") == "1":
        return 300
    return 400


def cksum(data, order, s0, s1):
    """SQLite's WAL checksum of data (a multiple of 8 bytes), words in
    order ('<' or '>'), continued from (s0, s1)."""
    w = struct.unpack("%s%dI" % (order, len(data) // 4), data)
    for i in range(0, len(w), 2):
        s0 = (s0 + w[i] + s1) & MASK
        s1 = (s1 + w[i + 1] + s0) & MASK
    return s0, s1


def wal_frames(path):
    """The frames of the WAL file at path that a recovery accepts: those
    up to the last commit frame of the unbroken chain that starts at the
    header (same salts, checksums that hold).  0 when there is no log."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    if len(data) < 32:
        return 0
    magic, _v, psz, _seq, salt1, salt2, c1, c2 = struct.unpack(
        ">8I", data[:32])
    if magic not in (0x377f0682, 0x377f0683):
        return 0
    order = ">" if magic & 1 else "<"
    if psz == 1:
        psz = 65536
    s = cksum(data[:24], order, 0, 0)
    if s != (c1, c2):
        return 0
    off, n, last = 32, 0, 0
    while off + 24 + psz <= len(data):
        pgno, commit, f1, f2, k1, k2 = struct.unpack(
            ">6I", data[off:off + 24])
        if pgno == 0 or (f1, f2) != (salt1, salt2):
            break
        s = cksum(data[off:off + 8], order, *s)
        s = cksum(data[off + 24:off + 24 + psz], order, *s)
        if s != (k1, k2):
            break
        n += 1
        if commit:
            last = n
        off += 24 + psz
    return last


def deliver(env, item):
    """One CGI run storing an item.delete of item: (status, exit
    problem or None)."""
    body = urllib.parse.urlencode([
        ("type", "item.delete"), ("hook_id", "1001"),
        ("item_id", str(item)), ("item_revision_id", "1"),
        ("secret", SECRET)]).encode()
    e = dict(env)
    e.update(fcgi.cgi_params(body))
    r = subprocess.run(testlib.wrapper() + [testlib.PODIO_WEBHOOK], env=e,
                       input=body, capture_output=True, timeout=120)
    bad = None if r.returncode == 0 else (item, r.returncode,
                                          r.stderr[-300:])
    return fcgi.parse_cgi(r.stdout)[0], bad


def check_stored(t, env, conf, d, total, tag):
    """spool status, spool drain, the log rule's lines and the
    database's integrity after total deliveries of items 1..total."""
    spool = os.path.join(d, "spool")
    log = os.path.join(d, "events.jsonl")
    r = testlib.run([testlib.PODIO_WEBHOOK, "-c", conf, "spool",
                     "status", "--json"], env=env, timeout=120)
    try:
        st = json.loads(r.stdout)
    except ValueError:
        st = {"error": r.stdout + r.stderr}
    t.ok(st.get("pending") == total,
         "spool status counts %d pending%s" % (total, tag), st)
    r = testlib.run([testlib.PODIO_WEBHOOK, "-c", conf, "spool",
                     "drain"], env=env, timeout=600)
    t.ok(r.returncode == 0, "spool drain ends well" + tag,
         r.stdout + r.stderr)
    seen = {}
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                ev = json.loads(line)
                seen[ev.get("item_id")] = seen.get(ev.get("item_id"), 0) + 1
    t.ok(set(seen) == set(range(1, total + 1)) and
         all(v == 1 for v in seen.values()),
         "spool drain delivers each of the %d events once%s" % (total, tag),
         "%d distinct, %d lines" % (len(seen), sum(seen.values())))
    for name in ("spool.db", "intake.db"):
        db = sqlite3.connect(os.path.join(spool, name), timeout=30)
        ok = db.execute("PRAGMA integrity_check").fetchall()
        db.close()
        t.ok(ok == [("ok",)], "PRAGMA integrity_check of %s: ok%s"
             % (name, tag), ok)


def setup(sim, name):
    """A directory, its configuration and environment: (d, conf, env)."""
    d = os.path.join(testlib.tmpdir(), name)
    os.mkdir(d)
    conf = os.path.join(d, "handler.conf")
    with open(conf, "w") as f:
        f.write('webhook_secret = "%s"\nlog * = %s\n'
                % (SECRET, os.path.join(d, "events.jsonl")))
    env = testlib.base_env(sim, spool_dir=os.path.join(d, "spool"),
                           cgi_budget="0", coalesce_window="0")
    env["PODIO_WEBHOOK_CONFIG"] = conf
    return d, conf, env


def one_by_one(t, sim, total):
    d, conf, env = setup(sim, "one-by-one")
    wal = os.path.join(d, "spool", "intake.db-wal")
    statuses, bad_exits, frames = [], [], []
    for i in range(total):
        status, bad = deliver(env, i + 1)
        statuses.append(status)
        if bad:
            bad_exits.append(bad)
        if (i + 1) % EVERY == 0 or i + 1 == total:
            frames.append(wal_frames(wal))
    t.ok(statuses == [200] * total and not bad_exits,
         "%d CGI deliveries answered 200" % total,
         repr([s for s in statuses if s != 200][:3]) + repr(bad_exits[:2]))
    t.diag("valid WAL frames every %d deliveries: %s" % (EVERY, frames))
    t.ok(frames and max(frames) < MAX_FRAMES,
         "the log a new process reads stays below %d frames" % MAX_FRAMES,
         "max %d" % max(frames or [0]))
    t.ok(os.path.exists(wal), "the log file is kept between processes")
    check_stored(t, env, conf, d, total, "")


def at_once(t, sim, total):
    d, conf, env = setup(sim, "at-once")
    wal = os.path.join(d, "spool", "intake.db-wal")
    threads = 4
    results = []
    lock = threading.Lock()

    def worker(w):
        for item in range(w + 1, total + 1, threads):
            res = deliver(env, item)
            with lock:
                results.append(res)

    ths = [threading.Thread(target=worker, args=(w,))
           for w in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    t.ok(len(results) == total and
         all(s == 200 and b is None for s, b in results),
         "%d CGI deliveries from %d threads answered 200"
         % (total, threads),
         repr([r for r in results if r != (200, None)][:3]))
    t.diag("valid WAL frames after them: %d" % wal_frames(wal))
    check_stored(t, env, conf, d, total, " (at once)")


def main():
    t = testlib.Tap()
    total = deliveries()
    with testlib.Sim() as sim:
        one_by_one(t, sim, total)
        at_once(t, sim, total)
        t.ok(not sim.api_requests() and not sim.token_requests(),
             "item.delete made no API call")
    t.done()


testlib.main(main)
