#!/usr/bin/env python3
"""Two hosts on one PostgreSQL spool behind one nginx, from
deploy/nginx-two-hosts.conf, end to end against the Podio simulator.

Two `podio-webhook serve` processes stand for two hosts: each has its own
unix socket, its own spool_dir and its own `log * = FILE` rule (the file
says which host ran an event), no token cache, and the same spool_url
with the role's password in it.  exec_timeout = 270s makes the lease of
a taken event 11 minutes (max(5 min, 2 * exec_timeout + 2 * timeout +
60 s)), so nothing below can pass by waiting for a lease to run out.
Deliveries are sent through nginx by a few threads, each retrying its
delivery until it is answered 200, as Podio does; only a 200 counts as
acknowledged.

 1. A host killed (SIGKILL) at a seeded moment of 1,000 deliveries
    (PODIO_TEST_SEED chooses it, the seed is printed), once it holds
    events (it is stopped, its leases read from the database, then
    killed): every acknowledged delivery reaches the callbacks; the
    events the dead host held are run by the other within 60 s; an
    event runs twice only if the dead host held it; nginx passes what
    the dead socket refuses to the other host.
 2. PostgreSQL stopped for 10 s while deliveries go on: 503s meanwhile,
    nothing acknowledged lost, and each host alone stores and runs an
    event afterwards, nothing restarted.
 3. The simulator's tokens live TOKEN_LIFETIME seconds: across both
    hosts at most one token request per lifetime of the run (+1).
 4. A 420 that one host gets pauses the other: with the host that got
    it stopped (SIGSTOP) for the wait Podio named, the other one, given
    events meanwhile, makes no call of that class before the wait is
    over, then fetches them itself.
 5. The password of the spool URL is in no output: the hosts' logs,
    nginx's logs, the events, the answers, `config`, `spool status` and
    `spool list` (also while the database is down); `***` stands for it.
    No sanitizer report in any of them either.

Skipped when not root, without nginx, when this build has no PostgreSQL
backend, or when PostgreSQL 15 cannot be started here.  No check is
about speed: the 60 s of point 1 is a bound ten times below the lease,
and the pause of point 4 is checked on the simulator's request log.
"""
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fcgi  # noqa: E402
import pgserver  # noqa: E402
import scenario  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

USER, GROUP = "nobody", servers.WEB_GROUP
HOOK = scenario.FIRST_HOOK
FORM = "application/x-www-form-urlencoded"
HOSTS = ("a", "b")
# Processor threads of one `serve` (handler/server.c) and units (items)
# one processor takes at once (handler/process.c): what one host can
# have in flight, in items.
PROCESSORS, UNITS = 4, 64
EXEC_TIMEOUT_S = 270
LEASE_S = max(300, 2 * EXEC_TIMEOUT_S + 2 * 30 + 60)
DELIVERIES = 1000            # point 1
SENDERS = 4                  # delivering threads
ITEMS = 300                  # items the deliveries are spread over
TAKEOVER_S = 60              # point 1: the dead host's events run by then
OUTAGE_S = 10                # point 2
TOKEN_LIFETIME = 30          # point 3, seconds
AFTER_KILL = 50              # point 1: deliveries at least, after the kill
PAUSE_S = 4                  # point 4: the wait the 420 names
# After a 420, a call another thread had decided on before the pause was
# recorded may still arrive (the pause starts once the answer is read).
RACE_S = 0.3
EPS_S = 0.005

# ------------------------------------------------------------ the hosts


class Host:
    """One `podio-webhook serve`: its configuration, socket, spool_dir,
    event file and log, under the deployment's root."""

    def __init__(self, dep, name, spool_url):
        self.dep = dep
        self.name = name
        self.dir = servers.mkdir(os.path.join(dep.root, "host-" + name),
                                 0o750, USER, GROUP)
        self.config = os.path.join(dep.etc, "host-%s.conf" % name)
        self.sock = os.path.join(dep.rundir, "host-%s.sock" % name)
        self.events = os.path.join(dep.events, "host-%s.jsonl" % name)
        self.log = os.path.join(dep.root, "host-%s.log" % name)
        self.proc = None
        lines = ["%s = %s" % kv for kv in testlib.DEFAULT_CREDS.items()]
        lines += [
            "api_url = " + dep.sim.url,
            # No token cache: the database keeps the token of both.
            "token_cache =",
            "spool_dir = " + os.path.join(self.dir, "spool"),
            "spool_url = " + spool_url,
            "webhook_secret = " + dep.secret,
            "allowed_hooks = %d" % HOOK,
            "exec_timeout = %ds" % EXEC_TIMEOUT_S,
            "coalesce_window = 500ms",
            "log_level = info",
            "log * = " + self.events,
        ]
        servers.write_file(self.config, "\n".join(lines) + "\n", 0o600,
                           USER, GROUP)
        dep.logs.append(("host %s (serve stderr)" % name, self.log))

    def start(self):
        self.proc = servers.Proc(
            "podio-webhook serve (host %s)" % self.name,
            servers.as_user(USER, GROUP) + [
                self.dep.binary, "-c", self.config, "serve", "--listen",
                "unix:" + self.sock, "--workers", "8", "--socket-mode",
                "0660"], self.log, env=self.dep.env())
        self.proc.start()
        servers.wait_until(lambda: servers.socket_open(self.sock), 30,
                           "the socket of host " + self.name, self.proc)
        return self

    @property
    def pid(self):
        return self.proc.popen.pid

    def kill(self):
        """SIGKILL, and waits until the process is gone."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.popen.wait()

    def pause(self, on):
        """Stops (SIGSTOP) or continues (SIGCONT) the whole process."""
        os.kill(self.pid, signal.SIGSTOP if on else signal.SIGCONT)

    def cli(self, *args):
        """`podio-webhook -c CONFIG ARGS...` as the handler's user."""
        return testlib.run(servers.as_user(USER, GROUP) +
                           [self.dep.binary, "-c", self.config] + list(args),
                           env=self.dep.env(), wrap=False)

    def deliver(self, body):
        """One delivery straight to this host's socket: the status (0
        when there was no answer) and the answer's body."""
        try:
            r = fcgi.delivery(self.sock, body, timeout=30)
            return r.status, r.body.decode(errors="replace")
        except (OSError, fcgi.ProtocolError) as exc:
            return 0, str(exc)


class EventFile:
    """The events one host's `log *` rule wrote, read as the file grows:
    counts of each (item_id, item_revision_id) and lines that did not
    parse."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.rest = b""
        self.count = {}
        self.bad = []
        self.lock = threading.Lock()

    def poll(self):
        with self.lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.offset)
                    data = f.read()
            except OSError:
                return self.count
            self.offset += len(data)
            data = self.rest + data
            lines = data.split(b"\n")
            self.rest = lines.pop()
            for line in lines:
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                    key = (ev["item_id"], ev["item_revision_id"])
                except (ValueError, KeyError, TypeError):
                    self.bad.append(line[:200])
                    continue
                self.count[key] = self.count.get(key, 0) + 1
            return self.count


def body_of(key, secret):
    item_id, rev = key
    return urllib.parse.urlencode([
        ("type", "item.update"), ("hook_id", str(HOOK)),
        ("item_id", str(item_id)), ("item_revision_id", str(rev)),
        ("secret", secret)]).encode()


class Stream:
    """Deliveries through nginx from SENDERS threads: each thread takes
    the next delivery and sends it until it is answered 200 (Podio
    retries too), 0.1 s between tries.  Each delivery is an item.update
    of its own revision of one of ITEMS items.  `more()` says whether to
    start another delivery."""

    def __init__(self, port, secret, first):
        self.port = port
        self.secret = secret
        self.next = first
        self.lock = threading.Lock()
        self.acked = {}        # key -> (first try sent, acknowledged)
        self.tries = []        # (sent, answered, status, key)
        self.unacked = []      # keys given up on
        self.answers = set()   # bodies of the answers other than 200
        self.threads = []
        self.more = lambda: False
        # What a sender waits after each acknowledged delivery: a stream
        # of about SENDERS / gap deliveries a second at most.
        self.gap = 0.02

    @staticmethod
    def key(n):
        return (300000 + n % ITEMS, 7000000 + n)

    def post(self, body):
        try:
            st, _h, text = scenario.http(
                self.port, "POST", "/podio-hook", body,
                {"Content-Type": FORM}, timeout=30)
            return st, text
        except OSError as exc:
            return 0, str(exc)

    def worker(self):
        while True:
            with self.lock:
                if not self.more():
                    return
                key = self.key(self.next)
                self.next += 1
            body = body_of(key, self.secret)
            first = time.monotonic()
            while True:
                sent = time.monotonic()
                st, text = self.post(body)
                done = time.monotonic()
                with self.lock:
                    self.tries.append((sent, done, st, key))
                    if st == 200:
                        self.acked[key] = (first, done)
                    else:
                        self.answers.add("%d %s" % (
                            st, " ".join(text.split())[:300]))
                if st == 200:
                    time.sleep(self.gap)
                    break
                if done - first > 120:
                    with self.lock:
                        self.unacked.append(key)
                    break
                time.sleep(0.1)

    def start(self, more):
        self.more = more
        self.threads = [threading.Thread(target=self.worker, daemon=True)
                        for _ in range(SENDERS)]
        for th in self.threads:
            th.start()

    def join(self, timeout=300):
        deadline = time.monotonic() + timeout
        for th in self.threads:
            th.join(max(0, deadline - time.monotonic()))
        return not any(th.is_alive() for th in self.threads)

    def n_acked(self):
        with self.lock:
            return len(self.acked)


def built_with_postgresql(binary, tmp):
    """(yes, why not): whether the binary under test has the PostgreSQL
    backend, from what `spool status` says of a spool_url."""
    conf = testlib.write_config(
        os.path.join(tmp, "probe.conf"),
        spool_dir=os.path.join(tmp, "spool"),
        spool_url="postgresql://podio@127.0.0.1:1/podio")
    r = testlib.run([binary, "-c", conf, "spool", "status"], wrap=False,
                    env={"PATH": "/usr/bin:/bin", "LANG": "C"})
    if "no PostgreSQL support" in r.stderr:
        return False, ("this build has no PostgreSQL backend (configured "
                       "without libpq): " + r.stderr.strip())
    return True, ""


def waited(fn, timeout, interval=0.1):
    """Polls fn() until it returns a true value or timeout seconds pass;
    returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def pending_events(pg):
    """Events not finished yet (pending, leased or not)."""
    out = pg.psql("SELECT count(*) FROM podio_events WHERE state = "
                  "'pending'", database=pgserver.DATABASE)
    return int(out.strip() or -1)


def leases_of(pg, pid):
    """[(id, item_id, item_revision_id)] of the events whose lease the
    process pid holds (the owner of a lease is "PID-RANDOM-PIDNS")."""
    out = pg.psql(
        "SELECT id, item_id, item_revision_id FROM podio_events WHERE "
        "state = 'pending' AND lease_until IS NOT NULL AND lease_owner "
        "LIKE '%d-%%' ORDER BY id" % pid, database=pgserver.DATABASE)
    return [tuple(int(x) for x in line.split("|"))
            for line in out.splitlines() if line.strip()]


def still_there(pg, ids):
    if not ids:
        return 0
    out = pg.psql("SELECT count(*) FROM podio_events WHERE id IN (%s)" %
                  ",".join(str(i) for i in ids),
                  database=pgserver.DATABASE)
    return int(out.strip() or -1)


def rate_class(r):
    return "filter" if r["path"].endswith("/filter/") else "general"

# ------------------------------------------------------------ the test


# The items whose row of podio_items disagrees with their pending events
# (as tests/test-spool.c checks it).
ITEMS_WRONG = (
    "SELECT count(*) FROM"
    " (SELECT g.item_id, g.head, h.received_at AS first_at, g.last_at,"
    "  g.fetches FROM (SELECT item_id, min(id) AS head,"
    "  max(received_at) AS last_at, count(*) FILTER (WHERE type IN"
    "  ('item.create', 'item.update')) AS fetches FROM podio_events"
    "  WHERE state = 'pending' AND item_id IS NOT NULL GROUP BY item_id) g"
    "  JOIN podio_events h ON h.id = g.head) a"
    " FULL JOIN podio_items i USING (item_id)"
    " WHERE a.head IS DISTINCT FROM i.head"
    " OR a.first_at IS DISTINCT FROM i.first_at"
    " OR a.fetches IS DISTINCT FROM i.fetches"
    " OR NOT coalesce(i.last_at >= a.last_at, false)")


def main():
    t = testlib.Tap()
    servers.require_root(t)
    servers.require_programs(t, servers.NGINX, "setpriv")
    ok, why = built_with_postgresql(testlib.PODIO_WEBHOOK, testlib.tmpdir())
    if not ok:
        t.skip_all(why)
    ok, why = pgserver.available()
    if not ok:
        t.skip_all(why)
    seed = int(os.environ.get("PODIO_TEST_SEED") or
               random.SystemRandom().randrange(1 << 31))
    rng = random.Random(seed)
    t.diag("seed %d (PODIO_TEST_SEED=%d repeats this run)" % (seed, seed))
    started = time.monotonic()

    with testlib.Sim() as sim, pgserver.Server() as pg:
        sim.configure(token_lifetime=TOKEN_LIFETIME)
        dep = scenario.Deployment(sim, USER, GROUP)
        ck = scenario.Checker(t, dep)
        hosts = {n: Host(dep, n, pg.url) for n in HOSTS}
        files = {n: EventFile(h.events) for n, h in hosts.items()}
        outputs = []   # (label, text) of every command run

        def seen():
            """{key: runs} over both hosts' event files."""
            total = {}
            for f in files.values():
                for k, v in f.poll().items():
                    total[k] = total.get(k, 0) + v
            return total

        def all_seen(keys):
            counts = seen()
            return all(k in counts for k in keys)

        def run_cli(host, *args):
            r = host.cli(*args)
            outputs.append(("host %s: %s" % (host.name, " ".join(args)),
                            r.stdout + r.stderr))
            return r

        for h in hosts.values():
            h.start()
        port = servers.free_port()
        site = servers.substitute(
            "nginx-two-hosts.conf", LISTEN="127.0.0.1:%d" % port,
            SERVER_NAME="127.0.0.1", HOST_A="unix:" + hosts["a"].sock,
            HOST_B="unix:" + hosts["b"].sock)
        ngx = servers.Nginx(dep.root, site, port)
        dep.logs[:0] = ngx.logs()
        ngx.start()

        # -------------------------------------------------- 1. kill -9
        victim_name = rng.choice(HOSTS)
        victim = hosts[victim_name]
        other = hosts["b" if victim_name == "a" else "a"]
        kill_at = rng.randrange(DELIVERIES // 5, DELIVERIES * 4 // 5)
        t.diag("host %s is killed once %d of %d deliveries are "
               "acknowledged" % (victim_name, kill_at, DELIVERIES))
        # Item fetches take 0.1 s: the hosts hold their events a while.
        sim.configure(latency_ms=100)
        s1 = Stream(port, dep.secret, 0)
        # The stream goes on past DELIVERIES while the victim is not
        # killed yet, and for AFTER_KILL deliveries after the kill: some
        # are first sent after it, however late it came.
        state1 = {"killed": None, "next": None}
        s1.start(lambda: s1.next < DELIVERIES or state1["next"] is None or
                 s1.next < state1["next"] + AFTER_KILL)
        servers.wait_until(lambda: s1.n_acked() >= kill_at or
                           not any(th.is_alive() for th in s1.threads),
                           120, "%d acknowledged deliveries" % kill_at)
        # Stopped, the victim takes nothing more and keeps its
        # connections (its leases stay marked live): what it holds is
        # read exactly, then it is killed.  A moment when it holds none
        # is passed by.
        held = []
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline:
                victim.pause(True)
                held = leases_of(pg, victim.pid)
                if held:
                    break
                victim.pause(False)
                time.sleep(0.05)
        finally:
            victim.kill()
        killed = state1["killed"] = time.monotonic()
        state1["next"] = s1.next
        acked_at_kill = s1.n_acked()
        t.diag("host %s killed after %d acknowledged deliveries, holding "
               "%d events of %d items (at most %d processors x %d items "
               "in flight)" % (
                   victim_name, acked_at_kill, len(held),
                   len({h[1] for h in held}), PROCESSORS, UNITS))
        held_ids = [h[0] for h in held]
        if held:
            gone = waited(lambda: still_there(pg, held_ids) == 0,
                          TAKEOVER_S - (time.monotonic() - killed), 0.2)
            took = time.monotonic() - killed
            ck.ok(gone, "the %d events the killed host held are finished "
                  "by host %s within %d s of the kill (the lease is %d s)" % (
                      len(held), other.name, TAKEOVER_S, LEASE_S),
                  "%d still in the spool after %.1f s" % (
                      still_there(pg, held_ids), took))
            t.diag("the killed host's events were finished %.1f s after "
                   "the kill" % took)
            other_count = files[other.name].poll()
            ck.ok(all(other_count.get((h[1], h[2])) for h in held),
                  "host %s ran every event the killed host held" %
                  other.name, repr([h for h in held
                                    if not other_count.get((h[1], h[2]))]))
        else:
            t.skip("the killed host's events are finished by the other",
                   "the killed host held no event in 15 s of tries")
            t.skip("the other host ran them", "nothing held")
        ck.ok(s1.join(), "the senders of point 1 finished")
        sim.configure(latency_ms=0)
        acked1 = dict(s1.acked)
        ck.ok(len(acked1) == s1.next and not s1.unacked,
              "all %d deliveries were acknowledged (200) in the end" %
              s1.next, "%d acknowledged, given up: %r" % (
                  len(acked1), s1.unacked[:10]))
        everything = waited(lambda: all_seen(acked1), 60, 0.25)
        counts = seen()
        ck.ok(everything, "every acknowledged delivery reached the "
              "callbacks (of one host or the other)",
              "missing: %r" % [k for k in acked1 if k not in counts][:20])
        by_host = {n: sum(1 for k in acked1 if files[n].count.get(k))
                   for n in HOSTS}
        t.diag("events run by host a: %d, by host b: %d" % (
            by_host["a"], by_host["b"]))
        ck.ok(by_host[victim_name] > 0 and by_host[other.name] > 0,
              "both hosts ran events before the kill", repr(by_host))
        twice = sorted(k for k in acked1 if counts.get(k, 0) > 1)
        held_keys = {(h[1], h[2]) for h in held}
        t.diag("events run twice: %d (the killed host held %d)" % (
            len(twice), len(held)))
        ck.ok(all(counts.get(k, 0) <= 2 for k in acked1) and
              set(twice) <= held_keys,
              "an event ran twice only if the killed host held it when it "
              "died (%d of %d)" % (len(twice), len(held)),
              "twice but not held: %r\nmore than twice: %r" % (
                  sorted(set(twice) - held_keys)[:20],
                  [k for k in acked1 if counts.get(k, 0) > 2][:20]))
        ck.ok(len({h[1] for h in held}) <= PROCESSORS * UNITS,
              "the killed host held at most %d items (its processors x "
              "the items of one take)" % (PROCESSORS * UNITS),
              "%d items" % len({h[1] for h in held}))
        after = [tr for tr in s1.tries if tr[0] > killed]
        firsts = {}
        for tr in sorted(s1.tries):
            firsts.setdefault(tr[3], tr)
        late = [tr for tr in firsts.values() if tr[0] > killed]
        refused = len([tr for tr in s1.tries if tr[2] != 200])
        t.diag("answers other than 200 in point 1: %d (retried by the "
               "senders); deliveries first sent after the kill: %d" % (
                   refused, len(late)))
        ck.ok(late and all(tr[2] == 200 for tr in late),
              "every delivery first sent after the kill got 200 at once: "
              "nginx passed what the dead socket refused to host %s" %
              other.name, repr([tr for tr in late if tr[2] != 200][:10]))
        # The requests the victim had when it died end in 502 (nginx
        # does not send a POST again once it went out); then nginx
        # skips the host for fail_timeout, or finds its socket refusing.
        errlog = testlib.read_text(ngx.error_log)
        sock = re.escape("unix:" + victim.sock)
        ck.ok(after and re.search(
            r"connect\(\) to %s failed|upstream server temporarily "
            r"disabled .*upstream: \"fastcgi://%s" % (sock, sock), errlog),
              "nginx's error log shows it took the dead host out of turn",
              servers.tail(ngx.error_log, 10))

        # The killed host comes back (a new process, the same socket).
        victim.start()

        # -------------------------------------------------- 2. outage
        logged2 = {n: len(testlib.read_text(h.log)) for n, h in hosts.items()}
        s2 = Stream(port, dep.secret, s1.next)
        state = {"down": None, "up": None}

        def more2():
            # Until 100 deliveries were acknowledged after the database
            # came back.
            if state["up"] is None:
                return True
            return sum(1 for first, _ in s2.acked.values()
                       if first > state["up"]) < 100
        s2.start(more2)
        servers.wait_until(lambda: s2.n_acked() >= 100, 60,
                           "100 deliveries before the outage")
        pg.stop(mode="immediate")
        state["down"] = time.monotonic()
        # The command line meanwhile: an error, with the URL masked.
        r = run_cli(hosts["a"], "spool", "status")
        ck.ok(r.returncode != 0 and "***" in r.stderr and
              pg.password not in r.stderr,
              "spool status while the database is down fails, naming the "
              "spool with its password masked", r.stdout + r.stderr)
        run_cli(hosts["b"], "spool", "list")
        time.sleep(max(0, state["down"] + OUTAGE_S - time.monotonic()))
        pg.start()
        state["up"] = time.monotonic()
        ck.ok(s2.join(), "the senders of point 2 finished")
        during = [tr for tr in s2.tries
                  if state["down"] < tr[0] and tr[1] < state["up"]]
        n503 = len([tr for tr in during if tr[2] == 503])
        t.diag("during the %d s outage: %d tries, %d answered 503, %d "
               "answered 200" % (OUTAGE_S, len(during), n503,
                                 len([tr for tr in during if tr[2] == 200])))
        back = [tr for tr in s2.tries if tr[0] > state["up"]]
        t.diag("after the database was back: %d tries, %d answered 503" % (
            len(back), len([tr for tr in back if tr[2] == 503])))
        ck.ok(n503 > 0, "deliveries during the outage are answered 503",
              repr(sorted({tr[2] for tr in during})))
        ck.ok(not s2.unacked, "every delivery of point 2 was acknowledged "
              "after the outage", repr(s2.unacked[:10]))
        acked2 = dict(s2.acked)
        everything = waited(lambda: all_seen(acked2), 60, 0.25)
        counts = seen()
        ck.ok(everything, "nothing acknowledged was lost: each of the %d "
              "deliveries answered 200 reached the callbacks" % len(acked2),
              "missing: %r" % [k for k in acked2 if k not in counts][:20])
        after_up = [k for k, (first, _) in acked2.items()
                    if first > state["up"]]
        ck.ok(len(after_up) >= 100 and all(k in counts for k in after_up),
              "deliveries after the outage are answered 200 and processed "
              "(%d)" % len(after_up))
        twice2 = len([k for k in acked2 if counts.get(k, 0) > 1])
        gave = {n: testlib.read_text(h.log)[logged2[n]:].count(
            "without finishing them given back") for n, h in hosts.items()}
        t.diag("events of point 2 run twice: %d; leases given back after "
               "the outage, logged by host a: %d times, by host b: %d "
               "times" % (twice2, gave["a"], gave["b"]))
        # Each host alone: the other stopped (SIGSTOP), a delivery to its
        # socket is stored and run by it.
        n_next = s2.next + 10
        for name, h in hosts.items():
            rest = [x for x in hosts.values() if x is not h][0]
            key = Stream.key(n_next)
            n_next += 1
            rest.pause(True)
            try:
                got = waited(lambda: h.deliver(body_of(key, dep.secret))[0]
                             == 200, 30, 0.5)
                ran = got and waited(
                    lambda: files[name].poll().get(key), 30, 0.1)
            finally:
                rest.pause(False)
            ck.ok(got and ran, "host %s alone, after the outage: a "
                  "delivery to its socket is answered 200 and the host "
                  "runs it" % name, "answered 200: %r, ran: %r" % (got, ran))

        # -------------------------------------------------- 4. 420
        # The next item fetch gets a 420 naming PAUSE_S seconds.  The
        # host that got it is then stopped (SIGSTOP) for the wait: the
        # other one, given events meanwhile, must not call the API of
        # that class until the wait is over, and then fetch them itself.
        waited(lambda: pending_events(pg) == 0, 60, 0.2)
        since = max([r["id"] for r in sim.requests()] or [0])
        logged = {n: len(testlib.read_text(h.log)) for n, h in hosts.items()}
        sim.fail("/item/", status=420, count=1,
                 error_description="You have hit the rate limit. Please "
                 "wait %d seconds before trying again" % PAUSE_S)
        first = Stream.key(n_next)
        n_next += 1
        st = hosts["a"].deliver(body_of(first, dep.secret))[0]
        r420 = waited(lambda: [r for r in sim.requests(since=since)
                               if r["status"] == 420 and r["done_mono"]],
                      30, 0.05)
        ck.ok(st == 200 and r420, "the next item fetch got 420", st)

        def pausers():
            """The hosts that logged pausing everyone since the 420."""
            return [n for n, h in hosts.items()
                    if "of every process sharing the spool pause" in
                    testlib.read_text(h.log)[logged[n]:]]
        got = waited(pausers, 10, 0.05) if r420 else []
        ck.ok(len(got) == 1, "one host logged the 420 and the pause of "
              "every process sharing the spool", repr(got))
        if r420 and len(got) == 1:
            r420 = r420[0]
            end = r420["done_mono"] + PAUSE_S
            x = hosts[got[0]]
            y = [h for h in hosts.values() if h is not x][0]
            t.diag("host %s got the 420 (%s %s); host %s alone runs "
                   "during the wait" % (x.name, r420["method"],
                                        r420["path"], y.name))
            during_keys = []
            answers = []
            status_json = None
            x.pause(True)
            try:
                time.sleep(max(0, r420["done_mono"] + RACE_S + 0.1 -
                               time.monotonic()))
                for _ in range(3):
                    key = Stream.key(n_next)
                    n_next += 1
                    during_keys.append(key)
                    answers.append(y.deliver(body_of(key, dep.secret))[0])
                # The shared state as a third process sees it.
                r = run_cli(y, "spool", "status", "--json")
                if time.monotonic() < end - 0.2:
                    try:
                        status_json = json.loads(r.stdout)
                    except ValueError:
                        status_json = {"output": r.stdout + r.stderr}
                run_cli(y, "spool", "list")
                if time.monotonic() >= end:
                    t.diag("the deliveries during the wait took longer "
                           "than the wait: the check below is weaker")
                ran = waited(lambda: all(files[y.name].poll().get(k)
                                         for k in during_keys), 60, 0.2)
            finally:
                x.pause(False)
            ck.ok(answers == [200] * len(answers),
                  "deliveries to host %s during the wait: 200" % y.name,
                  answers)
            ck.ok(ran, "host %s ran the events it got during the wait "
                  "(host %s stopped)" % (y.name, x.name))
            ck.ok(waited(lambda: all_seen([first]), 60, 0.2),
                  "the event whose fetch got the 420 is run too")
            reqs = [r for r in sim.requests(since=since)
                    if r["path"] != "/oauth/token"]
            cls = rate_class(r420)
            bad = ["%s %s at +%.3f s" % (r["method"], r["path"],
                                         r["mono"] - r420["done_mono"])
                   for r in reqs
                   if rate_class(r) == cls and
                   r420["done_mono"] + RACE_S < r["mono"] < end - EPS_S]
            later = [r for r in reqs if r["path"].startswith("/item/")
                     and r["mono"] >= end - EPS_S]
            ck.ok(not bad and later,
                  "the 420 host %s got paused host %s: no %s call reached "
                  "the simulator during the %d s Podio named; the events "
                  "were fetched after it" % (x.name, y.name, cls, PAUSE_S),
                  "\n".join(bad) + "\n" + "\n".join(
                      "%s %s %s +%.3f" % (r["method"], r["path"],
                                          r["status"], r["mono"] -
                                          r420["done_mono"])
                      for r in reqs))
            if status_json is not None:
                key = "filter_paused_s" if cls == "filter" else \
                    "api_paused_s"
                ck.ok((status_json.get(key) or 0) > 0,
                      "spool status (a third process) shows the pause "
                      "(%s)" % key, repr(status_json))
            else:
                t.skip("spool status shows the pause",
                       "it answered after the pause had ended")
        else:
            for name in ("deliveries during the wait", "run by the other",
                         "the first event run", "no call during the wait",
                         "spool status"):
                t.skip(name, "no 420 was seen")

        # -------------------------------------------------- 3. tokens
        tokens = sim.token_requests()
        first_token = min([r["mono"] for r in tokens] or [time.monotonic()])
        # Run long enough for the token to be renewed twice: one event
        # a second until the simulator issued a third token (and more
        # than two lifetimes went by), or 3 lifetimes passed.  The parts
        # before may have taken longer than that (a slow machine, the
        # 420's pause without calls): the 3 lifetimes count from now then.
        loop_from = time.monotonic()
        deadline = max(first_token, loop_from) + 3 * TOKEN_LIFETIME + 10
        while time.monotonic() < deadline and (
                len(sim.token_requests()) < 3 or
                time.monotonic() < first_token + 2 * TOKEN_LIFETIME + 1):
            key = Stream.key(n_next)
            n_next += 1
            hosts[HOSTS[n_next % 2]].deliver(body_of(key, dep.secret))
            waited(lambda: key in seen(), 10, 0.1)
            time.sleep(0.5)
        waited(lambda: pending_events(pg) == 0, 30, 0.2)
        tokens = sim.token_requests()
        api = [r for r in sim.requests() if r["path"] != "/oauth/token"]
        last = max([r["mono"] for r in api] or [first_token])
        elapsed = last - first_token
        lifetimes = max(1, math.ceil(elapsed / TOKEN_LIFETIME))
        expired = len([r for r in api if r["status"] == 401])
        t.diag("the database was down from +%.1f s to +%.1f s of the "
               "first token request" % (state["down"] - first_token,
                                        state["up"] - first_token))
        t.diag("%d token requests over %.1f s of API calls (token "
               "lifetime %d s: %d lifetimes); %d calls answered 401" % (
                   len(tokens), elapsed, TOKEN_LIFETIME, lifetimes,
                   expired))
        ck.ok(len(tokens) >= 3,
              "the token was renewed at least twice during the run",
              "%d token requests at %s s; one event a second from +%.1f s "
              "to +%.1f s of the first" % (
                  len(tokens), ", ".join("+%.1f" % (r["mono"] - first_token)
                                         for r in tokens),
                  loop_from - first_token, time.monotonic() - first_token))
        ck.ok(len(tokens) <= lifetimes + 1,
              "one token request per token lifetime across both hosts "
              "(%d for %d lifetimes)" % (len(tokens), lifetimes),
              "\n".join("%s +%.1f s -> %s" % (r["method"],
                                             r["mono"] - first_token,
                                             r["status"]) for r in tokens))

        # -------------------------------------------------- 5. password
        r = run_cli(hosts["a"], "config")
        ck.ok(r.returncode == 0 and re.search(
            r"^spool_url = postgresql://podio:\*\*\*@127\.0\.0\.1:%d/podio$"
            % pg.port, r.stdout, re.M),
              "config shows spool_url with the password as ***", r.stdout)
        r = run_cli(hosts["b"], "spool", "status", "--json")
        ck.ok(r.returncode == 0, "spool status works once more",
              r.stdout + r.stderr)
        run_cli(hosts["a"], "spool", "list")
        run_cli(hosts["b"], "spool", "status")
        ck.ok(not any(pg.password in a for a in s1.answers | s2.answers),
              "the answers other than 200 do not hold the password",
              "\n".join(sorted(s1.answers | s2.answers))[:2000])
        t.diag("answers other than 200: %s" % " | ".join(
            sorted(s1.answers | s2.answers))[:1500])
        for n in HOSTS:
            ck.ok(not files[n].bad, "every line of host %s's event file "
                  "is an event" % n, repr(files[n].bad[:3]))
        scenario.stop_all(ck, ngx, *[h.proc for h in hosts.values()])
        for h in hosts.values():
            ck.is_(h.proc.stopped_status, 0,
                   "host %s exits 0 on SIGTERM" % h.name)
        texts = [(label, testlib.read_text(path)) for label, path in
                 dep.logs + [("nginx access log", ngx.access_log),
                             ("nginx stderr", os.path.join(
                                 ngx.dir, "logs", "stderr.log"))]]
        texts += [("events of host %s" % n, testlib.read_text(h.events))
                  for n, h in hosts.items()]
        texts += outputs
        san = [label for label, text in texts
               if any(m in text for m in scenario.SANITIZER_MARKS)]
        ck.ok(not san, "no sanitizer report in the logs", ", ".join(san))
        # The appends, takes and removals of both hosts met on the items'
        # rows (podio_items) without ever waiting for each other in a
        # circle: the database found no deadlock.
        deadlocks = [line for line in testlib.read_text(pg.log).splitlines()
                     if "deadlock detected" in line]
        ck.ok(not deadlocks, "the database logged no deadlock",
              "\n".join(deadlocks[:5]))
        ck.is_(int(pg.psql(ITEMS_WRONG, database=pgserver.DATABASE)), 0,
               "podio_items agrees with the pending events at the end")
        leaks = [label for label, text in texts if pg.password in text]
        labels = []
        for label, _ in texts:
            if label not in labels:
                labels.append(label)
        ck.ok(not leaks, "the password is in none of: %s" % ", ".join(
            labels),
              "found in: %s" % ", ".join(leaks))
        masked = [label for label, text in texts if "podio:***@" in text]
        t.diag("the URL appears masked in: %s" % ", ".join(masked))
        down = [n for n, h in hosts.items()
                if "podio:***@127.0.0.1:%d" % pg.port in
                testlib.read_text(h.log)]
        ck.ok(down == list(HOSTS), "both hosts name the spool with its "
              "password masked in their logs", repr(down))
    t.diag("the test took %.0f s" % (time.monotonic() - started))
    t.done()


testlib.main(main)
