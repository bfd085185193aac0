#!/usr/bin/env python3
"""The acknowledgement benchmark of the durable intake (run by
tests/bench/ack and `make bench`).

nginx on 127.0.0.1 passes the same deliveries (comment.create, posted
by wrk with 16 connections) to three FastCGI backends in turn:

  - tests/bench/fcgi-minimal, which reads the body and answers 200
    (minimal: the reference of the target);
  - the same with a file to flush (minimal+sync): it writes each body to
    a preallocated file on the spool's disk and answers once an
    fdatasync that began after the write returned, one flush shared by
    the writes that queued meanwhile.  The simplest responder that stores
    before it answers: what flushing alone costs on this disk;
  - podio-webhook serve --workers 16, which stores every event in its
    spool (SQLite WAL, synchronous=FULL: fdatasync before the 200) and
    whose spool processors then take and finish the events.

The runs alternate (minimal, minimal+sync, podio-webhook, minimal...);
after each podio-webhook run the benchmark waits until the spool is
empty, so that the next run starts from the same state.  It prints the
figures of each run, the ratio of the median requests/s against minimal
(the target) and against minimal+sync, the median
p99 latencies, the disk's fdatasync latency measured next to the spool,
and the fdatasync+fsync calls podio-webhook made per acknowledged event
(counted by an LD_PRELOAD shim, tests/bench/sync-count.c; the count
includes the commits of the spool processors).  Below 1 per event at 16
connections, concurrent requests share commits (group commit).

A benchmark, not a test: it prints figures and exits 0 whatever they
are, also when wrk, nginx or a program is missing (it says why).

Usage: ack.py [BUILDDIR]   (default: $top_builddir, else .)
Environment: PODIO_BENCH_SECONDS (per run, default 10),
PODIO_BENCH_ROUNDS (default 2), PODIO_BENCH_CONNECTIONS (default 16),
PODIO_BENCH_DIR (where the spool goes, default BUILDDIR: it must be on
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

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))

TARGET_RATIO = 0.8
TARGET_P99_MS = 10.0
WORKERS = 16
WRK_THREADS = 2
PROBE_SYNCS = 200
PROBE_SIZE = 4096
DRAIN_TIMEOUT_S = 120


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


def run_wrk(url, script, seconds, connections, secret, run):
    argv = ["wrk", "-t", str(WRK_THREADS), "-c", str(connections),
            "-d", "%ds" % seconds, "--latency", "-s", script, url,
            "--", secret, str(run)]
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=seconds * 3 + 60)
    fig = parse_wrk(r.stdout)
    if fig is None:
        raise RuntimeError("wrk gave no figures (exit %d):\n%s%s" % (
            r.returncode, r.stdout, r.stderr))
    return fig

# ------------------------------------------------------------------ main


def ms_per(calls_ns):
    """Mean ms per call of a (calls, ns) pair; None without calls."""
    return calls_ns[1] / calls_ns[0] / 1e6 if calls_ns[0] else None


def median_p99(figs):
    """The median p99 of runs (None when no run had one)."""
    p99 = [f["p99"] for f in figs if f["p99"] is not None]
    return statistics.median(p99) if p99 else None


def fmt_ms(v):
    return "?" if v is None else "%.2f ms" % v


def main():
    builddir = os.path.abspath(
        (sys.argv[1] if len(sys.argv) > 1 else "") or
        os.environ.get("top_builddir") or ".")
    os.environ["top_builddir"] = builddir
    os.environ.setdefault("top_srcdir", SRCDIR)
    webhook = os.path.join(builddir, "handler", "podio-webhook")
    minimal = os.path.join(builddir, "tests", "bench", "fcgi-minimal")
    for prog, how in ((webhook, "make"),
                      (minimal, "make tests/bench/fcgi-minimal")):
        if not os.access(prog, os.X_OK):
            give_up("%s is missing (build it: %s)" % (prog, how))
    if not shutil.which("wrk"):
        give_up("wrk is not installed")
    sys.path.insert(0, os.path.join(SRCDIR, "tests", "e2e"))
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
    parent = os.path.abspath(os.environ.get("PODIO_BENCH_DIR") or builddir)

    root = servers.make_root()           # sockets, nginx, logs, the shim
    spool_parent = tempfile.mkdtemp(prefix="bench-spool-", dir=parent)

    def remove_spool():
        servers.cleanup()                # the server first: it uses it
        shutil.rmtree(spool_parent, ignore_errors=True)
    atexit.register(remove_spool)
    spool = os.path.join(spool_parent, "spool")
    kind = fstype(spool_parent)

    say("podio-webhook acknowledgement benchmark: nginx + wrk, %d "
        "connections, %d threads, %d s per run, %d rounds; %d CPUs" % (
            conns, WRK_THREADS, seconds, rounds, os.cpu_count() or 0))
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

    conf = os.path.join(root, "podio-webhook.conf")
    secret = secrets.token_hex(16)
    # No rules: a comment.create needs no API call, so the processors
    # only take and finish each event.  The server wants credentials: the
    # API URL is a closed loopback port, should anything use them.
    servers.write_file(conf, "\n".join([
        "client_id = bench",
        "client_secret = bench",
        "app_id = 1",
        "app_token = bench",
        "webhook_secret = " + secret,
        "spool_dir = " + spool,
        "api_url = http://127.0.0.1:%d" % servers.free_port(),
        "token_cache = ",
        ""]), mode=0o600)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PODIO_") and k != "LD_PRELOAD"}
    env["PODIO_WEBHOOK_CONFIG"] = conf
    if shim:
        env["LD_PRELOAD"] = shim
        env["PODIO_BENCH_SYNC_COUNTS"] = counts_file

    sock_webhook = os.path.join(root, "podio-webhook.sock")
    sock_minimal = os.path.join(root, "fcgi-minimal.sock")
    sock_flushing = os.path.join(root, "fcgi-minimal-sync.sock")
    srv = servers.Proc("podio-webhook serve",
                       shlex.split(os.environ.get("PODIO_BENCH_WRAPPER", "")) +
                       [webhook, "serve", "--listen", "unix:" + sock_webhook,
                        "--workers", str(WORKERS), "--socket-mode", "0666"],
                       os.path.join(root, "podio-webhook.log"), env=env)
    mini = servers.Proc("fcgi-minimal",
                        [minimal, "unix:" + sock_minimal, str(WORKERS)],
                        os.path.join(root, "fcgi-minimal.log"))
    flushing = servers.Proc(
        "fcgi-minimal (flushing)",
        [minimal, "unix:" + sock_flushing, str(WORKERS),
         os.path.join(spool_parent, "minimal-sync.ring")],
        os.path.join(root, "fcgi-minimal-sync.log"))
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
""" % dict(port=port, webhook=sock_webhook, minimal=sock_minimal,
           flushing=sock_flushing)
    ngx = servers.Nginx(root, site, port)

    # The status command runs without the shim: its calls are not the
    # server's.
    status_env = {k: v for k, v in env.items()
                  if k not in ("LD_PRELOAD", "PODIO_BENCH_SYNC_COUNTS")}

    def spool_status():
        r = subprocess.run([webhook, "spool", "status", "--json"],
                           env=status_env,
                           capture_output=True, text=True, timeout=60)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    def drained():
        st = spool_status()
        return st.get("pending") == 0 and st.get("in_flight") == 0 and \
            st.get("retrying") == 0

    try:
        srv.start()
        servers.wait_until(lambda: servers.socket_open(sock_webhook), 30,
                           "the podio-webhook socket", srv)
        mini.start()
        servers.wait_until(lambda: servers.socket_open(sock_minimal), 30,
                           "the fcgi-minimal socket", mini)
        flushing.start()
        servers.wait_until(lambda: servers.socket_open(sock_flushing), 30,
                           "the flushing fcgi-minimal's socket", flushing)
        ngx.start()
    except servers.ServerError as e:
        give_up("a server did not start: %s" % e)

    backends = ("minimal", "minimal+sync", "podio-webhook")
    procs = {"minimal": mini, "minimal+sync": flushing,
             "podio-webhook": srv}
    urls = {"minimal": "http://127.0.0.1:%d/minimal" % port,
            "minimal+sync": "http://127.0.0.1:%d/minimal-sync" % port,
            "podio-webhook": "http://127.0.0.1:%d/podio-hook" % port}
    script = os.path.join(HERE, "ack.lua")
    results = {name: [] for name in backends}
    run = 0
    try:
        # Warm up all (connections, page cache, the spool's first pages).
        for name in backends:
            run += 1
            run_wrk(urls[name], script, 2, conns, secret, run)
        servers.wait_until(drained, DRAIN_TIMEOUT_S, "the spool to drain",
                           srv)
        say()
        say("syncs/ack: fdatasync+fsync calls per acknowledged event, made "
            "by the request threads (intake), by the spool processors during"
            " the run (proc) and until the spool drained (proc+); sync ms: "
            "mean duration of an intake fdatasync; lock ms: mean wait of "
            "an intake commit for the spool's lock file (the queue of "
            "writers between handles; threads sharing one handle wait on "
            "its mutex first, not counted); cpu%: the backend's CPU time "
            "over the run's wall time")
        say("%-3s %-14s %10s %10s %10s %6s %5s %7s %7s %7s %8s %8s" % (
            "run", "backend", "requests/s", "p50", "p99", "errors", "cpu%",
            "intake", "proc", "proc+", "sync ms", "lock ms"))
        for rnd in range(1, rounds + 1):
            for name in backends:
                run += 1
                proc = procs[name]
                before = read_counts(counts_file)
                cpu0, t0 = cpu_seconds(proc.popen.pid), time.monotonic()
                fig = run_wrk(urls[name], script, seconds, conns, secret,
                              run)
                at_end = read_counts(counts_file)
                fig["cpu"] = (cpu_seconds(proc.popen.pid) - cpu0) / \
                    (time.monotonic() - t0) * 100.0
                extra = ""
                if name == "podio-webhook":
                    servers.wait_until(drained, DRAIN_TIMEOUT_S,
                                       "the spool to drain", srv)
                    after = read_counts(counts_file)
                    fig["run"] = diff(before, at_end)
                    fig["all"] = diff(before, after)
                    acks = max(fig["acks"], 1)
                    extra = "%7.3f %7.3f %7.3f %8.3f %8.3f" % (
                        fig["run"]["intake"][0] / acks,
                        fig["run"]["processors"][0] / acks,
                        fig["all"]["processors"][0] / acks,
                        ms_per(fig["run"]["intake"]) or 0.0,
                        ms_per(fig["run"]["intake_lock"]) or 0.0)
                results[name].append(fig)
                err = fig["non2xx"] + fig["socket_errors"]
                say(("%-3d %-14s %10.0f %10s %10s %6d %5.0f %s" % (
                    rnd, name, fig["rps"], fmt_ms(fig["p50"]),
                    fmt_ms(fig["p99"]), err, fig["cpu"], extra)).rstrip())
    except (servers.ServerError, RuntimeError,
            subprocess.TimeoutExpired) as e:
        say("ack benchmark: stopped early: %s" % e)
        say(srv.log_tail(20))
        return

    ngx.stop()
    mini.stop()
    flushing.stop()
    srv.stop()
    # The disk again, idle: shared or virtual disks vary over time.
    lat += probe_fdatasync(spool_parent)

    w, m = results["podio-webhook"], results["minimal"]
    fl = results["minimal+sync"]
    w_rps = statistics.median(f["rps"] for f in w)
    m_rps = statistics.median(f["rps"] for f in m)
    f_rps = statistics.median(f["rps"] for f in fl)
    w_p99 = median_p99(w)
    m_p99 = median_p99(m)
    f_p99 = median_p99(fl)
    ratio = w_rps / m_rps if m_rps else 0.0
    say()
    say("requests/s (median of %d runs): podio-webhook %.0f, minimal %.0f: "
        "ratio %.2f (target at least %.1f: %s)" % (
            rounds, w_rps, m_rps, ratio, TARGET_RATIO,
            "met" if ratio >= TARGET_RATIO else "NOT met"))
    say("p99 latency (median of %d runs): podio-webhook %s (target under "
        "%.0f ms: %s), minimal %s" % (
            rounds, fmt_ms(w_p99), TARGET_P99_MS,
            "met" if w_p99 is not None and w_p99 < TARGET_P99_MS else
            "NOT met", fmt_ms(m_p99)))
    say("the flushing reference (minimal+sync: stores each body with a "
        "shared fdatasync before its 200, nothing else): %.0f requests/s, "
        "%.2f of minimal, p99 %s; podio-webhook against it: %.2f" % (
            f_rps, f_rps / m_rps if m_rps else 0.0, fmt_ms(f_p99),
            w_rps / f_rps if f_rps else 0.0))
    say("disk fdatasync latency (write 4 KiB + fdatasync, %d times before "
        "and %d after the runs): median %s, p99 %s" % (
            PROBE_SYNCS, PROBE_SYNCS, fmt_ms(statistics.median(lat)),
            fmt_ms(percentile(lat, 99))))
    if shim:
        acks = max(sum(f["acks"] for f in w), 1)

        def total(when, who):
            return tuple(sum(f[when][who][i] for f in w) for i in (0, 1))
        intake = total("run", "intake")
        proc_run = total("run", "processors")
        proc_all = total("all", "processors")
        if intake[0] + proc_all[0] == 0:
            say("fdatasyncs per acknowledged event: not measured (the shim "
                "counted no call: LD_PRELOAD had no effect?)")
        else:
            say("fdatasyncs per acknowledged event: %.3f in the intake "
                "(%s: group commit %s), %.3f with the spool processors' "
                "commits during the runs, %.3f with all their commits until "
                "the spool drained (%d acknowledged events)" % (
                    intake[0] / acks,
                    "under 1" if intake[0] < acks else "1 or more",
                    "works" if intake[0] < acks else "not seen",
                    (intake[0] + proc_run[0]) / acks,
                    (intake[0] + proc_all[0]) / acks, acks))
            say("mean fdatasync inside podio-webhook during the runs: "
                "intake %s, spool processors %s" % (
                    fmt_ms(ms_per(intake)), fmt_ms(ms_per(proc_run))))
            lock = total("run", "intake_lock")
            plock = total("run", "processors_lock")
            say("wait for the spool's lock file during the runs: intake "
                "%s per commit (%d commits), spool processors %s per "
                "write (%d writes)" % (
                    fmt_ms(ms_per(lock)), lock[0], fmt_ms(ms_per(plock)),
                    plock[0]))
    say("(a benchmark: figures only, it never fails)")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a benchmark never fails the build
        say("ack benchmark: error: %s: %s" % (type(e).__name__, e))
    sys.exit(0)
