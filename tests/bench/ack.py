#!/usr/bin/env python3
"""The benchmark of podio-webhook's main job (run by tests/bench/ack and
`make bench`).

nginx on 127.0.0.1 passes the same deliveries (posted by wrk, see
ack.lua) to three FastCGI backends in turn:

  - tests/bench/fcgi-minimal, which reads the body and answers 200
    (minimal);
  - the same with a file to flush (minimal+sync, the flushing reference
    of the targets): it writes each body to a preallocated file on the
    spool's disk and answers once an fdatasync that began after the write
    returned, one flush shared by the writes that queued meanwhile.  The
    simplest responder that stores before it answers: what flushing alone
    costs on this disk;
  - podio-webhook serve --workers 16, which stores every event in its
    spool (SQLite WAL, synchronous=FULL: fdatasync before the 200) while
    its spool processors take, fetch and finish the events: each run
    starts it on a fresh spool, with a `log * = FILE` callback, fetching
    items from tests/bench/api-standin.py (an API stand-in on 127.0.0.1
    that answers at once and counts the calls and TCP connections);
  - podio-webhook again with its API closed (a loopback port nothing
    listens on): item.create and item.update wait as in a Podio outage,
    so this row is the intake alone.

Sections, each run in every round, the backends alternating: item events
(ack.lua's default: item.update of items drawn from a pool of 2,000,
item.create and item.delete of new items, every delivery unique) at 16
and at 64 connections, and comment.create at 16.  After the rounds:

  - the drain rate: a fresh spool filled with item events beforehand
    (tests/bench/spool-fill), podio-webhook started against the stand-in,
    timed until the spool is empty: events fully processed (item
    fetched, the log callback written) per second, with the API calls
    and the TCP connections the processors opened;
  - 100,000 pending events: a spool filled so, podio-webhook started on
    it with the API closed; its CPU while it holds them and receives
    nothing, then the item load at 16 connections, rounds interleaved with
    the flushing reference.

It prints the figures of each run (with the fdatasync+fsync calls
podio-webhook made per acknowledged event, counted by an LD_PRELOAD shim,
tests/bench/sync-count.c), the medians, their ratios to the flushing
reference measured in the same runs, and each target as met or NOT met
(by how much).

A benchmark, not a test: it prints figures and exits 0 whatever they
are, also when wrk, nginx or a program is missing (it says why).

Usage: ack.py [BUILDDIR]   (default: $top_builddir, else .)
Environment: PODIO_BENCH_SECONDS (per run, default 10),
PODIO_BENCH_ROUNDS (default 2), PODIO_BENCH_CONNECTIONS (default 16),
PODIO_BENCH_CONNECTIONS_HIGH (default 64), PODIO_BENCH_PENDING (events
pending in that row, default 100000; 0: no such row),
PODIO_BENCH_DRAIN_EVENTS (default 50000; 0: no drain row),
PODIO_BENCH_IDLE_SECONDS (how long the idle CPU is measured, default 20),
PODIO_BENCH_DIR (where the spools go, default BUILDDIR: it must be on
the disk to measure, not on a tmpfs), PODIO_BENCH_WRAPPER (a command
prefixed to podio-webhook's, e.g. "strace -f -c -w -o FILE" to see where
its time goes; the figures are then those of the wrapped server).
"""

import atexit
import json
import os
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))

# The targets, each against the flushing reference of the same run.
TARGET_RATIO = 0.9        # requests/s, item events, 16 and 64 connections
TARGET_P99_MS = 10.0      # p99 at 16 connections
TARGET_P99_HIGH = 1.2     # p99 at 64 connections, times the reference's
TARGET_PENDING = 0.9      # the ratio with events pending, times the empty
TARGET_IDLE_CPU = 2.0     # % of one core, idle, holding them in an outage
API_APP_ID = 4242         # the app of every item the stand-in serves
servers = None            # tests/e2e/servers.py, imported in main()
WORKERS = 16
WRK_THREADS = 2
PROBE_SYNCS = 200
PROBE_SIZE = 4096
DRAIN_TIMEOUT_S = 120
SETTLE_LIMIT_S = 60      # the most the pending row waits for a calm server


def say(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def give_up(why):
    """Says why the benchmark does not run; exits 0 (never fails)."""
    say("ack benchmark: not run: " + why)
    sys.exit(0)


def env_int(name, default, low, high):
    try:
        v = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return min(max(v, low), high)


def percentile(values, p):
    """Nearest-rank percentile p (0-100) of values (not empty)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def fstype(path):
    """The file system type of the mount holding path ("?" if unknown)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mnt = fields[1].replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) \
                        and len(mnt) >= len(best):
                    best, kind = mnt, fields[2]
    except OSError:
        pass
    return kind

# ------------------------------------------------------------------ disk


def probe_fdatasync(directory):
    """Appends PROBE_SIZE bytes and fdatasyncs, PROBE_SYNCS times, in a
    file of directory (as a WAL grows).  Returns the latencies in ms."""
    path = os.path.join(directory, "fdatasync-probe")
    block = b"\xa5" * PROBE_SIZE
    lat = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fdatasync(fd)
        for _ in range(PROBE_SYNCS):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t0) * 1000.0)
    finally:
        os.close(fd)
        os.unlink(path)
    return lat

# ------------------------------------------------------------------ shim


def build_shim(outdir):
    """Compiles sync-count.c into outdir; returns the .so path, or None
    (with the compiler's message printed) when it cannot be built."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        say("note: no C compiler: fdatasync calls are not counted")
        return None
    so = os.path.join(outdir, "sync-count.so")
    r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", so,
                        os.path.join(HERE, "sync-count.c"), "-ldl"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        say("note: cannot build the counting shim: fdatasync calls are not "
            "counted:\n" + r.stderr.strip())
        return None
    return so


GROUP = 6
COUNTERS = 2 * GROUP


def read_counts(path):
    """The shim's counters: for request threads (intake), then for the
    other threads (spool processors): fdatasync calls, ns in fdatasync,
    fsync calls, ns in fsync, flock(LOCK_EX) calls, ns in them (the wait
    for the spool's write lock).  Zeros when the file is missing."""
    try:
        with open(path, "rb") as f:
            data = f.read(8 * COUNTERS)
    except OSError:
        data = b""
    if len(data) < 8 * COUNTERS:
        return (0,) * COUNTERS
    return tuple(int.from_bytes(data[i:i + 8], sys.byteorder)
                 for i in range(0, 8 * COUNTERS, 8))


def cpu_seconds(pid):
    """User + system CPU seconds used by process pid (all its threads)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / \
            os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def diff(a, b):
    """b - a: {"intake": (calls, ns), "processors": (calls, ns),
    "intake_lock": (calls, ns), "processors_lock": (calls, ns)}, where
    calls are fdatasync + fsync calls, or write lock waits."""
    d = [y - x for x, y in zip(a, b)]
    out = {}
    for who, base in (("intake", 0), ("processors", GROUP)):
        out[who] = (d[base] + d[base + 2], d[base + 1] + d[base + 3])
        out[who + "_lock"] = (d[base + 4], d[base + 5])
    return out


# ------------------------------------------------------------------ wrk

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    m = re.match(r"([0-9.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * _UNIT_MS[m.group(2)] if m else None


def parse_wrk(out):
    """The figures of wrk --latency's output, or None when it has none."""
    fig = {}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not m:
        return None
    fig["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([0-9.]+\w+)", out)
    fig["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    fig["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", out)
    fig["socket_errors"] = sum(
        int(x) for x in re.findall(r"\d+", m.group(1))) if m else 0
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+(\S+)" % pct, out, re.M)
        fig["p" + pct] = to_ms(m.group(1)) if m else None
    fig["acks"] = fig["requests"] - fig["non2xx"]
    return fig


def run_wrk(url, script, seconds, connections, secret, run, scenario):
    argv = ["wrk", "-t", str(WRK_THREADS), "-c", str(connections),
            "-d", "%ds" % seconds, "--latency", "-s", script, url,
            "--", secret, str(run), scenario]
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=seconds * 3 + 60)
    fig = parse_wrk(r.stdout)
    if fig is None:
        raise RuntimeError("wrk gave no figures (exit %d):\n%s%s" % (
            r.returncode, r.stdout, r.stderr))
    return fig

# ------------------------------------------------------------------ figures


def ms_per(calls_ns):
    """Mean ms per call of a (calls, ns) pair; None without calls."""
    return calls_ns[1] / calls_ns[0] / 1e6 if calls_ns[0] else None


def median_of(figs, key):
    """The median of key over runs (None when no run had it)."""
    v = [f[key] for f in figs if f.get(key) is not None]
    return statistics.median(v) if v else None


def fmt_ms(v):
    return "?" if v is None else "%.2f ms" % v


def verdict(value, target, at_least):
    """'met' or 'NOT met (N% short)' of value against target (at_least:
    value >= target, else value <= target, or < for at_least None)."""
    if value is None or not target:
        return "not measured"
    if at_least:
        ok = value >= target
        miss = (target - value) / target
    else:
        ok = value < target if at_least is None else value <= target
        miss = (value - target) / target
    return "met" if ok else "NOT met (%.0f%% %s)" % (
        miss * 100.0, "short" if at_least else "over")


def count_lines(path, needle=None):
    """Lines of the file (holding needle, when given); 0 if missing."""
    n = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                if needle is None or needle in line:
                    n += 1
    except OSError:
        pass
    return n

# ------------------------------------------------------------------ main


class Bench:
    """The servers of the benchmark and how podio-webhook is started."""

    def __init__(self, builddir, root, spool_parent, secret, shim,
                 counts_file):
        self.webhook = os.path.join(builddir, "handler", "podio-webhook")
        self.fill = os.path.join(builddir, "tests", "bench", "spool-fill")
        self.root = root
        self.spool_parent = spool_parent
        self.secret = secret
        self.counts_file = counts_file
        self.sock = os.path.join(root, "podio-webhook.sock")
        self.closed_api = "http://127.0.0.1:%d" % servers.free_port()
        self.api = None          # the stand-in's URL, once it listens
        self.serial = 0
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PODIO_") and k != "LD_PRELOAD"}
        # The status command and the filler run without the shim: their
        # calls are not the server's.
        self.plain_env = dict(env)
        if shim:
            env["LD_PRELOAD"] = shim
            env["PODIO_BENCH_SYNC_COUNTS"] = counts_file
        self.env = env

    def new_spool(self):
        self.serial += 1
        d = os.path.join(self.spool_parent, "run-%d" % self.serial)
        return d

    def start(self, spool, api_url):
        """Starts podio-webhook serve on spool with its API at api_url;
        returns (proc, env of its commands, its callback log)."""
        self.serial += 1
        tag = "podio-webhook-%d" % self.serial
        conf = os.path.join(self.root, tag + ".conf")
        events = os.path.join(self.root, tag + ".events")
        # Every event reaches a log callback: processed means fetched (for
        # item.create and item.update) and written there.
        servers.write_file(conf, "\n".join([
            "client_id = bench",
            "client_secret = bench",
            "app_id = %d" % API_APP_ID,
            "app_token = bench",
            "webhook_secret = " + self.secret,
            "spool_dir = " + spool,
            "api_url = " + api_url,
            "token_cache = ",
            "log * = " + events,
            ""]), mode=0o600)
        env = dict(self.env, PODIO_WEBHOOK_CONFIG=conf)
        proc = servers.Proc(
            "podio-webhook serve",
            shlex.split(os.environ.get("PODIO_BENCH_WRAPPER", "")) +
            [self.webhook, "serve", "--listen", "unix:" + self.sock,
             "--workers", str(WORKERS), "--socket-mode", "0666"],
            os.path.join(self.root, tag + ".log"), env=env)
        proc.start()
        servers.wait_until(lambda: servers.socket_open(self.sock), 30,
                           "the podio-webhook socket", proc)
        return proc, dict(self.plain_env, PODIO_WEBHOOK_CONFIG=conf), events

    def status(self, env):
        r = subprocess.run([self.webhook, "spool", "status", "--json"],
                           env=env, capture_output=True, text=True,
                           timeout=60)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    def drained(self, env):
        st = self.status(env)
        return st.get("pending") == 0 and st.get("in_flight") == 0 and \
            st.get("retrying") == 0

    def fill_spool(self, spool, count):
        """Fills spool with count item events; returns the filler's line."""
        r = subprocess.run([self.fill, spool, str(count)],
                           env=self.plain_env, capture_output=True,
                           text=True, timeout=3600)
        if r.returncode != 0:
            raise RuntimeError("spool-fill failed:\n" + r.stdout + r.stderr)
        return r.stdout.strip()

    def api_stats(self, reset=False):
        """The stand-in's counts ({} without it); reset sets them to 0."""
        if not self.api:
            return {}
        req = urllib.request.Request(
            self.api + ("/__reset" if reset else "/__stats"),
            data=b"" if reset else None)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return {}


def settle(proc, seconds, limit):
    """Waits (at most limit seconds) until proc used under 10% of a core
    over seconds; returns how long it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        c0 = cpu_seconds(proc.popen.pid)
        time.sleep(seconds)
        if cpu_seconds(proc.popen.pid) - c0 < 0.1 * seconds:
            break
    return time.monotonic() - t0


def main():
    builddir = os.path.abspath(
        (sys.argv[1] if len(sys.argv) > 1 else "") or
        os.environ.get("top_builddir") or ".")
    os.environ["top_builddir"] = builddir
    os.environ.setdefault("top_srcdir", SRCDIR)
    webhook = os.path.join(builddir, "handler", "podio-webhook")
    minimal = os.path.join(builddir, "tests", "bench", "fcgi-minimal")
    fill = os.path.join(builddir, "tests", "bench", "spool-fill")
    for prog, how in ((webhook, "make"),
                      (minimal, "make tests/bench/fcgi-minimal"),
                      (fill, "make tests/bench/spool-fill")):
        if not os.access(prog, os.X_OK):
            give_up("%s is missing (build it: %s)" % (prog, how))
    if not shutil.which("wrk"):
        give_up("wrk is not installed")
    sys.path.insert(0, os.path.join(SRCDIR, "tests", "e2e"))
    global servers
    import servers  # noqa: E402  (needs top_builddir set above)
    if not os.access(servers.NGINX, os.X_OK):
        give_up("nginx is not installed (%s)" % servers.NGINX)
    if os.geteuid() == 0:
        try:
            servers.grp_gid(servers.WEB_GROUP)
        except KeyError:
            give_up("no group %s for nginx's workers" % servers.WEB_GROUP)

    seconds = env_int("PODIO_BENCH_SECONDS", 10, 1, 600)
    rounds = env_int("PODIO_BENCH_ROUNDS", 2, 1, 20)
    conns = env_int("PODIO_BENCH_CONNECTIONS", 16, 1, 1024)
    conns_high = env_int("PODIO_BENCH_CONNECTIONS_HIGH", 64, 1, 1024)
    pending_n = env_int("PODIO_BENCH_PENDING", 100000, 0, 10000000)
    drain_n = env_int("PODIO_BENCH_DRAIN_EVENTS", 50000, 0, 10000000)
    idle_s = env_int("PODIO_BENCH_IDLE_SECONDS", 20, 1, 600)
    parent = os.path.abspath(os.environ.get("PODIO_BENCH_DIR") or builddir)

    root = servers.make_root()           # sockets, nginx, logs, the shim
    spool_parent = tempfile.mkdtemp(prefix="bench-spool-", dir=parent)

    def remove_spool():
        servers.cleanup()                # the server first: it uses it
        shutil.rmtree(spool_parent, ignore_errors=True)
    atexit.register(remove_spool)
    kind = fstype(spool_parent)

    say("podio-webhook main-job benchmark: nginx + wrk, %d and %d "
        "connections, %d threads, %d s per run, %d rounds; %d CPUs" % (
            conns, conns_high, WRK_THREADS, seconds, rounds,
            os.cpu_count() or 0))
    lat = probe_fdatasync(spool_parent)
    say("disk: write %d KiB + fdatasync, %d times, in %s (%s): median %s, "
        "p99 %s" % (PROBE_SIZE // 1024, PROBE_SYNCS, spool_parent, kind,
                    fmt_ms(statistics.median(lat)),
                    fmt_ms(percentile(lat, 99))))
    if kind in ("tmpfs", "ramfs"):
        say("warning: the spool is on a %s: fdatasync costs nothing there; "
            "set PODIO_BENCH_DIR to a directory on the disk" % kind)

    shim = build_shim(root)
    counts_file = os.path.join(root, "sync-counts")
    b = Bench(builddir, root, spool_parent, secrets.token_hex(16), shim,
              counts_file)

    sock_minimal = os.path.join(root, "fcgi-minimal.sock")
    sock_flushing = os.path.join(root, "fcgi-minimal-sync.sock")
    mini = servers.Proc("fcgi-minimal",
                        [minimal, "unix:" + sock_minimal, str(WORKERS)],
                        os.path.join(root, "fcgi-minimal.log"))
    flushing = servers.Proc(
        "fcgi-minimal (flushing)",
        [minimal, "unix:" + sock_flushing, str(WORKERS),
         os.path.join(spool_parent, "minimal-sync.ring")],
        os.path.join(root, "fcgi-minimal-sync.log"))
    port_file = os.path.join(root, "api-standin.port")
    api = servers.Proc("the API stand-in",
                       [sys.executable, os.path.join(HERE, "api-standin.py"),
                        port_file],
                       os.path.join(root, "api-standin.log"))
    port = servers.free_port()
    site = """\
server {
    listen 127.0.0.1:%(port)d;
    server_name 127.0.0.1;
    client_max_body_size 1m;
    client_body_buffer_size 64k;
    location = /podio-hook {
        include fastcgi_params;
        fastcgi_pass unix:%(webhook)s;
    }
    location = /minimal {
        include fastcgi_params;
        fastcgi_pass unix:%(minimal)s;
    }
    location = /minimal-sync {
        include fastcgi_params;
        fastcgi_pass unix:%(flushing)s;
    }
    location / {
        return 404;
    }
}
""" % dict(port=port, webhook=b.sock, minimal=sock_minimal,
           flushing=sock_flushing)
    ngx = servers.Nginx(root, site, port)

    try:
        mini.start()
        servers.wait_until(lambda: servers.socket_open(sock_minimal), 30,
                           "the fcgi-minimal socket", mini)
        flushing.start()
        servers.wait_until(lambda: servers.socket_open(sock_flushing), 30,
                           "the flushing fcgi-minimal's socket", flushing)
        api.start()
        servers.wait_until(lambda: os.path.exists(port_file), 30,
                           "the API stand-in's port", api)
        with open(port_file) as f:
            b.api = "http://127.0.0.1:%d" % int(f.read())
        ngx.start()
    except (servers.ServerError, ValueError, OSError) as e:
        give_up("a server did not start: %s" % e)
    say("API: %s (tests/bench/api-standin.py, Python %s, a thread per "
        "connection, answers at once); closed API: %s (nothing listens)" % (
            b.api, sys.version.split()[0], b.closed_api))

    url_hook = "http://127.0.0.1:%d/podio-hook" % port
    urls = {"minimal": "http://127.0.0.1:%d/minimal" % port,
            "minimal+sync": "http://127.0.0.1:%d/minimal-sync" % port}
    procs = {"minimal": mini, "minimal+sync": flushing}
    script = os.path.join(HERE, "ack.lua")
    # Sections: (name, scenario, connections, backends).  "podio-webhook"
    # fetches from the stand-in; "pw API closed" holds item events back.
    sections = [
        ("item events, %d connections" % conns, "item", conns,
         ("minimal", "minimal+sync", "podio-webhook", "pw API closed")),
        ("item events, %d connections" % conns_high, "item", conns_high,
         ("minimal", "minimal+sync", "podio-webhook", "pw API closed")),
        ("comment.create, %d connections" % conns, "comment", conns,
         ("minimal", "minimal+sync", "podio-webhook")),
    ]
    results = {(sec[0], name): [] for sec in sections for name in sec[3]}
    state = {"run": 0}

    def one_run(section, scenario, c, name, rnd, record=True):
        """One wrk run against a backend; podio-webhook starts on a fresh
        spool and is stopped after (once its spool drained, with the
        API).  Prints the run's line."""
        state["run"] += 1
        extra = ""
        if name in procs:
            proc = procs[name]
            cpu0, t0 = cpu_seconds(proc.popen.pid), time.monotonic()
            fig = run_wrk(urls[name], script, seconds, c, b.secret,
                          state["run"], scenario)
            fig["cpu"] = (cpu_seconds(proc.popen.pid) - cpu0) / \
                (time.monotonic() - t0) * 100.0
        else:
            with_api = name == "podio-webhook"
            spool = b.new_spool()
            b.api_stats(reset=True)
            proc, env, events = b.start(spool,
                                        b.api if with_api else b.closed_api)
            before = read_counts(counts_file)
            cpu0, t0 = cpu_seconds(proc.popen.pid), time.monotonic()
            fig = run_wrk(url_hook, script, seconds, c, b.secret,
                          state["run"], scenario)
            t_end = time.monotonic()
            at_end = read_counts(counts_file)
            fig["cpu"] = (cpu_seconds(proc.popen.pid) - cpu0) / \
                (t_end - t0) * 100.0
            done_in_run = count_lines(events)
            if with_api:
                servers.wait_until(lambda: b.drained(env), DRAIN_TIMEOUT_S,
                                   "the spool to drain", proc)
                fig["tail"] = time.monotonic() - t_end
                api_st = b.api_stats()
                fig["api"] = api_st
            after = read_counts(counts_file)
            fig["run"] = diff(before, at_end)
            fig["all"] = diff(before, after)
            fig["done_in_run"] = done_in_run
            fig["done"] = count_lines(events)
            proc.stop()
            shutil.rmtree(spool, ignore_errors=True)
            acks = max(fig["acks"], 1)
            extra = "%7.3f %7.3f %7.3f %8.3f %8.3f" % (
                fig["run"]["intake"][0] / acks,
                fig["run"]["processors"][0] / acks,
                fig["all"]["processors"][0] / acks,
                ms_per(fig["run"]["intake"]) or 0.0,
                ms_per(fig["run"]["intake_lock"]) or 0.0)
            extra += "  done %d%%" % (100 * fig["done_in_run"] // acks)
            if with_api:
                extra += (", all %d after %.1f s; API: %d GET, %d filter, "
                          "%d conn") % (
                    fig["done"], fig["tail"], api_st.get("get", 0),
                    api_st.get("filter", 0), api_st.get("connections", 0))
        if record:
            results[(section, name)].append(fig)
            err = fig["non2xx"] + fig["socket_errors"]
            say(("%-3d %-14s %10.0f %10s %10s %6d %5.0f %s" % (
                rnd, name, fig["rps"], fmt_ms(fig["p50"]),
                fmt_ms(fig["p99"]), err, fig["cpu"], extra)).rstrip())
        return fig

    header = ("%-3s %-14s %10s %10s %10s %6s %5s %7s %7s %7s %8s %8s" % (
        "run", "backend", "requests/s", "p50", "p99", "errors", "cpu%",
        "intake", "proc", "proc+", "sync ms", "lock ms"))
    try:
        # Warm up (connections, page cache, the program's pages).
        for name in ("minimal", "minimal+sync", "podio-webhook"):
            one_run("warm-up", "item", conns, name, 0, record=False)
        say()
        say("syncs/ack: fdatasync+fsync calls per acknowledged event, made "
            "by the request threads (intake), by the spool processors during"
            " the run (proc) and until the spool drained (proc+); sync ms: "
            "mean duration of an intake fdatasync; lock ms: mean wait of "
            "an intake commit for the spool's lock file; cpu%: the "
            "backend's CPU time over the run's wall time; done: events "
            "processed (their log callback written) during the run, then "
            "all of them once the spool drained, and the API calls and TCP "
            "connections the processors made.  podio-webhook starts on a "
            "fresh spool for each run; \"pw API closed\" is podio-webhook "
            "with its API unreachable (item.create and item.update wait, "
            "as in a Podio outage): the intake alone.")
        for rnd in range(1, rounds + 1):
            for section, scenario, c, names in sections:
                say()
                say("%s (round %d)" % (section, rnd))
                say(header)
                for name in names:
                    one_run(section, scenario, c, name, rnd)
    except (servers.ServerError, RuntimeError,
            subprocess.TimeoutExpired) as e:
        say("ack benchmark: stopped early: %s" % e)
        return

    # The drain rate: a spool filled with item events beforehand, then
    # podio-webhook started against the stand-in; until it drained.
    drain = None
    if drain_n:
        try:
            spool = b.new_spool()
            filled = b.fill_spool(spool, drain_n)
            b.api_stats(reset=True)
            t0 = time.monotonic()
            proc, env, events = b.start(spool, b.api)
            servers.wait_until(lambda: b.drained(env), 600,
                               "the spool to drain", proc)
            dt = time.monotonic() - t0
            drain = {"n": drain_n, "events": count_lines(events),
                     "fetched": count_lines(events, b'"item_source"'),
                     "seconds": dt, "api": b.api_stats(), "filled": filled}
            proc.stop()
            shutil.rmtree(spool, ignore_errors=True)
        except (servers.ServerError, RuntimeError,
                subprocess.TimeoutExpired) as e:
            say("drain rate: not measured: %s" % e)

    # 100,000 events pending in an outage: the server's CPU while it
    # receives nothing, then the item load at conns connections,
    # interleaved with the flushing reference.
    pending = None
    if pending_n:
        section = "item events, %d connections, %d pending" % (conns,
                                                              pending_n)
        try:
            spool = b.new_spool()
            say()
            say("pending: spool-fill: " + b.fill_spool(spool, pending_n))
            proc, env, events = b.start(spool, b.closed_api)
            took = settle(proc, 2, SETTLE_LIMIT_S)
            st = b.status(env)
            cpu0, t0 = cpu_seconds(proc.popen.pid), time.monotonic()
            time.sleep(idle_s)
            idle = (cpu_seconds(proc.popen.pid) - cpu0) / \
                (time.monotonic() - t0) * 100.0
            pending = {"n": pending_n, "idle": idle, "settle": took, "status": st,
                       "ref": [], "pw": []}
            say("pending: %s %.0f s after its start; spool status: %s" % (
                "the server settled (under 10% of a core)" if
                took < SETTLE_LIMIT_S else "the server was still busy",
                took, json.dumps(
                    {k: st.get(k) for k in ("pending", "retrying",
                                            "in_flight", "dead")})))
            say(header)
            for rnd in range(1, rounds + 1):
                fig = one_run(section, "item", conns, "minimal+sync", rnd,
                              record=False)
                pending["ref"].append(fig)
                say("%-3d %-14s %10.0f %10s %10s %6d %5.0f" % (
                    rnd, "minimal+sync", fig["rps"], fmt_ms(fig["p50"]),
                    fmt_ms(fig["p99"]), fig["non2xx"] + fig["socket_errors"],
                    fig["cpu"]))
                state["run"] += 1
                c0, t1 = cpu_seconds(proc.popen.pid), time.monotonic()
                fig = run_wrk(url_hook, script, seconds, conns, b.secret,
                              state["run"], "item")
                fig["cpu"] = (cpu_seconds(proc.popen.pid) - c0) / \
                    (time.monotonic() - t1) * 100.0
                pending["pw"].append(fig)
                say("%-3d %-14s %10.0f %10s %10s %6d %5.0f" % (
                    rnd, "pw pending", fig["rps"], fmt_ms(fig["p50"]),
                    fmt_ms(fig["p99"]), fig["non2xx"] + fig["socket_errors"],
                    fig["cpu"]))
            proc.stop()
            shutil.rmtree(spool, ignore_errors=True)
        except (servers.ServerError, RuntimeError,
                subprocess.TimeoutExpired) as e:
            say("pending events: not measured: %s" % e)

    ngx.stop()
    mini.stop()
    flushing.stop()
    api.stop()
    # The disk again, idle: shared or virtual disks vary over time.
    lat += probe_fdatasync(spool_parent)
    report(results, sections, rounds, drain, pending, lat, shim)


def report(results, sections, rounds, drain, pending, lat, shim):
    """Prints the medians, ratios and targets."""
    say()
    say("Medians of %d rounds; ratios to the flushing reference "
        "(minimal+sync: stores each body with a shared fdatasync before its "
        "200, nothing else) measured in the same runs:" % rounds)
    ratio_of = {}
    p99_of = {}
    for section, _, _, names in sections:
        ref = results[(section, "minimal+sync")]
        ref_rps = median_of(ref, "rps")
        ref_p99 = median_of(ref, "p99")
        say("  %s:" % section)
        for name in names:
            figs = results[(section, name)]
            rps = median_of(figs, "rps")
            p99 = median_of(figs, "p99")
            ratio = rps / ref_rps if ref_rps else None
            ratio_of[(section, name)] = ratio
            p99_of[(section, name)] = p99
            say("    %-14s %8.0f requests/s, ratio %s, p99 %s (%s of the "
                "reference's)" % (
                    name, rps or 0, "?" if ratio is None else "%.2f" % ratio,
                    fmt_ms(p99),
                    "%.2f" % (p99 / ref_p99) if p99 and ref_p99 else "?"))
    s16, s64 = sections[0][0], sections[1][0]
    say()
    say("Targets:")
    for sec in (s16, s64):
        for name in ("podio-webhook", "pw API closed"):
            r = ratio_of[(sec, name)]
            say("  %s, %s: ratio %s, target at least %.1f: %s" % (
                sec, name, "?" if r is None else "%.2f" % r, TARGET_RATIO,
                verdict(r, TARGET_RATIO, True)))
    for name in ("podio-webhook", "pw API closed"):
        p = p99_of[(s16, name)]
        say("  %s, %s: p99 %s, target under %.0f ms: %s" % (
            s16, name, fmt_ms(p), TARGET_P99_MS,
            verdict(p, TARGET_P99_MS, None)))
    ref64 = p99_of[(s64, "minimal+sync")]
    for name in ("podio-webhook", "pw API closed"):
        p = p99_of[(s64, name)]
        say("  %s, %s: p99 %s, target at most %.1f x the reference's %s: %s"
            % (s64, name, fmt_ms(p), TARGET_P99_HIGH, fmt_ms(ref64),
               verdict(p, ref64 * TARGET_P99_HIGH if ref64 else None,
                       False)))
    if pending:
        empty = ratio_of[(s16, "pw API closed")]
        ref = median_of(pending["ref"], "rps")
        pw = median_of(pending["pw"], "rps")
        r = pw / ref if ref else None
        rel = r / empty if r is not None and empty else None
        say("  %d events pending (API closed), %d connections: %.0f "
            "requests/s, ratio %s (p99 %s; reference %.0f, p99 %s); "
            "against the empty spool's ratio (API closed) %s: %s, target "
            "at least %.1f: %s" % (
                pending["n"], sections[0][2], pw or 0,
                "?" if r is None else "%.2f" % r,
                fmt_ms(median_of(pending["pw"], "p99")), ref or 0,
                fmt_ms(median_of(pending["ref"], "p99")),
                "?" if empty is None else "%.2f" % empty,
                "?" if rel is None else "%.2f" % rel, TARGET_PENDING,
                verdict(rel, TARGET_PENDING, True)))
        say("  CPU of the idle server holding them in an outage: %.2f%% of "
            "one core, target under %.0f%%: %s" % (
                pending["idle"], TARGET_IDLE_CPU,
                verdict(pending["idle"], TARGET_IDLE_CPU, None)))
    if drain:
        api = drain["api"]
        say()
        say("drain rate: %d item events filled (%s), podio-webhook started "
            "against the stand-in: %d events processed (their log callback "
            "written, %d with an item fetched) in %.1f s from its start: "
            "%.0f events/s; API: %d token, %d GET, %d filter calls (%d "
            "items), %d TCP connections" % (
                drain["n"], drain["filled"], drain["events"],
                drain["fetched"], drain["seconds"],
                drain["events"] / drain["seconds"], api.get("token", 0),
                api.get("get", 0), api.get("filter", 0),
                api.get("filter_items", 0), api.get("connections", 0)))
    say()
    say("disk fdatasync latency (write 4 KiB + fdatasync, %d times before "
        "and %d after the runs): median %s, p99 %s" % (
            PROBE_SYNCS, PROBE_SYNCS, fmt_ms(statistics.median(lat)),
            fmt_ms(percentile(lat, 99))))
    if shim:
        w = [f for (sec, name), figs in results.items()
             if name.startswith("p") and sec == s16 for f in figs]
        acks = max(sum(f["acks"] for f in w), 1)

        def total(when, who):
            return tuple(sum(f[when][who][i] for f in w) for i in (0, 1))
        intake = total("run", "intake")
        proc_all = total("all", "processors")
        lock = total("run", "intake_lock")
        say("podio-webhook at %d connections (item events, both rows): "
            "%.3f fdatasyncs per acknowledged event in the intake (group "
            "commit %s), %.3f with the spool processors' until drained; "
            "mean intake fdatasync %s, wait for the lock file %s per "
            "commit" % (
                sections[0][2], intake[0] / acks,
                "works" if intake[0] < acks else "not seen",
                (intake[0] + proc_all[0]) / acks, fmt_ms(ms_per(intake)),
                fmt_ms(ms_per(lock))))
    say("(a benchmark: figures only, it never fails)")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a benchmark never fails the build
        say("ack benchmark: error: %s: %s" % (type(e).__name__, e))
    sys.exit(0)
