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
    so this row is the intake alone;
  - podio-webhook with its spool in PostgreSQL (pw PostgreSQL): as the
    first, with `spool_url` naming a fresh database of a private
    PostgreSQL 15 (tests/pgserver.py: fsync and synchronous_commit on,
    its data under /tmp, on the same disk here as the bench's spools
    unless the line "PostgreSQL:" says otherwise), in the item-event
    sections; its ratio to the SQLite spool's row is printed beside the
    one to the flushing reference, and its lines show PostgreSQL's WAL
    flushes per acknowledged event (pg_stat_wal: the group commit of the
    appends at work) and the CPU of the server's processes, which
    podio-webhook's own CPU figure leaves out.  Beside it the limit of
    that PostgreSQL (minimal+pg): fcgi-minimal inserting each body into
    a table of its own, one commit per delivery with synchronous_commit
    on, from 16 connections, nothing else.
  - the same with its API closed (pw PG closed), at the first
    connection count: the intake alone on PostgreSQL, beside the
    PostgreSQL spool's p99.

Sections, each run in every round, the backends alternating: item events
(ack.lua's default: item.update of items drawn from a pool of 2,000,
item.create and item.delete of new items, every delivery unique) at 16
and at 64 connections, and comment.create at 16.  After the rounds:

  - the drain rate: a fresh spool filled with item events beforehand
    (tests/bench/spool-fill), podio-webhook started against the stand-in,
    timed until the spool is empty: events fully processed (item
    fetched, the log callback written) per second, with the API calls
    and the TCP connections the processors opened;
  - an import: the same with 5,000 item.update events of as many items
    of one app (spool-fill's "import" mix): the drain rate, and the API
    calls against the target of the token, a filter page per 500 items
    and one spare (12 for 5,000);
  - 100,000 pending events: a spool filled so, podio-webhook started on
    it with the API closed; its CPU while it holds them and receives
    nothing, then the item load at 16 connections, rounds interleaved with
    the flushing reference; with PostgreSQL, the same hold on a
    PostgreSQL spool (no load rounds): the CPU of podio-webhook and of
    the database while they hold them.

Beside them, in the item-event rows at the first connection count, what
users run instead, each where it is installed (as root the benchmark
installs the Debian packages, with service starts refused; otherwise it
says it skipped them):

  - php-fpm: tests/bench/receiver.php under its own php-fpm (a pool of
    16 static children, as many as podio-webhook's workers, on a unix
    socket, run as the benchmark's user) behind the same nginx: it merges
    query and body, checks the secret with hash_equals, appends the event
    as a JSON line to a file on the spool's disk with flock, fflush and
    fsync, and answers 200;
  - webhook: adnanh/webhook (Debian `webhook`), an HTTP server of its
    own behind the same nginx (proxy_pass), with the hooks file
    tests/bench/webhook-hooks.json: a trigger rule on the secret, and a
    shell per event that appends the payload to a file, not flushed; it
    answers before its command runs.

It prints the figures of each run (with the fdatasync+fsync calls
podio-webhook made per acknowledged event, counted by an LD_PRELOAD shim,
tests/bench/sync-count.c), the medians, their ratios to the flushing
reference measured in the same runs, podio-webhook's ratios to php-fpm
and to webhook, and each target as met or NOT met (by how much).  It
writes every figure of the run, with the machine and the command, as JSON
(BUILDDIR/bench/ack.json) and draws a chart of the item-event rows
(BUILDDIR/bench/ack.png: requests/s and p99 per backend, with gnuplot and
tests/bench/ack.gp).

A benchmark, not a test: it prints figures and exits 0 whatever they
are, also when wrk, nginx or a program is missing (it says why).

Usage: ack.py [BUILDDIR]   (default: $top_builddir, else .)
Environment: PODIO_BENCH_SECONDS (per run, default 10),
PODIO_BENCH_ROUNDS (default 2), PODIO_BENCH_CONNECTIONS (default 16),
PODIO_BENCH_CONNECTIONS_HIGH (default 64), PODIO_BENCH_PENDING (events
pending in that row, default 100000; 0: no such row),
PODIO_BENCH_DRAIN_EVENTS (default 50000; 0: no drain row),
PODIO_BENCH_IMPORT_EVENTS (default 5000; 0: no import row),
PODIO_BENCH_IDLE_SECONDS (how long the idle CPU is measured, default 20),
PODIO_BENCH_DIR (where the spools go, default BUILDDIR: it must be on
the disk to measure, not on a tmpfs), PODIO_BENCH_WRAPPER (a command
prefixed to podio-webhook's, e.g. "strace -f -c -w -o FILE" to see where
its time goes; the figures are then those of the wrapped server),
PODIO_BENCH_BACKENDS (a comma-separated list of the backends to run, out
of minimal, podio-webhook, "pw API closed", "pw PostgreSQL" (with "pw PG
closed"), php-fpm,
webhook; the
flushing reference always runs; default all), PODIO_BENCH_OUT (where
ack.json and ack.png go, default BUILDDIR/bench).
"""

import atexit
import glob
import grp
import json
import os
import pwd
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
TARGET_PHP = 2.0          # requests/s, item events, times php-fpm's
TARGET_WEBHOOK = 1.5      # requests/s, item events, times webhook's
TARGET_PG = 0.7           # requests/s, 16 connections, PostgreSQL spool
                          # times the SQLite spool's
TARGET_PG_P99_MS = 15.0   # its p99 at 16 connections
PG = "pw PostgreSQL"
PG_CLOSED = "pw PG closed"    # the same with its API closed
MINIMAL_PG = "minimal+pg"     # the PostgreSQL reference
OTHERS = ("php-fpm", "webhook")   # what users run instead
API_APP_ID = 4242         # the app of every item the stand-in serves
servers = None            # tests/e2e/servers.py, imported in main()
WORKERS = 16
WRK_THREADS = 2
PROBE_SYNCS = 200
PROBE_SIZE = 4096
DRAIN_TIMEOUT_S = 120
SETTLE_LIMIT_S = 60      # the most the pending row waits for a calm server
SETTLE_LIMIT_PG_S = 180  # the same on PostgreSQL, the database's too


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


def tree_cpu(pid):
    """CPU seconds of process pid, its children that ended (reaped) and
    its children running: a PostgreSQL server's postmaster and its
    backends."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15]) / tck
    except (OSError, IndexError, ValueError):
        return 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += (int(fields[11]) + int(fields[12])) / tck
        except (OSError, IndexError, ValueError):
            continue
    return total


def thread_cpu(pid):
    """CPU seconds of process pid by thread name: the server names its
    request threads pw-worker, the thread reading its connections
    pw-reader, its spool processors pw-processor and its finisher
    pw-finisher; the rest (the main thread, libcurl's) count as
    "other"."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, task)) as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        fields = text.rsplit(")", 1)[1].split()
        if name not in ("pw-worker", "pw-reader", "pw-processor",
                        "pw-finisher"):
            name = "other"
        out[name] = out.get(name, 0.0) + \
            (int(fields[11]) + int(fields[12])) / tick
    return out


def machine_jiffies():
    """(busy, all) jiffies of every CPU since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return (0, 0)
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle, sum(v[:8]))


def machine_busy(a, b):
    """Percent of all CPUs busy between two machine_jiffies(), as a
    share of one core (200 = both of 2 CPUs busy)."""
    busy, total = b[0] - a[0], b[1] - a[1]
    return 100.0 * busy / total * (os.cpu_count() or 1) if total else 0.0


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

# ------------------------------------------------------------ what users run


def find_php_fpm():
    """The php-fpm binary (the highest version installed), or None."""
    found = sorted(glob.glob("/usr/sbin/php-fpm[0-9]*"))
    return found[-1] if found else shutil.which("php-fpm")


def find_program(name):
    return lambda: shutil.which(name) or (
        "/usr/bin/" + name if os.access("/usr/bin/" + name, os.X_OK)
        else None)


def installed(what, packages, find):
    """The path of what (find() finds it), installed from the Debian
    packages first when missing and the benchmark runs as root, with
    service starts refused (a policy-rc.d that exits 101, removed after).
    None, with the reason printed, when it is not there."""
    path = find()
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say("skipped: %s is not installed (run make bench as root to "
            "install it)" % what)
        return None
    say("installing %s: apt-get install %s (service starts refused)" % (
        what, " ".join(packages)))
    policy = "/usr/sbin/policy-rc.d"
    ours = not os.path.exists(policy)
    try:
        if ours:
            servers.write_file(policy, "#!/bin/sh\nexit 101\n", mode=0o755)
        r = subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends"] +
            list(packages), capture_output=True, text=True, timeout=1800,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    except (OSError, subprocess.TimeoutExpired) as e:
        r = subprocess.CompletedProcess([], 1, "", str(e))
    finally:
        if ours and os.path.exists(policy):
            os.unlink(policy)
    path = find()
    if not path:
        say("skipped: %s is not installed (apt-get install %s failed, exit "
            "%d: %s)" % (what, " ".join(packages), r.returncode,
                         " ".join((r.stderr or r.stdout).split()[-30:])))
    return path


def session_cpu(proc):
    """CPU seconds of every process in proc's session, with what their
    reaped children used (php-fpm's children, webhook's commands)."""
    total = 0.0
    for pid in pids_of(proc):
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / \
                os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def pids_of(proc):
    pids = set(servers.pids_in_session(proc.sid)) if proc.sid else set()
    if proc.popen is not None:
        pids.add(proc.popen.pid)
    return sorted(pids)


def machine():
    """What the figures were measured on."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = " ".join(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, IndexError, ValueError):
        pass
    return {"nproc": os.cpu_count() or 0, "cpu": model,
            "kernel": os.uname().release, "memory_mb": mem}


def command_line():
    """The command that reproduces the run: the knobs set, make bench."""
    knobs = ["%s=%s" % (k, shlex.quote(v)) for k, v in
             sorted(os.environ.items()) if k.startswith("PODIO_BENCH_")
             and k != "PODIO_BENCH_SYNC_COUNTS"]
    return " ".join(knobs + ["make", "bench"])


# ------------------------------------------------------------------ main


def built_with_postgresql(builddir):
    """Whether the build in builddir has the PostgreSQL spool backend."""
    try:
        with open(os.path.join(builddir, "config.h")) as f:
            return "#define HAVE_POSTGRESQL 1" in f.read()
    except OSError:
        return False


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
        self.pg = None           # the PostgreSQL server, when it runs
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

    def pg_wal_syncs(self):
        """The WAL flushes of the PostgreSQL server so far (pg_stat_wal:
        the commits' fdatasyncs, every database)."""
        try:
            return int(self.pg.psql("SELECT wal_sync FROM pg_stat_wal")
                       .strip() or 0)
        except (ValueError, OSError, Exception):  # noqa: BLE001
            return 0

    def new_spool(self):
        self.serial += 1
        d = os.path.join(self.spool_parent, "run-%d" % self.serial)
        return d

    def start(self, spool, api_url, spool_url=None):
        """Starts podio-webhook serve on spool (or spool_url, with spool
        as its local directory) with its API at api_url; returns (proc,
        env of its commands, its callback log)."""
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
            "spool_url = " + (spool_url or ""),
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

    def fill_spool(self, spool, count, mix="mix"):
        """Fills spool with count item events (mix: ack.lua's mix, or
        "import": an item.update of a new item each); returns the
        filler's line."""
        r = subprocess.run([self.fill, spool, str(count), "99", mix],
                           env=self.plain_env, capture_output=True,
                           text=True, timeout=3600)
        if r.returncode != 0:
            raise RuntimeError("spool-fill failed:\n" + r.stdout + r.stderr)
        return r.stdout.strip()

    def drain_filled(self, count, mix):
        """A fresh spool filled with count events of mix (fill_spool()),
        then podio-webhook started on it against the stand-in, until the
        spool drained: what it processed, in how long, and the API calls
        and connections of the stand-in."""
        spool = self.new_spool()
        filled = self.fill_spool(spool, count, mix)
        self.api_stats(reset=True)
        t0 = time.monotonic()
        proc, env, events = self.start(spool, self.api)
        servers.wait_until(lambda: self.drained(env), 600,
                           "the spool to drain", proc)
        dt = time.monotonic() - t0
        out = {"n": count, "events": count_lines(events),
               "fetched": count_lines(events, b'"item_source"'),
               "seconds": dt, "api": self.api_stats(), "filled": filled}
        proc.stop()
        shutil.rmtree(spool, ignore_errors=True)
        return out

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


def settle(proc, seconds, limit, db_pid=None, share=0.1, times=1):
    """Waits (at most limit seconds) until proc (and the PostgreSQL server
    db_pid, its backends with it, when given) used under share of a core
    (10%) over seconds, times in a row; returns how long it took."""
    def used():
        return cpu_seconds(proc.popen.pid) + \
            (tree_cpu(db_pid) if db_pid else 0.0)
    t0 = time.monotonic()
    calm = 0
    while time.monotonic() - t0 < limit:
        c0 = used()
        time.sleep(seconds)
        calm = calm + 1 if used() - c0 < share * seconds else 0
        if calm >= times:
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
    import_n = env_int("PODIO_BENCH_IMPORT_EVENTS", 5000, 0, 1000000)
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
    sock_minimal_pg = os.path.join(root, "fcgi-minimal-pg.sock")
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
    # What users run instead: php-fpm with receiver.php, adnanh/webhook.
    wanted = set(x.strip() for x in os.environ.get(
        "PODIO_BENCH_BACKENDS", "").split(",") if x.strip())

    def want(name):
        return not wanted or name in wanted or name == "minimal+sync" or \
            (name in (MINIMAL_PG, PG_CLOSED) and PG in wanted)
    php_fpm = want("php-fpm") and installed("php-fpm", ["php-fpm"],
                                            find_php_fpm)
    webhook_bin = want("webhook") and installed(
        "webhook", ["webhook"], find_program("webhook"))
    gnuplot = installed("gnuplot", ["gnuplot-nox"], find_program("gnuplot"))
    others = {}          # name: (Proc, events file, how it is run)
    sock_php = os.path.join(root, "php-fpm.sock")
    php_events = os.path.join(spool_parent, "php-fpm.events")
    hook_port = servers.free_port()
    hook_events = os.path.join(spool_parent, "webhook.events")
    if php_fpm:
        conf = os.path.join(root, "php-fpm.conf")
        servers.write_file(conf, """\
[global]
pid = %(root)s/php-fpm.pid
error_log = %(root)s/php-fpm.log
daemonize = no

[bench]
user = %(user)s
group = %(group)s
listen = %(sock)s
listen.mode = 0666
pm = static
pm.max_children = %(workers)d
""" % dict(root=root, sock=sock_php, workers=WORKERS,
           user=pwd.getpwuid(os.geteuid()).pw_name,
           group=grp.getgrgid(os.getegid()).gr_name))
        version = subprocess.run([php_fpm, "-v"], capture_output=True,
                                 text=True).stdout.split("\n")[0]
        others["php-fpm"] = (
            servers.Proc("php-fpm", [php_fpm, "-F", "-y", conf] +
                         (["-R"] if os.geteuid() == 0 else []),
                         os.path.join(root, "php-fpm.stderr")),
            php_events, "%s, pm = static, %d children, tests/bench/"
            "receiver.php (flock, fwrite, fflush, fsync per event)" % (
                " ".join(version.split()[:2]), WORKERS))
    if webhook_bin:
        with open(os.path.join(HERE, "webhook-hooks.json")) as f:
            hooks = f.read().replace("@SECRET@", b.secret).replace(
                "@EVENTS@", hook_events)
        hooks_file = servers.write_file(
            os.path.join(root, "webhook-hooks.json"), hooks, mode=0o600)
        version = subprocess.run([webhook_bin, "-version"],
                                 capture_output=True, text=True)
        others["webhook"] = (
            servers.Proc("webhook", [webhook_bin, "-hooks", hooks_file,
                                     "-ip", "127.0.0.1", "-port",
                                     str(hook_port)],
                         os.path.join(root, "webhook.log")),
            hook_events, "adnanh/%s behind nginx (proxy_pass, upstream "
            "keepalive), tests/bench/webhook-hooks.json: a /bin/sh per "
            "event appending the payload to a file, no fsync; it answers "
            "before its command runs" % " ".join(
                (version.stdout + version.stderr).split()[:3]))
    port = servers.free_port()
    site = """\
upstream adnanh_webhook {
    server 127.0.0.1:%(hook_port)d;
    keepalive 32;
}
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
    location = /minimal-pg {
        include fastcgi_params;
        fastcgi_pass unix:%(minimal_pg)s;
    }
    location = /php {
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME %(php_script)s;
        fastcgi_param WEBHOOK_SECRET %(secret)s;
        fastcgi_param WEBHOOK_EVENTS %(php_events)s;
        fastcgi_pass unix:%(php)s;
    }
    location = /webhook {
        proxy_pass http://adnanh_webhook/hooks/podio-hook;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location / {
        return 404;
    }
}
""" % dict(port=port, webhook=b.sock, minimal=sock_minimal,
           flushing=sock_flushing, php=sock_php, php_events=php_events,
           minimal_pg=sock_minimal_pg,
           php_script=os.path.join(HERE, "receiver.php"), secret=b.secret,
           hook_port=hook_port)
    ngx = servers.Nginx(root, site, port)
    minimal_pg = None
    if want(PG):
        sys.path.insert(0, os.path.join(SRCDIR, "tests"))
        import pgserver  # noqa: E402
        ok, why = pgserver.available()
        if ok and not built_with_postgresql(builddir):
            ok, why = False, "this build has no PostgreSQL spool backend " \
                "(configure found no libpq)"
        if not ok:
            say("skipped: %s: %s" % (PG, why))
        else:
            try:
                b.pg = pgserver.Server()
                b.pg.start()
                say("PostgreSQL: %s, data in %s (%s)" % (
                    b.pg.psql("SHOW server_version").strip(),
                    b.pg.root, fstype(b.pg.root)))
                minimal_pg = servers.Proc(
                    "fcgi-minimal (PostgreSQL)",
                    [minimal, "unix:" + sock_minimal_pg, str(WORKERS),
                     b.pg.new_database("minimal")],
                    os.path.join(root, "fcgi-minimal-pg.log"))
            except Exception as e:  # noqa: BLE001 (any failure: skip it)
                say("skipped: %s: PostgreSQL did not start: %s" % (PG, e))
                b.pg = None

    try:
        mini.start()
        servers.wait_until(lambda: servers.socket_open(sock_minimal), 30,
                           "the fcgi-minimal socket", mini)
        flushing.start()
        servers.wait_until(lambda: servers.socket_open(sock_flushing), 30,
                           "the flushing fcgi-minimal's socket", flushing)
        if minimal_pg is not None:
            minimal_pg.start()
            servers.wait_until(lambda: servers.socket_open(sock_minimal_pg),
                               30, "the PostgreSQL fcgi-minimal's socket",
                               minimal_pg)
        api.start()
        servers.wait_until(lambda: os.path.exists(port_file), 30,
                           "the API stand-in's port", api)
        for name, (proc, _, _) in list(others.items()):
            try:
                proc.start()
                servers.wait_until(
                    (lambda: servers.socket_open(sock_php)) if
                    name == "php-fpm" else
                    (lambda: servers.port_open(hook_port)), 30,
                    name + " to listen", proc)
            except servers.ServerError as e:
                say("skipped: %s did not start: %s" % (name, e))
                proc.stop()
                del others[name]
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
            "minimal+sync": "http://127.0.0.1:%d/minimal-sync" % port,
            MINIMAL_PG: "http://127.0.0.1:%d/minimal-pg" % port,
            "php-fpm": "http://127.0.0.1:%d/php" % port,
            "webhook": "http://127.0.0.1:%d/webhook" % port}
    procs = {"minimal": mini, "minimal+sync": flushing}
    if minimal_pg is not None:
        procs[MINIMAL_PG] = minimal_pg
    for name, (proc, _, how) in others.items():
        procs[name] = proc
        say("%s: %s" % (name, how))
    script = os.path.join(HERE, "ack.lua")
    # Sections: (name, scenario, connections, backends).  "podio-webhook"
    # fetches from the stand-in; "pw API closed" holds item events back.
    sections = [
        ("item events, %d connections" % conns, "item", conns,
         ("minimal", "minimal+sync", "podio-webhook", "pw API closed") +
         ((MINIMAL_PG, PG, PG_CLOSED) if b.pg else ()) + tuple(others)),
        ("item events, %d connections" % conns_high, "item", conns_high,
         ("minimal", "minimal+sync", "podio-webhook", "pw API closed") +
         ((MINIMAL_PG, PG) if b.pg else ())),
        ("comment.create, %d connections" % conns, "comment", conns,
         ("minimal", "minimal+sync", "podio-webhook")),
    ]
    sections = [(sec, scen, c, tuple(n for n in names if want(n)))
                for sec, scen, c, names in sections]
    results = {(sec[0], name): [] for sec in sections for name in sec[3]}
    state = {"run": 0}
    rows = []            # every run, for the JSON

    def one_run(section, scenario, c, name, rnd, record=True):
        """One wrk run against a backend; podio-webhook starts on a fresh
        spool and is stopped after (once its spool drained, with the
        API).  Prints the run's line."""
        state["run"] += 1
        extra = ""
        if name in procs:
            proc = procs[name]
            if name in others:
                cpu = session_cpu
                stored0 = count_lines(others[name][1])
            else:
                def cpu(p):
                    return cpu_seconds(p.popen.pid)
            cpu0, t0 = cpu(proc), time.monotonic()
            m0 = machine_jiffies()
            fig = run_wrk(urls[name], script, seconds, c, b.secret,
                          state["run"], scenario)
            fig["machine"] = machine_busy(m0, machine_jiffies())
            fig["cpu"] = (cpu(proc) - cpu0) / \
                (time.monotonic() - t0) * 100.0
            if name in others:
                # webhook answers before its command runs: let the
                # commands finish before the next run (at most 60 s).
                fig["stored"] = count_lines(others[name][1]) - stored0
                t_end, last, n = time.monotonic(), time.monotonic(), -1
                while n < fig["acks"] and time.monotonic() - last < 5 and \
                        time.monotonic() - t_end < 60:
                    time.sleep(0.2)
                    m = count_lines(others[name][1]) - stored0
                    if m != n:
                        n, last = m, time.monotonic()
                fig["stored_all"] = n
                fig["tail"] = time.monotonic() - t_end
                extra = "stored by the run's end %d%%, %d after %.1f s" % (
                    100 * fig["stored"] // max(fig["acks"], 1), n,
                    fig["tail"])
        else:
            with_api = name in ("podio-webhook", PG)
            spool = b.new_spool()
            b.api_stats(reset=True)
            spool_url = None
            if name in (PG, PG_CLOSED):
                spool_url = b.pg.new_database("run%d" % state["run"])
            proc, env, events = b.start(spool,
                                        b.api if with_api else b.closed_api,
                                        spool_url)
            before = read_counts(counts_file)
            if spool_url:
                wal0 = b.pg_wal_syncs()
                pg0 = tree_cpu(b.pg.proc.pid)
            cpu0, t0 = cpu_seconds(proc.popen.pid), time.monotonic()
            by0, m0 = thread_cpu(proc.popen.pid), machine_jiffies()
            fig = run_wrk(url_hook, script, seconds, c, b.secret,
                          state["run"], scenario)
            t_end = time.monotonic()
            at_end = read_counts(counts_file)
            if spool_url:
                fig["pg_wal_syncs"] = b.pg_wal_syncs() - wal0
                fig["pg_cpu"] = (tree_cpu(b.pg.proc.pid) - pg0) / \
                    (t_end - t0) * 100.0
            fig["machine"] = machine_busy(m0, machine_jiffies())
            by1 = thread_cpu(proc.popen.pid)
            fig["cpu"] = (cpu_seconds(proc.popen.pid) - cpu0) / \
                (t_end - t0) * 100.0
            fig["wall"] = t_end - t0
            fig["cpu_by"] = {k: (by1.get(k, 0.0) - by0.get(k, 0.0)) /
                             (t_end - t0) * 100.0 for k in by1}
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
            if spool_url:
                b.pg.psql("DROP DATABASE run%d" % state["run"], check=False)
            acks = max(fig["acks"], 1)
            extra = "%7.3f %7.3f %7.3f %8.3f %8.3f" % (
                fig["run"]["intake"][0] / acks,
                fig["run"]["processors"][0] / acks,
                fig["all"]["processors"][0] / acks,
                ms_per(fig["run"]["intake"]) or 0.0,
                ms_per(fig["run"]["intake_lock"]) or 0.0)
            extra += "  done %d%%" % (100 * fig["done_in_run"] // acks)
            extra += ", cpu%% reader %.0f workers %.0f proc %.0f" % (
                fig["cpu_by"].get("pw-reader", 0.0),
                fig["cpu_by"].get("pw-worker", 0.0),
                fig["cpu_by"].get("pw-processor", 0.0))
            if spool_url:
                extra += (", PostgreSQL: %.3f WAL flushes per ack, cpu%% "
                          "%.0f") % (fig["pg_wal_syncs"] / acks,
                                     fig["pg_cpu"])
            if with_api:
                extra += (", all %d after %.1f s; API: %d GET, %d filter, "
                          "%d conn") % (
                    fig["done"], fig["tail"], api_st.get("get", 0),
                    api_st.get("filter", 0), api_st.get("connections", 0))
        if section != "warm-up":
            rows.append(row_of(section, scenario, c, rnd, name, fig))
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
        for name in ("minimal", "minimal+sync", "podio-webhook") + \
                tuple(others):
            if want(name):
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
    # podio-webhook started against the stand-in; until it drained.  An
    # import: the same with import_n item.update events of as many new
    # items of one app, fetched in filter pages of 500.
    drained = {}
    for what, n, mix in (("drain rate", drain_n, "mix"),
                         ("import", import_n, "import")):
        if not n:
            continue
        try:
            drained[mix] = b.drain_filled(n, mix)
        except (servers.ServerError, RuntimeError,
                subprocess.TimeoutExpired) as e:
            say("%s: not measured: %s" % (what, e))
    drain, imported = drained.get("mix"), drained.get("import")

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
                rows.append(row_of(section, "item", conns, rnd,
                                   "pw pending", fig))
                say("%-3d %-14s %10.0f %10s %10s %6d %5.0f" % (
                    rnd, "pw pending", fig["rps"], fmt_ms(fig["p50"]),
                    fmt_ms(fig["p99"]), fig["non2xx"] + fig["socket_errors"],
                    fig["cpu"]))
            proc.stop()
            shutil.rmtree(spool, ignore_errors=True)
        except (servers.ServerError, RuntimeError,
                subprocess.TimeoutExpired) as e:
            say("pending events: not measured: %s" % e)

        # The same hold on the PostgreSQL spool: what podio-webhook and the
        # database spend, idle, holding them (no load rounds).
        if pending is not None and b.pg is not None:
            try:
                spool = b.new_spool()
                url = b.pg.new_database("pending")
                say("pending (PostgreSQL): spool-fill: " +
                    b.fill_spool(url, pending_n))
                proc, env, events = b.start(spool, b.closed_api, url)
                # Until the database's autovacuum cleared the index of
                # the events done meanwhile (about a minute here): the
                # processors' looks read its dead entries until then.
                took = settle(proc, 5, SETTLE_LIMIT_PG_S, b.pg.proc.pid,
                              TARGET_IDLE_CPU / 100.0, 3)
                cpu0, t0 = cpu_seconds(proc.popen.pid), time.monotonic()
                pg0 = tree_cpu(b.pg.proc.pid)
                time.sleep(idle_s)
                t1 = time.monotonic()
                pending["pg_idle"] = (cpu_seconds(proc.popen.pid) - cpu0) / \
                    (t1 - t0) * 100.0
                pending["pg_server_idle"] = (tree_cpu(b.pg.proc.pid) - pg0) \
                    / (t1 - t0) * 100.0
                say("pending (PostgreSQL): %s %.0f s after its start; "
                    "then podio-webhook %.2f%%, PostgreSQL %.2f%% of one "
                    "core over %d s" % (
                        "the server and the database settled (under %.0f%% "
                        "of a core together, 3 times 5 s in a row)" %
                        TARGET_IDLE_CPU
                        if took < SETTLE_LIMIT_PG_S else
                        "the server or the database was still busy", took,
                        pending["pg_idle"], pending["pg_server_idle"],
                        idle_s))
                proc.stop()
                shutil.rmtree(spool, ignore_errors=True)
                b.pg.psql("DROP DATABASE pending", check=False)
            except (servers.ServerError, RuntimeError,
                    subprocess.TimeoutExpired) as e:
                say("pending events (PostgreSQL): not measured: %s" % e)

    ngx.stop()
    mini.stop()
    flushing.stop()
    for proc, _, _ in others.values():
        proc.stop()
    api.stop()
    # The disk again, idle: shared or virtual disks vary over time.
    lat += probe_fdatasync(spool_parent)
    report(results, sections, rounds, drain, imported, pending, lat, shim)
    ctx = dict(
        out=os.path.abspath(os.environ.get("PODIO_BENCH_OUT") or
                            os.path.join(builddir, "bench")),
        gnuplot=gnuplot, seconds=seconds, fs=kind,
        others={name: how for name, (_, _, how) in others.items()})
    write_out(results, sections, rounds, drain, imported, pending, lat, rows,
              ctx)


def report(results, sections, rounds, drain, imported, pending, lat,
           shim):
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
            ratio = rps / ref_rps if ref_rps and rps else None
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
            if (sec, name) not in ratio_of:
                continue
            r = ratio_of[(sec, name)]
            say("  %s, %s: ratio %s, target at least %.1f: %s" % (
                sec, name, "?" if r is None else "%.2f" % r, TARGET_RATIO,
                verdict(r, TARGET_RATIO, True)))
    for name in ("podio-webhook", "pw API closed"):
        if (s16, name) not in p99_of:
            continue
        p = p99_of[(s16, name)]
        say("  %s, %s: p99 %s, target under %.0f ms: %s" % (
            s16, name, fmt_ms(p), TARGET_P99_MS,
            verdict(p, TARGET_P99_MS, None)))
    ref64 = p99_of[(s64, "minimal+sync")]
    for name in ("podio-webhook", "pw API closed"):
        if (s64, name) not in p99_of:
            continue
        p = p99_of[(s64, name)]
        say("  %s, %s: p99 %s, target at most %.1f x the reference's %s: %s"
            % (s64, name, fmt_ms(p), TARGET_P99_HIGH, fmt_ms(ref64),
               verdict(p, ref64 * TARGET_P99_HIGH if ref64 else None,
                       False)))
    for sec in (s16, s64):
        if (sec, PG) not in ratio_of or (sec, "podio-webhook") not in results:
            continue
        sq = median_of(results[(sec, "podio-webhook")], "rps")
        pg = median_of(results[(sec, PG)], "rps")
        r = pg / sq if pg and sq else None
        say("  %s, %s / podio-webhook (the SQLite spool): %.0f / %.0f "
            "requests/s = %s%s" % (
                sec, PG, pg or 0, sq or 0, "?" if r is None else "%.2f" % r,
                (", target at least %.1f: %s" % (
                    TARGET_PG, verdict(r, TARGET_PG, True))
                 if sec == s16 else "")))
    if (s16, PG) in p99_of:
        p = p99_of[(s16, PG)]
        say("  %s, %s: p99 %s, target under %.0f ms: %s" % (
            s16, PG, fmt_ms(p), TARGET_PG_P99_MS,
            verdict(p, TARGET_PG_P99_MS, None)))
    if (s16, PG_CLOSED) in p99_of:
        say("  %s, %s (the intake alone on PostgreSQL, the processors "
            "holding item events back): p99 %s" % (
                s16, PG_CLOSED, fmt_ms(p99_of[(s16, PG_CLOSED)])))
    for sec in (s16, s64):
        if (sec, MINIMAL_PG) not in results or (sec, PG) not in results:
            continue
        ref = median_of(results[(sec, MINIMAL_PG)], "rps")
        pg = median_of(results[(sec, PG)], "rps")
        r = pg / ref if pg and ref else None
        say("  %s, the limit of this PostgreSQL: %s (an INSERT and its "
            "commit per delivery, nothing else) %.0f requests/s, p99 %s; "
            "%s reaches %s of it, p99 %s" % (
                sec, MINIMAL_PG, ref or 0,
                fmt_ms(p99_of.get((sec, MINIMAL_PG))), PG,
                "?" if r is None else "%.2f" % r,
                fmt_ms(p99_of.get((sec, PG)))))
    pw_rps = median_of(results.get((s16, "podio-webhook"), []), "rps")
    for name, goal in (("php-fpm", TARGET_PHP), ("webhook", TARGET_WEBHOOK)):
        if (s16, name) not in results:
            say("  %s, podio-webhook / %s: not measured (%s skipped)" % (
                s16, name, name))
            continue
        rps = median_of(results[(s16, name)], "rps")
        r = pw_rps / rps if pw_rps and rps else None
        say("  %s, podio-webhook / %s: %.0f / %.0f requests/s = %s (p99 %s "
            "against %s), target at least %.1f: %s" % (
                s16, name, pw_rps or 0, rps or 0,
                "?" if r is None else "%.2f" % r,
                fmt_ms(p99_of.get((s16, "podio-webhook"))),
                fmt_ms(p99_of.get((s16, name))), goal,
                verdict(r, goal, True)))
        acks = sum(f["acks"] for f in results[(s16, name)])
        kept = sum(f.get("stored_all", 0) for f in results[(s16, name)])
        say("    %s stored %d of the %d events it acknowledged (%.0f%%)%s" % (
            name, kept, acks, 100.0 * kept / max(acks, 1),
            "" if name != "webhook" or kept >= acks else
            ": it answers before it starts the command, and a command "
            "that fails to start (too many open files, when thousands "
            "wait) is lost"))
    if pending and (s16, "pw API closed") in ratio_of:
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
        if "pg_idle" in pending:
            both = pending["pg_idle"] + pending["pg_server_idle"]
            say("  the same on the PostgreSQL spool: podio-webhook %.2f%% "
                "and its database %.2f%% of one core, together %.2f%%, "
                "target under %.0f%%: %s" % (
                    pending["pg_idle"], pending["pg_server_idle"], both,
                    TARGET_IDLE_CPU, verdict(both, TARGET_IDLE_CPU, None)))
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
    if imported:
        api = imported["api"]
        calls = sum(api.get(k, 0) for k in ("token", "get", "filter"))
        # The token, a filter page per 500 items, one spare (which the
        # GET that learns the hook's app takes).
        limit = 2 + (imported["n"] + 499) // 500
        say()
        say("import: %d item.update events of as many items of one app, "
            "filled beforehand, podio-webhook started against the "
            "stand-in: %d events processed (%d with their item fetched) "
            "in %.1f s from its start: %.0f events/s; API: %d token, %d "
            "GET, %d filter calls (%d items), %d TCP connections: %d "
            "calls, target at most %d: %s" % (
                imported["n"], imported["events"], imported["fetched"],
                imported["seconds"],
                imported["events"] / imported["seconds"],
                api.get("token", 0), api.get("get", 0),
                api.get("filter", 0), api.get("filter_items", 0),
                api.get("connections", 0), calls, limit,
                verdict(calls, limit, False)))
        imported["calls"] = calls
        imported["limit"] = limit
    say()
    say("disk fdatasync latency (write 4 KiB + fdatasync, %d times before "
        "and %d after the runs): median %s, p99 %s" % (
            PROBE_SYNCS, PROBE_SYNCS, fmt_ms(statistics.median(lat)),
            fmt_ms(percentile(lat, 99))))
    if shim:
        w = [f for (sec, name), figs in results.items()
             if name in ("podio-webhook", "pw API closed") and sec == s16
             for f in figs]
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
    cpu_report(results, sections)
    say("(a benchmark: figures only, it never fails)")


def cpu_report(results, sections):
    """Where the CPU goes, item events: the machine's CPUs are shared by
    wrk, nginx and the backend, so what the spool processors spend per
    event is taken from the intake.  Prints, per section, how busy the
    machine was and podio-webhook's CPU per acknowledged event split
    into request threads and processors."""
    ncpu = os.cpu_count() or 1
    say()
    say("CPU, item events (medians; machine: busy share of all %d CPUs, "
        "%d%% = all busy; per event: the server's CPU microseconds per "
        "acknowledged event):" % (ncpu, 100 * ncpu))
    for section, _, _, names in sections[:2]:
        parts = []
        for name in ["minimal+sync"] + [n for n in names if n in
                                        ("podio-webhook", "pw API closed")]:
            figs = results.get((section, name), [])
            if not figs:
                continue
            mach = median_of(figs, "machine") or 0.0
            text = "%s: machine %.0f%%" % (name, mach)
            if figs[0].get("cpu_by") is not None:
                def per_event(key, f):
                    secs = f["cpu_by"].get(key, 0.0) / 100.0 * f["wall"]
                    return secs * 1e6 / max(f["acks"], 1)
                w = statistics.median(
                    per_event("pw-reader", f) + per_event("pw-worker", f) +
                    per_event("pw-finisher", f) for f in figs)
                p = statistics.median(per_event("pw-processor", f)
                                      for f in figs)
                text += ", server %.0f us/event (requests %.0f, " \
                    "processors %.0f)" % (w + p, w, p)
            parts.append(text)
        say("  %s: %s" % (section, "; ".join(parts)))


def row_of(section, scenario, connections, rnd, name, fig):
    """One run's figures, for the JSON."""
    row = {"section": section, "scenario": scenario,
           "connections": connections, "round": rnd, "backend": name}
    for key in ("rps", "p50", "p99", "requests", "acks", "non2xx",
                "socket_errors", "cpu", "stored", "stored_all", "done_in_run",
                "done", "tail", "api", "machine", "cpu_by", "wall"):
        if key in fig:
            row[key] = fig[key]
    return row


def gp_string(text):
    """text as a gnuplot double-quoted string."""
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace(
        "\n", "\\n")


def write_out(results, sections, rounds, drain, imported, pending, lat, rows,
              ctx):
    """Writes every figure as JSON (ack.json) and the chart of the first
    section (ack.png, with gnuplot when there is one) into ctx["out"]."""
    out = ctx["out"]
    mach = machine()
    command = command_line()
    medians = []
    for section, scenario, conns, names in sections:
        ref = median_of(results[(section, "minimal+sync")], "rps")
        for name in names:
            figs = results[(section, name)]
            rps = median_of(figs, "rps")
            medians.append({
                "section": section, "scenario": scenario,
                "connections": conns, "backend": name, "rps": rps,
                "p50": median_of(figs, "p50"), "p99": median_of(figs, "p99"),
                "ratio_to_reference": rps / ref if rps and ref else None})
    first = sections[0][0]
    pw = median_of(results.get((first, "podio-webhook"), []), "rps")
    compared = {}
    for name, goal in (("php-fpm", TARGET_PHP), ("webhook", TARGET_WEBHOOK)):
        rps = median_of(results.get((first, name), []), "rps")
        compared[name] = {
            "how": ctx["others"].get(name, "skipped: not installed"),
            "rps": rps, "podio_webhook_rps": pw,
            "ratio": pw / rps if pw and rps else None, "target": goal}
    doc = {
        "benchmark": "tests/bench/ack", "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": dict(mach, disk=ctx["fs"],
                        fdatasync_ms_median=statistics.median(lat),
                        fdatasync_ms_p99=percentile(lat, 99)),
        "seconds": ctx["seconds"], "rounds": rounds, "workers": WORKERS,
        "wrk_threads": WRK_THREADS, "rows": rows, "medians": medians,
        "compared": compared,
        "drain": drain,
        "import": imported,
        "pending": None if not pending else {
            k: v for k, v in pending.items() if k not in ("ref", "pw")},
    }
    try:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "ack.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        say("figures: %s" % path)
    except OSError as e:
        say("figures: not written: %s" % e)
        return
    if not ctx["gnuplot"]:
        say("chart: not drawn (gnuplot is not installed)")
        return
    data = os.path.join(out, "ack.dat")
    with open(data, "w") as f:
        for m in medians:
            if m["section"] == first and m["rps"] is not None:
                f.write('"%s" %.1f %.3f\n' % (m["backend"], m["rps"],
                                              m["p99"] or 0.0))
    png = os.path.join(out, "ack.png")
    heading = ("podio-webhook and what users run instead: %s, nginx and wrk "
               "on 127.0.0.1, medians of %d rounds of %d s\n"
               "%d CPUs (%s), %d MB, Linux %s, %s disk (fdatasync median "
               "%.2f ms)\nreproduce: %s" % (
                   first, rounds, ctx["seconds"], mach["nproc"], mach["cpu"],
                   mach["memory_mb"], mach["kernel"], ctx["fs"],
                   statistics.median(lat), command))
    params = os.path.join(out, "ack-params.gp")
    with open(params, "w") as f:
        f.write("datafile = %s\noutfile = %s\nheading = %s\n" % (
            gp_string(data), gp_string(png), gp_string(heading)))
    r = subprocess.run([ctx["gnuplot"], params,
                        os.path.join(HERE, "ack.gp")],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not os.path.exists(png):
        say("chart: gnuplot failed (exit %d): %s" % (
            r.returncode, r.stderr.strip()))
    else:
        say("chart: %s" % png)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a benchmark never fails the build
        say("ack benchmark: error: %s: %s" % (type(e).__name__, e))
    sys.exit(0)
