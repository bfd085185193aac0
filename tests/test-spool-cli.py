#!/usr/bin/env python3
"""Durable intake and processing apart from the request, against the
simulator: the 200 goes out once the event is stored, before the item is
fetched (the item reply held at a gate); callbacks that fail are retried
with backoff and run no more once they succeeded; retry_max used up makes
a dead letter with its reason, and on_dead runs once for it (its failure
logged, never retried); `spool replay --dead`, `status --json` and its
thresholds (`--max-age`, `--max-dead`: exit 1 and one line each),
`list`, `show`, `drain` (which gives back the events of processes that
are gone) and `purge`; 503 when the spool cannot be written;
a CGI process answers and exits while a detached child processes the
event; the same delivery twice runs its callbacks once.

Retries use a small backoff through the test seam PODIO_TEST_BACKOFF_MS.

With PODIO_TEST_SPOOL_URL (a PostgreSQL database it may use, see
tests/test-spool-cli-pg.py) the same runs on a PostgreSQL spool: the
leases given back by drain are then those whose session ended (held by
nobody) rather than those of a PID that is gone, and the unwritable
spool is a database nobody answers at."""

import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import fcgi
import testlib

t = testlib.Tap()
PG_URL = os.environ.get("PODIO_TEST_SPOOL_URL") or None
SECRET = "spool-secret-xyz"
SLOW = 10 if testlib.wrapper() else 1
D = testlib.tmpdir()
SPOOL = os.path.join(D, "spool")
CMD_DIR = os.path.join(D, "cmd")
os.mkdir(CMD_DIR)
EVENTS = os.path.join(D, "events.jsonl")
RECORD = os.path.join(D, "record.sh")
with open(RECORD, "w") as f:
    # renamed when complete, so a reader never sees a half-written event
    f.write('#!/bin/sh\ncat > "$1/$$.tmp" && mv "$1/$$.tmp" "$1/$$.json"\n')
os.chmod(RECORD, 0o755)
# Fails while the count of its runs is at most the number in FAILS;
# appends each run's outcome to RUNS.
FLAKY = os.path.join(D, "flaky.sh")
FAILS = os.path.join(D, "fails")
RUNS = os.path.join(D, "runs")
with open(FLAKY, "w") as f:
    f.write('#!/bin/sh\n'
            'ev=$(cat)\n'
            'n=$(grep -c . "%s" 2>/dev/null || echo 0)\n'
            'n=$((n + 1))\n'
            'if [ "$n" -le "$(cat "%s")" ]; then\n'
            '  echo "fail $PODIO_EVENT_TYPE" >> "%s"\n'
            '  echo "flaky failure number $n" >&2; exit 1\n'
            'fi\n'
            'echo "ok $PODIO_EVENT_TYPE" >> "%s"\n'
            % (RUNS, FAILS, RUNS, RUNS))
os.chmod(FLAKY, 0o755)
# The on_dead command: keeps what it got on stdin and its environment in
# ALERTS, one pair of files per run; fails while ALERTS/fail exists.
ALERTS = os.path.join(D, "alerts")
os.mkdir(ALERTS)
ALERT = os.path.join(D, "alert.sh")
with open(ALERT, "w") as f:
    f.write('#!/bin/sh\n'
            'cat > "$1/$$.tmp"\n'
            'echo "$PODIO_EVENT_TYPE $PODIO_HOOK_ID $PODIO_ITEM_ID" '
            '> "$1/$$.env"\n'
            'mv "$1/$$.tmp" "$1/$$.json"\n'
            'if [ -e "$1/fail" ]; then echo "alert failed on purpose" >&2;'
            ' exit 4; fi\n')
os.chmod(ALERT, 0o755)


def alerts(besides=()):
    """What the on_dead command got: (stdin parsed, environment line, file
    name), in the order the runs ended; the runs of besides (what an
    earlier call returned) left out."""
    seen = set(a[2] for a in besides)
    out = []
    names = [n for n in os.listdir(ALERTS) if n.endswith(".json") and
             n not in seen]
    # Named by PID, which says nothing of the order: by when each ended.
    names.sort(key=lambda n: os.stat(os.path.join(ALERTS, n)).st_mtime_ns)
    for name in names:
        if name.endswith(".json"):
            base = os.path.join(ALERTS, name[:-5])
            try:
                out.append((json.loads(testlib.read_text(base + ".json")),
                            testlib.read_text(base + ".env").strip(), name))
            except ValueError:
                out.append(({"unparsable": name}, "", name))
    return out


def set_fails(n):
    with open(FAILS, "w") as f:
        f.write("%d\n" % n)
    if os.path.exists(RUNS):
        os.unlink(RUNS)


def runs():
    try:
        with open(RUNS) as f:
            return f.read().split("\n")[:-1]
    except OSError:
        return []


CONF = os.path.join(D, "handler.conf")
with open(CONF, "w") as f:
    f.write('webhook_secret = "%s"\n'
            "on item.* = %s %s\n"
            "on comment.create = %s\n"
            "log * = %s\n"
            "on_dead = %s %s\n" % (SECRET, RECORD, CMD_DIR, FLAKY, EVENTS,
                                   ALERT, ALERTS))


def body(type_, hook_id=1001, secret=SECRET, **ids):
    pairs = [("type", type_), ("hook_id", str(hook_id))]
    pairs += [(k, str(v)) for k, v in ids.items()]
    pairs.append(("secret", secret))
    return urllib.parse.urlencode(pairs).encode()


def logged():
    try:
        with open(EVENTS) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


def logged_for(type_, **ids):
    return [e for e in logged() if e.get("type") == type_ and
            all(e.get(k) == v for k, v in ids.items())]


def on_events():
    out = []
    for name in os.listdir(CMD_DIR):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(CMD_DIR, name)) as f:
                out.append(json.loads(f.read()))
        except (OSError, ValueError):
            pass
    return out


def pw(env, *args):
    return testlib.run([testlib.PODIO_WEBHOOK, "-c", CONF] + list(args),
                       env=env, timeout=120 * SLOW)


def status(env):
    r = pw(env, "spool", "status", "--json")
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": r.stdout + r.stderr}


def cgi(env, data):
    e = dict(env)
    e.update(fcgi.cgi_params(data))
    words = testlib.wrapper()
    r = subprocess.run(words + [testlib.PODIO_WEBHOOK], env=e, input=data,
                       capture_output=True, timeout=60 * SLOW)
    st, _h, out = fcgi.parse_cgi(r.stdout)
    return st, out.decode("utf-8", "replace").strip(), r


class Detached:
    """A CGI run that leaves a detached worker behind.  The request is
    over when the process has exited and its stdout is closed (what a web
    server waits for); stderr is read apart until every holder closed it.
    Under valgrind that is only when the worker ends: valgrind keeps a
    copy of the original stderr for its reports, out of the program's
    reach, so waiting for stderr with the answer would hold the test (and
    the gate) until the worker gave up."""

    def __init__(self, env, data):
        e = dict(env)
        e.update(fcgi.cgi_params(data))
        self.proc = subprocess.Popen(
            testlib.wrapper() + [testlib.PODIO_WEBHOOK], env=e,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self._err = []
        self._reader = threading.Thread(target=self._read_err, daemon=True)
        self._reader.start()
        self.proc.stdin.write(data)
        self.proc.stdin.close()
        self.returncode = self.proc.wait(60 * SLOW)
        self.stdout = self._read_out(30 * SLOW)
        self.status, _h, out = fcgi.parse_cgi(self.stdout or b"")
        self.text = out.decode("utf-8", "replace").strip()

    def _read_out(self, timeout):
        """stdout up to its end, or None if it is still open after
        timeout seconds (the worker kept it)."""
        out = []
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.proc.stdout.close()
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.stdout.close()
                return b"".join(out)
            out.append(chunk)

    def _read_err(self):
        while True:
            chunk = self.proc.stderr.read1(65536)
            if not chunk:
                break
            self._err.append(chunk)
        self.proc.stderr.close()

    def stderr(self, timeout):
        """stderr once closed by everyone (None if still open after
        timeout seconds)."""
        self._reader.join(timeout)
        if self._reader.is_alive():
            return None
        return b"".join(self._err).decode("utf-8", "replace")

    def __repr__(self):
        return "<Detached rc=%r %r>" % (self.returncode, self.stdout)


def leases_sqlite():
    """drain gives back the events of a process that is gone (PID
    looked up); a live process keeps its own."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    ns = os.stat("/proc/self/ns/pid").st_ino
    far = int(time.time() * 1000) + 3600 * 1000
    # The CGI runs stored the events in the spool's intake: moved in.
    status(ENV)
    db = sqlite3.connect(os.path.join(SPOOL, "spool.db"), timeout=30)
    with db:
        for item, pid in ((711, gone.pid), (712, os.getpid())):
            db.execute("UPDATE events SET lease_owner = ?, lease_until = ?"
                       " WHERE item_id = ?",
                       ("%d-0000000000000000-%d" % (pid, ns), far, item))
    db.close()
    st = status(ENV)
    t.ok(st.get("in_flight") == 2, "two events leased: in flight", st)
    r = pw(ENV, "spool", "drain")
    st = status(ENV)
    t.ok(r.returncode == 0 and logged_for("item.delete", item_id=711) and
         not logged_for("item.delete", item_id=712) and
         "1 event taken by 1 process that ended" in r.stderr and
         st.get("in_flight") == 1,
         "spool drain gives back the event of a process that is gone, "
         "not the one of a live process", r.stdout + r.stderr + repr(st))
    db = sqlite3.connect(os.path.join(SPOOL, "spool.db"), timeout=30)
    with db:
        db.execute("UPDATE events SET lease_until = 1 WHERE item_id = 712")
    db.close()
    r = pw(ENV, "spool", "drain")
    t.ok(r.returncode == 0 and logged_for("item.delete", item_id=712) and
         status(ENV).get("in_flight") == 0,
         "once its lease ran out, the live process's event is taken too",
         r.stdout + r.stderr)


PSQL = os.environ.get("PODIO_TEST_PSQL") or "psql"


def psql(sql):
    """Runs sql on the PostgreSQL spool as its role (the URI's)."""
    return subprocess.run([PSQL, "-X", "-A", "-t", "-q", "-v",
                           "ON_ERROR_STOP=1", "-c", sql, PG_URL],
                          capture_output=True, text=True, timeout=60)


def leases_pg():
    """drain gives back the events whose lease's session ended (its
    advisory lock held by nobody); a live session keeps its own."""
    far = int(time.time() * 1000) + 3600 * 1000
    # A session that lives on, holding the lease key of event 712.
    holder = subprocess.Popen(
        [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
         "SELECT pg_advisory_lock(4242424242)", "-c",
         "SELECT pg_sleep(600)", PG_URL],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sim.wait_until(lambda: psql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND granted AND objid::bigint = 4242424242"
            ).stdout.strip() == "1", 30 * SLOW, "the session's lock")
        r = psql("UPDATE podio_events SET lease_owner = 'gone',"
                 " lease_key = 4141414141, lease_until = %d"
                 " WHERE item_id = 711;"
                 " UPDATE podio_events SET lease_owner = 'live',"
                 " lease_key = 4242424242, lease_until = %d"
                 " WHERE item_id = 712" % (far, far))
        st = status(ENV)
        t.ok(r.returncode == 0 and st.get("in_flight") == 2,
             "two events leased: in flight", r.stderr + repr(st))
        r = pw(ENV, "spool", "drain")
        st = status(ENV)
        t.ok(r.returncode == 0 and logged_for("item.delete", item_id=711)
             and not logged_for("item.delete", item_id=712) and
             "1 event taken by sessions that ended" in r.stderr and
             st.get("in_flight") == 1,
             "spool drain gives back the event of a session that ended, "
             "not the one of a live session",
             r.stdout + r.stderr + repr(st))
    finally:
        # A killed psql leaves its server session asleep: ended first.
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE query = 'SELECT pg_sleep(600)'")
        holder.kill()
        holder.wait()
    psql("UPDATE podio_events SET lease_until = 1 WHERE item_id = 712")
    r = pw(ENV, "spool", "drain")
    t.ok(r.returncode == 0 and logged_for("item.delete", item_id=712) and
         status(ENV).get("in_flight") == 0,
         "once its lease ran out, the live session's event is taken too",
         r.stdout + r.stderr)


with testlib.Sim() as sim:
    ENV = testlib.base_env(sim, spool_dir=SPOOL, retry_max=3,
                           spool_url=PG_URL)
    ENV["PODIO_TEST_BACKOFF_MS"] = "100"
    SERVER_LOG = os.path.join(D, "server.log")

    # ------------------------------------------------ FastCGI: serve
    sock = os.path.join(D, "fcgi.sock")
    errf = open(SERVER_LOG, "w")
    srv = testlib.popen([testlib.PODIO_WEBHOOK, "-c", CONF, "serve",
                         "--listen", "unix:" + sock, "--workers", "4"],
                        env=ENV, stdout=subprocess.DEVNULL, stderr=errf)

    def server_log():
        with open(SERVER_LOG, errors="replace") as f:
            return f.read()
    sim.wait_until(lambda: "serving FastCGI" in server_log() or
                   srv.poll() is not None, 30 * SLOW, "the server")

    def deliver(data):
        return fcgi.delivery(sock, data, timeout=60 * SLOW)

    # The answer comes while the item GET is held; the callbacks after.
    sim.add_item(501, title="Gated")
    gid = sim.gate("/item/501", method="GET")
    r = deliver(body("item.update", item_id=501, item_revision_id=1))
    t.ok(r.status == 200 and "queued" in r.text,
         "FastCGI: item.update answered 200 (queued) at once", repr(r))
    sim.wait_until(lambda: sim.gate_waiting(gid) == 1, 30 * SLOW,
                   "the item GET at the gate")
    t.ok(not logged_for("item.update", item_id=501),
         "the callbacks wait for the item (the GET is held)", logged())
    sim.release(gid)
    sim.wait_until(lambda: logged_for("item.update", item_id=501),
                   30 * SLOW, "the event after release")
    ev = logged_for("item.update", item_id=501)[0]
    t.ok(ev.get("item", {}).get("title") == "Gated" and
         ev.get("item_revision_id") == 1,
         "after release the callbacks get the event with the item", ev)
    sim.wait_until(lambda: any(e.get("item_id") == 501
                               for e in on_events()), 30 * SLOW,
                   "the on command for 501")
    t.ok([e for e in on_events() if e.get("item_id") == 501] == [ev],
         "the on command got the same event", on_events())

    # A callback failing twice, then succeeding: retried, then done.
    set_fails(2)
    r = deliver(body("comment.create", item_id=600, comment_id=1))
    t.ok(r.status == 200, "comment.create: 200", repr(r))
    sim.wait_until(lambda: "ok comment.create" in runs(), 60 * SLOW,
                   "the third try to succeed")
    t.ok(runs() == ["fail comment.create", "fail comment.create",
                    "ok comment.create"],
         "a failing callback is retried until it succeeds", runs())
    t.ok("try 1 of 3 failed" in server_log() and
         "flaky failure number 1" in server_log(),
         "each failed try is logged with the callback's stderr",
         server_log()[-2000:])
    done_re = re.compile(r"event id=\d+ type=comment\.create [^\n]*: "
                         r"done: ok \(\d+ callbacks?[^)]*\)$", re.M)
    # The processor logs once the callback's run is recorded.
    sim.wait_until(lambda: done_re.search(server_log()), 30 * SLOW,
                   "the processor's line for the event")
    t.ok(re.search(r"request method=POST type=comment\.create [^\n]*"
                   r"status=200 ms=\d+: ok: queued as event \d+$",
                   server_log(), re.M) and
         done_re.search(server_log()) and
         "callbacks=" not in server_log(),
         "the request's log line says it was queued; the processor's "
         "says what the callbacks did", server_log()[-2000:])
    # Another event through the same processors: the done one stays done.
    r = deliver(body("item.delete", item_id=601))
    sim.wait_until(lambda: logged_for("item.delete", item_id=601),
                   30 * SLOW, "item.delete 601")
    st = status(ENV)
    t.ok(len(runs()) == 3 and st.get("pending") == 0 and
         st.get("retrying") == 0 and st.get("dead") == 0,
         "once done, the event is gone and not run again",
         "%r %r" % (runs(), st))

    # retry_max (3) used up: a dead letter with the reason.
    set_fails(1000)
    r = deliver(body("comment.create", item_id=600, comment_id=2))
    t.ok(r.status == 200, "another comment.create: 200", repr(r))
    sim.wait_until(lambda: status(ENV).get("dead") == 1, 60 * SLOW,
                   "the event to be dead")
    t.ok(runs() == ["fail comment.create"] * 3,
         "retry_max = 3: tried three times", runs())
    r = pw(ENV, "spool", "list")
    dead = [ln for ln in r.stdout.splitlines() if " dead " in ln]
    t.ok(r.returncode == 0 and len(dead) == 1 and "comment.create" in
         dead[0] and "exit status 1" in dead[0],
         "spool list shows the dead letter with its reason", r.stdout)
    dead_id = dead[0].split()[0] if dead else "0"
    sim.wait_until(lambda: alerts(), 30 * SLOW, "the on_dead command")
    got = alerts()
    a = got[0][0] if got else {}
    t.ok(len(got) == 1 and str(a.get("event_id")) == dead_id and
         a.get("attempts") == 3 and
         "flaky failure number" in (a.get("reason") or "") and
         (a.get("event") or {}).get("type") == "comment.create" and
         (a.get("event") or {}).get("comment_id") == 2 and
         "item" not in (a.get("event") or {}) and
         got[0][1] == "comment.create 1001 600" and
         SECRET not in json.dumps(a),
         "on_dead ran once with the dead letter's id, reason, tries and "
         "event on stdin and an on command's environment", got)
    sim.wait_until(lambda: re.search(r"event id=%s [^\n]*on_dead ran" %
                                     dead_id, server_log()), 30 * SLOW,
                   "the on_dead line")
    t.ok(re.search(r"event id=%s [^\n]*on_dead ran" % dead_id,
                   server_log()),
         "serve logs that on_dead ran for it", server_log()[-1500:])
    r = pw(ENV, "spool", "show", dead_id)
    t.ok(r.returncode == 0 and "state:       dead" in r.stdout and
         "flaky failure number" in r.stdout and
         '"comment_id":2' in r.stdout.replace(" ", "") and
         SECRET not in r.stdout,
         "spool show: state, reason and the event, no secret", r.stdout)
    r = pw(ENV, "spool", "show", "999999")
    t.ok(r.returncode == 1 and "no event" in r.stderr,
         "spool show of a missing id: exit 1", r.stderr)
    r = pw(ENV, "spool", "replay", "abc")
    t.ok(r.returncode == 2, "spool replay abc: usage error, exit 2",
         r.stderr)

    # Replayed, it succeeds.
    set_fails(0)
    r = pw(ENV, "spool", "replay", "--dead")
    t.ok(r.returncode == 0 and r.stdout.startswith("1 event"),
         "spool replay --dead brings one back", r.stdout + r.stderr)
    sim.wait_until(lambda: "ok comment.create" in runs(), 30 * SLOW,
                   "the replayed event")
    st = status(ENV)
    t.ok(runs() == ["ok comment.create"] and st.get("dead") == 0,
         "the replayed event succeeds and leaves the spool",
         "%r %r" % (runs(), st))

    # The same delivery twice: its callbacks run once.
    before = len(sim.api_requests())
    r1 = deliver(body("item.update", item_id=502, item_revision_id=9))
    r2 = deliver(body("item.update", item_id=502, item_revision_id=9))
    t.ok(r1.status == 200 and r2.status == 200 and "duplicate" in r2.text,
         "a duplicate delivery is acknowledged as such", "%r %r" % (r1, r2))
    r = deliver(body("item.delete", item_id=503))
    sim.wait_until(lambda: logged_for("item.delete", item_id=503) and
                   logged_for("item.update", item_id=502), 30 * SLOW,
                   "502 and 503")
    sim.wait_until(lambda: status(ENV).get("pending") == 0, 30 * SLOW,
                   "an empty spool")
    t.ok(len(logged_for("item.update", item_id=502)) == 1 and
         len(sim.api_requests()) - before == 1,
         "the duplicate ran its callbacks once, with one fetch",
         logged_for("item.update", item_id=502))

    srv.send_signal(signal.SIGTERM)
    try:
        rc = srv.wait(60 * SLOW)
    except subprocess.TimeoutExpired:
        srv.kill()
        rc = srv.wait()
    errf.close()
    t.ok(rc == 0 and "stopped" in server_log(),
         "SIGTERM: the server and its processors stop, exit 0",
         server_log()[-1500:])

    # ------------------------------------------------ drain and status
    # As CGI with cgi_budget 0 nothing is processed after the answer.
    E0 = dict(ENV, PODIO_CGI_BUDGET="0", PODIO_WEBHOOK_CONFIG=CONF)
    for i in (701, 702, 703):
        st_, text, _r = cgi(E0, body("item.delete", item_id=i))
    st = status(ENV)
    t.ok(st.get("pending") == 3 and st.get("in_flight") == 0 and
         st.get("oldest_age_s", -1) >= 0 and
         not logged_for("item.delete", item_id=701),
         "spool status --json counts 3 pending, nothing ran", st)
    r = pw(ENV, "spool", "status")
    t.ok(r.returncode == 0 and "pending:   3" in r.stdout,
         "spool status (text)", r.stdout)
    r = pw(ENV, "spool", "status", "--max-age", "1h", "--max-dead", "0")
    t.ok(r.returncode == 0 and "over" not in r.stdout,
         "spool status --max-age 1h --max-dead 0: nothing passed, exit 0",
         r.stdout + r.stderr)
    r = pw(ENV, "spool", "status", "--max-age", "0s")
    over = [ln for ln in r.stdout.splitlines() if ln.startswith("over ")]
    t.ok(r.returncode == 1 and len(over) == 1 and
         over[0].startswith("over --max-age 0s: the oldest event not yet "
                            "done is "),
         "spool status --max-age 0s: one line, exit 1", r.stdout + r.stderr)
    r = pw(ENV, "spool", "status", "--json", "--max-age", "0s",
           "--max-dead", "5")
    try:
        js = json.loads(r.stdout)
    except ValueError:
        js = {}
    t.ok(r.returncode == 1 and js.get("pending") == 3 and
         len(js.get("alerts", [])) == 1 and
         js["alerts"][0].startswith("over --max-age 0s"),
         "spool status --json with thresholds: \"alerts\", exit 1",
         r.stdout + r.stderr)
    for bad in (["--max-age", "soon"], ["--max-dead", "-1"],
                ["--max-dead"]):
        r = pw(ENV, "spool", "status", *bad)
        t.ok(r.returncode == 2 and r.stdout == "",
             "spool status %s: usage error, exit 2" % " ".join(bad),
             r.stdout + r.stderr)
    r = pw(ENV, "spool", "drain")
    t.ok(r.returncode == 0 and r.stdout.startswith("3 done") and
         all(logged_for("item.delete", item_id=i) for i in (701, 702, 703)),
         "spool drain processes the pending events", r.stdout + r.stderr)
    t.ok(status(ENV).get("pending") == 0, "the spool is empty after drain")

    # Leases: drain gives back the events of a process that is gone; a
    # live process keeps its own.
    for i in (711, 712):
        cgi(E0, body("item.delete", item_id=i))
    if PG_URL:
        leases_pg()
    else:
        leases_sqlite()

    # A dead letter by drain alone, then purged.
    set_fails(1000)
    cgi(E0, body("comment.create", item_id=600, comment_id=3))

    drains = []

    def drained_dead():
        drains.append(pw(ENV, "spool", "drain"))
        return status(ENV).get("dead") == 1
    # ... with on_dead failing: logged, the event stays dead, and it is
    # not run again.
    with open(os.path.join(ALERTS, "fail"), "w") as f:
        f.write("1\n")
    before = alerts()
    sim.wait_until(drained_dead, 60 * SLOW, "dead after drains")
    t.ok(len(runs()) == 3, "drain retries too, up to retry_max", runs())
    r = pw(ENV, "spool", "drain")
    got = alerts(besides=before)
    failed = [d for d in drains if re.search(
        r"event id=\d+ type=comment\.create [^\n]*: on_dead failed: "
        r"[^\n]*exit status 4[^\n]*alert failed on purpose", d.stderr)]
    t.ok(len(got) == 1 and got[0][0].get("attempts") == 3 and
         (got[0][0].get("event") or {}).get("comment_id") == 3 and
         len(failed) == 1 and failed[0].returncode == 0 and
         r.returncode == 0 and status(ENV).get("dead") == 1,
         "spool drain runs on_dead once for the event it set aside; its "
         "failure is logged, the event stays dead", (got, [
             d.stderr[-800:] for d in drains]))
    os.unlink(os.path.join(ALERTS, "fail"))
    r = pw(ENV, "spool", "status", "--max-dead", "0")
    t.ok(r.returncode == 1 and "over --max-dead 0: 1 dead letter" in
         r.stdout, "spool status --max-dead 0 with a dead letter: exit 1",
         r.stdout + r.stderr)
    r = pw(ENV, "spool", "status", "--json", "--max-dead", "1")
    t.ok(r.returncode == 0 and '"alerts": []' in r.stdout,
         "spool status --json --max-dead 1: no alert, exit 0",
         r.stdout + r.stderr)
    r = pw(ENV, "spool", "purge", "--dead", "--older-than", "1h")
    t.ok(r.returncode == 0 and r.stdout.startswith("0 dead") and
         status(ENV).get("dead") == 1,
         "purge --older-than 1h keeps a fresh dead letter", r.stdout)
    r = pw(ENV, "spool", "purge", "--dead", "--older-than", "0s")
    t.ok(r.returncode == 0 and r.stdout.startswith("1 dead") and
         status(ENV).get("dead") == 0,
         "purge --dead --older-than 0s removes it", r.stdout + r.stderr)
    r = pw(ENV, "spool", "purge", "--older-than", "0s")
    t.ok(r.returncode == 2, "purge without --dead: usage error", r.stderr)

    # ------------------------------------------------ CGI: detached child
    # The held GET must outlast the wait for the gate, and the worker's
    # budget its slow start under valgrind (both as by default otherwise).
    E = dict(ENV, PODIO_WEBHOOK_CONFIG=CONF)
    ED = dict(E, PODIO_TIMEOUT="%ds" % (60 * SLOW),
              PODIO_CGI_BUDGET="%ds" % (20 * SLOW))
    sim.add_item(801, title="CGI item")
    gid = sim.gate("/item/801", method="GET")
    r = Detached(ED, body("item.create", item_id=801))
    t.ok(r.status == 200 and r.returncode == 0 and "queued" in r.text,
         "CGI: 200, the process exited and its stdout is closed", repr(r))
    sim.wait_until(lambda: sim.gate_waiting(gid) == 1, 30 * SLOW,
                   "the detached child's GET")
    t.ok(not logged_for("item.create", item_id=801),
         "CGI: the answer came while the item GET was held")
    sim.release(gid)
    sim.wait_until(lambda: logged_for("item.create", item_id=801),
                   30 * SLOW, "the CGI event")
    ev = logged_for("item.create", item_id=801)[0]
    t.ok(ev.get("item", {}).get("title") == "CGI item",
         "CGI: the detached child ran the callbacks with the item", ev)
    # Under valgrind stderr also carries the worker's own report (its
    # exit status reaches no one): it must hold no error.
    err = r.stderr(60 * SLOW)
    t.ok(err is not None and not re.search(r"^==\d+== ", err, re.M),
         "CGI: stderr is let go, with no valgrind error of the worker",
         err)

    # ------------------------------------------------ the spool unwritable
    bad = os.path.join(D, "not-a-dir")
    with open(bad, "w") as f:
        f.write("x")
    # On PostgreSQL: a database nobody answers at (port 1), with a
    # password in its URI that must appear nowhere.
    GONE = "postgresql://podio:gone-db-pw-31337@127.0.0.1:1/podio"
    BAD = {"PODIO_SPOOL_URL": GONE} if PG_URL else {"PODIO_SPOOL_DIR": bad}
    EB = dict(E, **BAD)
    st_, text, r = cgi(EB, body("item.delete", item_id=901))
    t.ok(st_ == 503 and "cannot open the spool" in r.stderr.decode() and
         "gone-db-pw" not in r.stderr.decode() + text,
         "CGI: %s: 503, logged" % ("the database unreachable" if PG_URL
                                   else "spool_dir not a directory"),
         "%r %r %r" % (st_, text, r.stderr))
    st_, text, r = cgi(EB, body("hook.verify", code="abc"))
    t.ok(st_ != 503, "hook.verify does not need the spool", text)
    sock2 = os.path.join(D, "fcgi2.sock")
    log2 = os.path.join(D, "server2.log")
    errf = open(log2, "w")
    srv = testlib.popen([testlib.PODIO_WEBHOOK, "-c", CONF, "serve",
                         "--listen", "unix:" + sock2],
                        env=dict(ENV, **BAD),
                        stdout=subprocess.DEVNULL, stderr=errf)
    sim.wait_until(lambda: os.path.exists(sock2) or srv.poll() is not None,
                   30 * SLOW, "the second server")
    r = fcgi.delivery(sock2, body("item.delete", item_id=902),
                      timeout=60 * SLOW)
    t.ok(r.status == 503 and "try again" in r.text,
         "FastCGI: spool unwritable: 503, nothing acknowledged", repr(r))
    srv.send_signal(signal.SIGTERM)
    t.ok(srv.wait(60 * SLOW) == 0, "the second server stops")
    errf.close()
    if PG_URL:
        t.ok("gone-db-pw" not in testlib.read_text(log2) and
             "***" in testlib.read_text(log2),
             "its log names the database with the password masked",
             testlib.read_text(log2)[-1500:])
    t.ok(not logged_for("item.delete", item_id=901) and
         not logged_for("item.delete", item_id=902),
         "no event of a 503 ran")

t.done()
