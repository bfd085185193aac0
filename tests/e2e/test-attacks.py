#!/usr/bin/env python3
"""The attack suite: podio-webhook `serve` behind real nginx and real
Apache mod_proxy_fcgi (from deploy/nginx-serve.conf and
deploy/apache-proxy-fcgi.conf, Apache with mod_reqtimeout as Debian
enables it), straight on its FastCGI socket, and as a CGI program under
Apache mod_cgid, against the Podio simulator turned hostile.

`serve` runs with its defaults (16 workers, client_timeout 10s, max_body
64K, max_response 16M) but `timeout = 2s` (the cases where the API never
answers) and `coalesce_window = 0`, with the test seams that make
retries and outage probes come in a tenth of a second.  Each case ends
with the documented status or a closed connection, no crash, and no
acknowledged event lost (at the end every delivery answered 200 reached
the `log *` file).  After each group of cases the server's peak RSS
(VmHWM, with ASAN_OPTIONS=quarantine_size_mb=0 in a sanitizer build) is
at most its start value + workers x max_body + processors x max_response
+ 20 MiB, and its open descriptors are back to their start value (what
libcurl keeps per thread apart: an API connection and a socket pair).
Should serve die, the failure is reported and it is started again for
the groups left.

The groups (PODIO_ATTACK_CASES="NAME ..." runs some only, see CASES):
- slow-clients: 64 clients trickling 600 B/s of a declared 60000-byte
  body through Apache (above mod_reqtimeout's MinRate, so Apache lets
  them be): every valid delivery sent meanwhile, one every half second,
  is answered 200 within a client's 10 s, and each slow client is cut at
  client_timeout (a status=408 line).  The latency figures are printed
  as a diagnostic, and written as JSON to PODIO_ATTACK_FIGURES when set
  (tests/bench/slow-clients).
- stalls: stalled connections, more than the workers (nothing sent, half
  a record header, a head without its body, a body cut short on the
  socket; a body that stops through Apache): each is closed at
  client_timeout with a status=408 line, and the deliveries behind them
  are answered at once.
- kept: idle kept connections (nginx fastcgi_keep_conn with keepalive,
  Apache enablereuse=on), three times as many as workers: bursts that
  make them are answered in time, and they hold no worker.
- sizes: a declared 1 MB body trickled gets its 413 before 10 kB of it
  are sent (and on the socket a GET's 405 and a POST's 411 come before
  the body, too); a 100 MB body its 413 before it is all sent;
  CONTENT_LENGTH lying both ways; 100,000 parameters; a 1 MB key.
- records: 100,000 FastCGI parameters, one of 1 MB, 100 MB of them, a
  name of 1 MB; then FastCGI records of every type and length, in and
  out of order, straight on the socket.
- forged: 10,000 forged item events (no secret or a wrong one) on the
  socket: each 403, no API call, no spool write.
- hostile-api: `Retry-After: 99999999999` (the pause is capped at an
  hour, `spool resume` ends it), an answer of 100 MB, JSON nested
  100,000 deep, invalid UTF-8, no answer at all: deliveries are still
  answered at once, a hook.verify gets its 502 within the API timeout,
  and each event reaches the callbacks once the API behaves.
- serve-refuses: a spool owned by someone else, group-writable, or with
  a symbolic link as its database: serve exits 2 and makes no socket.
- socket-path: serve's socket path appears only once it listens.
- cgi: the CGI program under Apache mod_cgid: the same sizes and
  lengths, and the untrusted spools answered 503 with a log line.
"""
import base64
import collections
import itertools
import json
import os
import re
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import attack  # noqa: E402
import fcgi  # noqa: E402
import scenario  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

USER, GROUP = "nobody", servers.WEB_GROUP
MIB = 1024 * 1024
# The key case: slow clients against the default 16 workers.
SLOW_CLIENTS = 64
SLOW_DECLARED = 60000
SLOW_RATE = 600
# A client's patience (Podio's own timeout is about 10 s).
CLIENT_WAIT = 10.0
# An answer "at once": within the client's patience.  The suite makes no
# claim on speed (that is make bench's); what it checks is that nothing
# waits for a deadline of something else, which would take longer.
PROMPT = CLIENT_WAIT
# How much later than its deadline a connection may be cut, at most: a
# bound against "never", generous for a loaded machine.
LATE = 20.0
# Statuses the handler documents (431: the variables of a request over
# their cap, see HACKING.md); a 500 never is.
DOCUMENTED = {200, 400, 403, 405, 408, 411, 413, 415, 431, 502, 503}
# Debian's mod_reqtimeout settings (reqtimeout.conf).
REQTIMEOUT = "RequestReadTimeout header=20-40,MinRate=500 body=20,MinRate=500"
SLACK = 20 * MIB

# nginx in front with kept FastCGI connections (fastcgi_keep_conn needs
# an upstream with keepalive), beside the shipped server block.
NGINX_KEEP = """
upstream podio_kept {
    server unix:%(sock)s;
    keepalive 64;
}
server {
    listen 127.0.0.1:%(port)d;
    server_name 127.0.0.1;
    location = /podio-hook {
        include fastcgi_params;
        fastcgi_pass podio_kept;
        fastcgi_keep_conn on;
        client_max_body_size 1m;
        fastcgi_read_timeout 90s;
    }
}
"""

# Apache with reused FastCGI connections, beside the shipped lines (a
# worker of its own: another name in the fcgi:// URL).
APACHE_REUSE = """
ProxyPass "/reuse/podio-hook" "unix:%(sock)s|fcgi://reuse/" \\
    enablereuse=on timeout=90
<Location "/reuse/podio-hook">
    ProxyFCGIBackendType GENERIC
    LimitRequestBody 1048576
    Require all granted
</Location>
"""


def size_of(text):
    """Bytes of a configuration size (64K, 16M, 100)."""
    m = re.match(r"^(\d+)([kKmM]?)$", text.strip())
    if not m:
        return 0
    return int(m.group(1)) * {"": 1, "k": 1024, "m": MIB}[m.group(2).lower()]


def mib(n):
    return "%.1f MiB" % (n / MIB)


def poll(fn, timeout):
    """fn()'s first true value within timeout seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v or None
        time.sleep(0.1)


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))] if v else 0.0


class Suite:
    """The deployment under attack and what every case shares."""

    def __init__(self, t, sim):
        self.t = t
        self.sim = sim
        self.ids = itertools.count(810000)
        self.acked = {}       # item_id -> type, answered 200 by serve
        self.acked_lock = threading.Lock()
        dep = self.dep = scenario.Deployment(sim, USER, GROUP)
        self.hook = dep.hook_ids[0]
        dep.write_config("timeout = 2s\ncoalesce_window = 0\n",
                         omit=("max_body",))
        self.ck = scenario.Checker(t, dep)
        self.sock = os.path.join(dep.rundir, "podio-webhook.sock")
        env = dep.env()
        # Peak RSS means something under AddressSanitizer only without
        # its quarantine of freed memory.
        env["ASAN_OPTIONS"] = "quarantine_size_mb=0"
        env["PODIO_TEST_BACKOFF_MS"] = "100"
        env["PODIO_TEST_PROBE_MS"] = "100"
        self.serve_env = env
        self.serve = None
        self.starts = 0

    # ------------------------------------------------------------ setup

    def start_serve(self):
        """Starts serve (again, after a crash) and waits until it listens;
        reads its workers and processors from its log line."""
        dep = self.dep
        self.serve = servers.Proc(
            "podio-webhook serve",
            servers.as_user(USER, GROUP) + [
                dep.binary, "-c", dep.config, "serve", "--listen",
                "unix:" + self.sock, "--socket-mode", "0660"],
            os.path.join(dep.root, "serve.log"), env=self.serve_env)
        if ("podio-webhook serve stderr", self.serve.log) not in dep.logs:
            dep.logs.append(("podio-webhook serve stderr", self.serve.log))
        self.serve.start()
        self.starts += 1
        pattern = re.compile(r"serving FastCGI on .* with (\d+) workers? "
                             r"and (\d+) spool processors?")
        lines = servers.wait_until(
            lambda: len(pattern.findall(testlib.read_text(
                self.serve.log))) >= self.starts and pattern.findall(
                    testlib.read_text(self.serve.log)),
            60, "serve to listen", self.serve)
        self.workers, self.processors = map(int, lines[-1])

    def start(self):
        dep = self.dep
        self.start_serve()
        conf = dict(ln.split(" = ", 1) for ln in
                    dep.cli("config").stdout.splitlines() if " = " in ln)
        self.max_body = size_of(conf.get("max_body", ""))
        self.max_response = size_of(conf.get("max_response", ""))
        self.client_timeout = float(conf.get("client_timeout", "10s")
                                    .rstrip("s"))

        self.nginx_port = servers.free_port()
        self.kept_port = servers.free_port()
        site = servers.substitute("nginx-serve.conf",
                                  LISTEN="127.0.0.1:%d" % self.nginx_port,
                                  SERVER_NAME="127.0.0.1", SOCKET=self.sock)
        site += NGINX_KEEP % dict(sock=self.sock, port=self.kept_port)
        self.nginx = servers.Nginx(dep.root, site, self.nginx_port)
        self.apache_port = servers.free_port()
        site = servers.substitute("apache-proxy-fcgi.conf", SOCKET=self.sock)
        site += APACHE_REUSE % dict(sock=self.sock)
        self.apache = servers.Apache(
            dep.root, site, self.apache_port,
            modules=["proxy", "proxy_fcgi", "reqtimeout"], extra=REQTIMEOUT)
        dep.logs[:0] = self.nginx.logs() + self.apache.logs()
        self.nginx.start()
        servers.wait_until(lambda: servers.port_open(self.kept_port), 30,
                           "nginx on its second port")
        self.apache.start()
        self.baseline()
        self.ck.ok(self.workers == 16 and self.client_timeout == 10 and
                   self.max_body and self.max_response,
                   "serve runs with its defaults: 16 workers, "
                   "client_timeout 10s")

    def baseline(self):
        """Warms serve up (each way in once, an item fetched, so that the
        start values include what a serving server keeps open), then
        takes its start values."""
        for port, path in self.routes():
            self.valid(port, path, "item.create")
        self.valid_fcgi("item.create")
        self.wait_logged("the warm-up events", 30)
        time.sleep(1)
        self.hwm0 = attack.vm_hwm(self.pid())
        self.fds0, _api = attack.descriptors(self.pid(), self.sim.port)
        self.limit = (self.hwm0 + self.workers * self.max_body +
                      self.processors * self.max_response + SLACK)
        self.t.diag("serve: %d workers, %d processors, max_body %d, "
                    "max_response %d, client_timeout %gs; start: peak RSS "
                    "%s, %d descriptors; bound %s" % (
                        self.workers, self.processors, self.max_body,
                        self.max_response, self.client_timeout,
                        mib(self.hwm0), len(self.fds0), mib(self.limit)))

    def restart(self):
        """After serve died: starts it again, so that the groups left
        still test something (each failure was reported already)."""
        self.t.diag("serve is gone (status %s): starting it again for the "
                    "groups left" % self.serve.returncode())
        self.serve.stop()
        self.start_serve()
        self.baseline()

    def pid(self):
        return self.serve.popen.pid

    def routes(self):
        """(port, path) of the ways in through a web server."""
        return [(self.nginx_port, "/podio-hook"),
                (self.apache_port, "/podio-hook")]

    # ------------------------------------------------------------ deliveries

    def body(self, type_="item.delete", item_id=None, secret=True, extra=()):
        """(item_id, form body) of a delivery to the allowed hook."""
        item_id = next(self.ids) if item_id is None else item_id
        pairs = [("type", type_), ("hook_id", str(self.hook)),
                 ("item_id", str(item_id)),
                 ("item_revision_id", str(item_id * 10 + 1))] + list(extra)
        if secret:
            pairs.append(("secret", self.dep.secret))
        return item_id, urllib.parse.urlencode(pairs).encode()

    def ack(self, status, item_id, type_):
        if status == 200:
            with self.acked_lock:
                self.acked[item_id] = type_

    def valid(self, port, path, type_="item.delete", timeout=CLIENT_WAIT):
        """One valid delivery through a web server: (status, seconds)."""
        item_id, body = self.body(type_)
        st, secs, _raw = attack.post(port, path, body, timeout)
        self.ack(st, item_id, type_)
        return st, secs

    def valid_fcgi(self, type_="item.delete", timeout=CLIENT_WAIT):
        """One valid delivery straight on the socket: (status, seconds)."""
        item_id, body = self.body(type_)
        t0 = time.monotonic()
        try:
            st = fcgi.delivery(self.sock, body, timeout=timeout).status
        except (OSError, fcgi.ProtocolError):
            st = 0
        self.ack(st, item_id, type_)
        return st, time.monotonic() - t0

    def valid_everywhere(self, label, n=2):
        """n valid deliveries each way in, one after the other: checks
        that each is answered 200 at once."""
        got = []
        for _ in range(n):
            for port, path in self.routes():
                got.append(("port %d" % port,) + self.valid(port, path))
            got.append(("socket",) + self.valid_fcgi())
        self.ck.ok(all(st == 200 and secs < PROMPT for _w, st, secs in got),
                   "%s: deliveries through nginx, Apache and the socket are "
                   "answered 200 at once (under %gs)" % (label, PROMPT),
                   "\n".join("%s: %d in %.2fs" % g for g in got))

    def logged(self):
        """{item_id: type} of the events in the `log *` file."""
        events, _bad = scenario.read_events(self.dep.events_log)
        return {e.get("item_id"): e.get("type") for e in events}

    def wait_logged(self, what, timeout=60):
        """Waits until every acknowledged event is in the `log *` file;
        returns the ids still missing."""
        deadline = time.monotonic() + timeout
        while True:
            with self.acked_lock:
                want = dict(self.acked)
            got = self.logged()
            missing = sorted(i for i in want if i not in got)
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.2)

    def count408(self):
        return testlib.read_text(self.serve.log).count("status=408")

    def spool_status(self):
        r = self.dep.cli("spool", "status", "--json")
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    def settle(self, timeout=30):
        """Waits until the spool holds nothing pending, retrying or in
        flight; whether it does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.spool_status()
            if st.get("pending") == 0 and st.get("in_flight") == 0 and \
                    st.get("retrying") == 0:
                return True
            time.sleep(0.2)
        return False

    # ------------------------------------------------------------ bounds

    def peak(self, group):
        """Checks serve's peak RSS against the bound."""
        hwm = attack.vm_hwm(self.pid())
        self.ck.ok(0 < hwm <= self.limit,
                   "%s: serve's peak RSS %s, within start %s + %d workers x "
                   "max_body + %d processors x max_response + 20 MiB = %s"
                   % (group, mib(hwm), mib(self.hwm0), self.workers,
                      self.processors, mib(self.limit)))

    def bounds(self, group):
        """The checks after each group: serve still runs, its peak RSS
        within the bound, its descriptors back to their start value."""
        ck = self.ck
        if not ck.ok(self.serve.alive() and self.nginx.proc.alive() and
                     self.apache.proc.alive(),
                     "%s: serve, nginx and Apache still run" % group,
                     self.serve.log_tail()):
            return
        self.peak(group)
        deadline = time.monotonic() + self.client_timeout + 5
        while True:
            others, kept = attack.descriptors(self.pid(), self.sim.port)
            if others == self.fds0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        more = collections.Counter(others) - collections.Counter(self.fds0)
        fewer = collections.Counter(self.fds0) - collections.Counter(others)
        ck.ok(others == self.fds0,
              "%s: serve's open descriptors are back to their start value "
              "(%d; and %d kept by libcurl)" % (group, len(self.fds0),
                                                len(kept)),
              "now %d: more %r, fewer %r" % (len(others), dict(more),
                                             dict(fewer)))
        ck.ok(len(kept) <= 3 * (self.workers + self.processors),
              "%s: libcurl keeps at most an API connection and a socket "
              "pair per thread (%d descriptors)" % (group, len(kept)))

# ------------------------------------------------------------------ cases


def case_slow_clients(s):
    """64 slow clients through Apache against the default 16 workers;
    valid deliveries meanwhile, one every half second."""
    ck = s.ck
    c0 = s.count408()
    attack_s = 2 * s.client_timeout
    slow = attack.SlowClients(s.apache_port, "/podio-hook", SLOW_CLIENTS,
                              SLOW_DECLARED, SLOW_RATE).start()
    results, threads = [], []
    lock = threading.Lock()

    def one(at):
        st, secs = s.valid(s.apache_port, "/podio-hook")
        with lock:
            results.append((at, st, secs))
    t0 = time.monotonic()
    next_at = 1.0
    while True:
        now = time.monotonic() - t0
        if now >= attack_s:
            break
        if now >= next_at and next_at <= attack_s - 2:
            th = threading.Thread(target=one, args=(round(now, 1),))
            th.start()
            threads.append(th)
            next_at += 0.5
        time.sleep(0.05)
    for th in threads:
        th.join(CLIENT_WAIT + 5)
    # Each slow client is cut at its deadline: its 408 line comes at
    # client_timeout (LATE at most after it, counted from the end of the
    # attack, which lasts longer than a deadline).
    until = time.monotonic() + LATE
    while s.count408() - c0 < SLOW_CLIENTS and time.monotonic() < until:
        time.sleep(0.2)
    cut_by = s.count408() - c0
    outcomes = slow.stop()
    late = [r for r in results if r[1] != 200 or r[2] >= CLIENT_WAIT]
    secs = [r[2] for r in results if r[1] == 200]
    figures = ("%d deliveries through Apache beside %d slow clients: "
               "median %.0f ms, p90 %.0f ms, max %.0f ms; %d not answered "
               "200 within %gs" % (
                   len(results), SLOW_CLIENTS, 1000 * percentile(secs, 0.5),
                   1000 * percentile(secs, 0.9),
                   1000 * max(secs or [0]), len(late), CLIENT_WAIT))
    s.t.diag("latency: " + figures)
    figures_file = os.environ.get("PODIO_ATTACK_FIGURES")
    if figures_file:
        with open(figures_file, "w") as f:
            json.dump({"deliveries": len(results), "slow_clients":
                       SLOW_CLIENTS, "answered": len(secs),
                       "late": len(late),
                       "median_ms": 1000 * percentile(secs, 0.5),
                       "p90_ms": 1000 * percentile(secs, 0.9),
                       "max_ms": 1000 * max(secs or [0])}, f)
            f.write("\n")
    ck.ok(results and not late,
          "%d slow clients trickling %d B/s through Apache: every valid "
          "delivery sent meanwhile is answered 200 within %gs" % (
              SLOW_CLIENTS, SLOW_RATE, CLIENT_WAIT),
          "late or refused (sent at, status, seconds):\n" +
          "\n".join("%.1f %d %.2f" % r for r in sorted(late)))
    ck.ok(cut_by >= SLOW_CLIENTS,
          "each slow client is cut at client_timeout: %d status=408 lines "
          "(want %d)" % (cut_by, SLOW_CLIENTS))
    statuses = collections.Counter(o[2] for o in outcomes)
    ck.ok(200 not in statuses,
          "no slow client's request was taken (outcomes %s)" % dict(
              statuses))
    s.bounds("slow clients")


def case_stalls(s):
    """Stalled connections, more than the workers, each cut at its
    deadline; the deliveries behind them answered at once."""
    ck = s.ck
    c0 = s.count408()
    _i, body = s.body()
    params = fcgi.cgi_params(body)
    kinds = [("a connection that sends nothing", b""),
             ("half a record header", attack.begin()[:4]),
             ("a head without its body", attack.head(params)),
             ("a body cut short", attack.head(params) +
              attack.record(fcgi.STDIN, 1, body[:10]))]
    per_kind = 5
    conns, kind_of = [], []
    for name, data in kinds:
        for _ in range(per_kind):
            conns.append((attack.stalled(s.sock, data), time.monotonic()))
            kind_of.append(name)
    through = attack.SlowClients(s.apache_port, "/podio-hook", s.workers,
                                 1000, 0, first=10).start()
    time.sleep(0.5)
    s.valid_everywhere("%d stalled connections on the socket and %d "
                       "through Apache" % (len(conns), s.workers))
    closed = attack.wait_closed(conns, s.client_timeout + LATE + 1)
    for c, _t in conns:
        c.close()
    for name, _data in kinds:
        times = [closed.get(i) for i in range(len(conns))
                 if kind_of[i] == name]
        ck.ok(all(x is not None and s.client_timeout - 1 <= x <=
                  s.client_timeout + LATE for x in times),
              "%s (x%d): closed by the server at client_timeout" % (
                  name, per_kind),
              "closed after (s): %r" % times)
    # Apache's stalled clients are cut by the server too.
    deadline = time.monotonic() + 5
    want = len(conns) + s.workers
    while s.count408() - c0 < want and time.monotonic() < deadline:
        time.sleep(0.1)
    outcomes = through.stop()
    ck.ok(s.count408() - c0 >= want,
          "a status=408 line for each stalled connection (%d of %d)" % (
              s.count408() - c0, want),
          "Apache's stalled clients ended: %r" % collections.Counter(
              o[2] for o in outcomes))
    s.bounds("stalled connections")


def concurrent(s, port, path, n):
    """n valid deliveries at once through port: [(status, seconds)]."""
    out = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        out[i] = s.valid(port, path)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(CLIENT_WAIT + 10)
    return [o or (0, 0.0) for o in out]


def server_conns(s):
    """How many connections to the FastCGI socket serve holds open now
    (descriptors beyond the start value)."""
    others, _api = attack.descriptors(s.pid(), s.sim.port)
    return len(others) - len(s.fds0)


def case_kept(s):
    """Idle kept connections, three times as many as workers, through
    nginx (fastcgi_keep_conn) and Apache (enablereuse=on)."""
    ck = s.ck
    n = 3 * s.workers
    for label, port, path in (
            ("nginx, fastcgi_keep_conn on", s.kept_port, "/podio-hook"),
            ("Apache, enablereuse=on", s.apache_port, "/reuse/podio-hook")):
        got = concurrent(s, port, path, n)
        bad = [g for g in got if g[0] != 200 or g[1] >= CLIENT_WAIT]
        ck.ok(not bad, "%s: %d deliveries at once, each answered 200 "
              "within %gs" % (label, n, CLIENT_WAIT),
              "%d late or refused: %r" % (len(bad), sorted(bad)[:10]))
        time.sleep(0.5)
        kept = server_conns(s)
        s.t.diag("%s: serve holds %d connections after the burst" % (
            label, kept))
        s.valid_everywhere("%s, with %d connections kept idle" % (label,
                                                                  kept))
    s.bounds("idle kept connections")


def case_sizes(s):
    """Refusals before the body, lying lengths, huge bodies, many
    parameters and a huge key: through nginx, Apache and the socket."""
    ck = s.ck
    ways = [("nginx", s.nginx_port, "/podio-hook"),
            ("Apache", s.apache_port, "/podio-hook")]
    # A declared 1 MB body trickled: 413 at once.  nginx keeps bodies up
    # to client_max_body_size (1m) to itself before passing them on, so
    # it is given one over that, which it refuses itself.
    # Apache's mod_proxy_fcgi passes the answer on between its reads of
    # the body, a few seconds later: "at once" is then "long before the
    # body could be complete" (it would take half an hour).
    for name, port, path in ways:
        declared = 2 * MIB if name == "nginx" else 1000000
        st, secs, sent = attack.big_post(port, path, declared, declared,
                                         timeout=CLIENT_WAIT, rate=600)
        ck.ok(st == 413 and sent < 10000,
              "%s: a declared %d-byte body trickled at 600 B/s: 413 before "
              "10 kB of it were sent (%.2fs, %d bytes)" % (
                  name, declared, secs, sent), "status %s" % st)
    a = attack.fcgi_raw(s.sock, attack.head(fcgi.cgi_params(
        b"", content_length="1000000")) + attack.record(
            fcgi.STDIN, 1, b"x" * 100), timeout=PROMPT + 2,
        half_close=False)
    ck.ok(a.status == 413 and a.seconds < PROMPT,
          "socket: a declared 1 MB body, 100 bytes of it sent: 413 at once",
          a)
    # The other refusals decided from the head alone.
    for what, params, want in (
            ("a GET with a body", fcgi.cgi_params(
                b"", method="GET", content_length="1000"), 405),
            ("a POST without CONTENT_LENGTH", fcgi.cgi_params(
                b"", content_length=False), 411)):
        a = attack.fcgi_raw(s.sock, attack.head(params) + attack.record(
            fcgi.STDIN, 1, b"x" * 10), timeout=PROMPT + 2, half_close=False)
        ck.ok(a.status == want and a.seconds < PROMPT,
              "socket: %s, its body never finished: %d at once" % (what,
                                                                   want), a)

    # A 100 MB body: refused before it is all sent.
    total = 100 * MIB
    for name, port, path in ways:
        st, secs, sent = attack.big_post(port, path, total, total,
                                         timeout=CLIENT_WAIT)
        ck.ok(st == 413 and sent < total,
              "%s: a 100 MB body: 413 after %.2fs, %.1f MB of it sent" % (
                  name, secs, sent / 1e6), "status %s" % st)
    st, secs, sent = attack.fcgi_push(s.sock, fcgi.cgi_params(
        b"", content_length=str(total)), total, timeout=CLIENT_WAIT)
    ck.ok(st == 413 and sent < total,
          "socket: a 100 MB body: 413 after %.2fs, %.1f MB of it sent" % (
              secs, sent / 1e6), "status %s" % st)

    # CONTENT_LENGTH lying: more than the body (the client then stops
    # sending), and less than the body.
    for name, port, path in ways:
        item_id, body = s.body()
        st, secs, raw = attack.post(port, path, body, PROMPT + 5,
                                    length=len(body) + 100, half_close=True)
        s.ack(st, item_id, "item.delete")
        ck.ok(st != 200 and (st == 0 or st in (400, 408)),
              "%s: Content-Length 100 more than the body sent: refused "
              "(%s after %.2fs)" % (name, st or "closed", secs), raw[:300])
        _i, part = s.body(secret=False)
        rest = b"&secret=" + urllib.parse.quote(s.dep.secret).encode()
        st, secs, raw = attack.post(port, path, part + rest, PROMPT + 5,
                                    length=len(part))
        ck.ok(st == 403,
              "%s: Content-Length short of the body: the handler judges "
              "the declared bytes alone (403 after %.2fs, the secret beyond "
              "them is not read)" % (name, secs), raw[:300])
    item_id, body = s.body()
    a = attack.fcgi_raw(s.sock, attack.request(
        body, content_length=str(len(body) + 100)), timeout=PROMPT)
    s.ack(a.status, item_id, "item.delete")
    ck.ok(a.status == 400,
          "socket: CONTENT_LENGTH 100 more than the body: 400", a)
    item_id, body = s.body()
    a = attack.fcgi_raw(s.sock, attack.head(fcgi.cgi_params(
        body)) + fcgi._stream(fcgi.STDIN, 1, body + b"&more=1" * 100),
        timeout=PROMPT)
    s.ack(a.status, item_id, "item.delete")
    ck.ok(a.status == 200,
          "socket: a body longer than CONTENT_LENGTH: the announced bytes "
          "alone are the request (200, as through a web server)", a)

    # 100,000 parameters and a 1 MB key: over max_body.
    _i, tail = s.body()
    many = b"p&" * 100000 + tail
    key = b"k" * MIB + b"=v&" + tail
    for what, body in (("100,000 parameters", many), ("a 1 MB key", key)):
        for name, port, path in ways:
            st, secs, raw = attack.post(port, path, body, CLIENT_WAIT)
            ck.ok(st == 413, "%s: %s: 413 (%.2fs)" % (name, what, secs),
                  raw[:300])
        st, secs, sent = attack.fcgi_push(s.sock, fcgi.cgi_params(body),
                                          len(body), timeout=CLIENT_WAIT)
        ck.ok(st == 413, "socket: %s: 413 (%.2fs)" % (what, secs),
              "status %s" % st)
    a = attack.fcgi_raw(s.sock, attack.request(
        tail, query="k" * MIB + "=v"), timeout=CLIENT_WAIT)
    ck.ok(a.status in (413, 431),
          "socket: a 1 MB key in the query string: %d (413 over max_body, "
          "431 over the cap of a request's variables)" % a.status, a)
    s.valid_everywhere("after the size cases")
    s.bounds("sizes and lengths")


def case_records(s):
    """Floods of FastCGI parameters, then FastCGI records of every type
    and length straight on the socket."""
    ck = s.ck
    # The documented status or a closed connection, in bounded memory.
    for what, pairs, size in (("100,000 FastCGI parameters", 100000, 1),
                              ("a FastCGI parameter of 1 MB", 1, MIB),
                              ("100 MB of FastCGI parameters", 100, MIB)):
        item_id, body = s.body()
        st, secs, sent = attack.fcgi_params_flood(s.sock, pairs, size, body,
                                                  timeout=CLIENT_WAIT)
        s.ack(st, item_id, "item.delete")
        ck.ok(st is not None and (st == 0 or st in DOCUMENTED) and
              s.valid_fcgi()[0] == 200,
              "socket: %s: %s after %.2fs (%.1f MB sent), and serve still "
              "answers" % (what, st or "closed", secs, sent / 1e6))
    _i, tail = s.body()
    a = attack.fcgi_raw(s.sock, attack.head({("K" * MIB): "v"}) +
                        fcgi._stream(fcgi.STDIN, 1, tail),
                        timeout=CLIENT_WAIT)
    ck.ok(a.ended and (a.status == 0 or a.status in DOCUMENTED) and
          s.valid_fcgi()[0] == 200,
          "socket: a FastCGI parameter name of 1 MB: %s, and serve still "
          "answers" % (a.status or "closed"), a)
    s.peak("floods of FastCGI parameters")

    seqs = attack.fcgi_streams(s.body)
    answers = [None] * len(seqs)
    todo = list(range(len(seqs)))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            answers[i] = attack.fcgi_raw(s.sock, seqs[i][1], timeout=PROMPT)
    pool = [threading.Thread(target=worker) for _ in range(8)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(120)
    bad = []
    for (name, _data, item_id), a in zip(seqs, answers):
        if a is None:
            bad.append("%s: not run" % name)
            continue
        s.ack(a.status, item_id, "item.delete")
        if not a.ended or (a.status and a.status not in DOCUMENTED) or \
                a.proto not in (None, 0, 1, 2, 3):
            bad.append("%s: %r" % (name, a))
    # A server that died closed the connections it had: it must still
    # answer the next delivery.
    after = s.valid_fcgi(timeout=PROMPT)
    if after[0] != 200 or not s.serve.alive():
        bad.insert(0, "afterwards serve does not answer (%s): %s" % (
            after[0], "running" if s.serve.alive() else "gone"))
    ck.ok(not bad, "%d streams of FastCGI records of every type and length, "
          "in and out of order, each closed by the sending side: each ends "
          "within %gs, with a documented status or none, and serve answers "
          "the next delivery" % (len(seqs), PROMPT), "\n".join(bad[:40]))
    s.t.diag("answers: %r" % collections.Counter(
        a.status for a in answers if a is not None))
    s.valid_everywhere("after the FastCGI records")
    s.bounds("FastCGI records")


def case_forged(s):
    """10,000 forged item events on the socket: 403 each, no API call,
    no spool write."""
    ck = s.ck
    ck.ok(s.settle(), "the spool is idle before the forged events",
          s.spool_status())
    spool = os.path.join(s.dep.state, "spool")

    def files():
        return [(os.stat(f).st_size, os.stat(f).st_mtime_ns)
                for f in (os.path.join(spool, name) for name in (
                    "spool.db", "spool.db-wal", "intake.db",
                    "intake.db-wal"))
                if os.path.exists(f)]
    counts_of = ("pending", "retrying", "in_flight", "dead", "bad")

    def status():
        st = s.spool_status()
        return {k: st.get(k) for k in counts_of}
    files0, status0 = files(), status()
    s.sim.clear_requests()
    n, conns = 10000, 8
    counts = collections.Counter()
    lock = threading.Lock()

    def forge(k):
        mine = collections.Counter()
        try:
            with fcgi.Connection(s.sock, timeout=CLIENT_WAIT) as c:
                for i in range(k, n, conns):
                    secret = None if i % 2 else "not-the-secret"
                    extra = () if secret is None else (("secret", secret),)
                    _id, body = s.body("item.update", 5000000 + i,
                                       secret=False, extra=extra)
                    r = c.request(fcgi.cgi_params(body), body,
                                  keep_conn=True)
                    mine[r.status] += 1
        except (OSError, fcgi.ProtocolError) as exc:
            mine["error: %s" % exc] += 1
        with lock:
            counts.update(mine)
    t0 = time.monotonic()
    threads = [threading.Thread(target=forge, args=(k,))
               for k in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    secs = time.monotonic() - t0
    calls = s.sim.requests()
    ck.ok(counts == {403: n} and not calls and files() == files0 and
          status() == status0,
          "%d forged item events on %d kept connections (%.1fs): each 403, "
          "no API call, the spool's files untouched" % (n, conns, secs),
          (dict(counts), calls[:3], files0, files()))
    s.bounds("forged events")


def fetched(s, item_id):
    """The logged event of item_id once its item is in it (or None)."""
    for e in scenario.read_events(s.dep.events_log)[0]:
        if e.get("item_id") == item_id and (e.get("item") or {}).get(
                "item_id") == item_id:
            return e
    return None


def hostile_item(s, label, rule, item_id=None, patience=30):
    """An item event (of item_id, or a new one) whose first fetch meets
    the fail rule (keys of Sim.fail()) and is answered 200 at once; the
    event then reaches the callbacks with its item (the retry, or the
    probe, gets it)."""
    ck, sim = s.ck, s.sim
    ck.ok(s.settle(), "%s: the spool is idle first" % label)
    rid = sim.fail("/item/", **rule)
    item_id, body = s.body("item.update", item_id)
    st, secs, _raw = attack.post(s.nginx_port, "/podio-hook", body,
                                 CLIENT_WAIT)
    s.ack(st, item_id, "item.update")
    ck.ok(st == 200 and secs < PROMPT,
          "%s: the delivery is answered 200 at once (%.2fs)" % (label, secs))
    hit = poll(lambda: [r for r in sim.fails()
                        if r["id"] == rid and r["hits"]], 30 if st == 200
               else 0)
    meanwhile = s.valid(s.apache_port, "/podio-hook")
    ck.ok(meanwhile[0] == 200 and meanwhile[1] < PROMPT,
          "%s: another delivery meanwhile: 200 at once" % label,
          meanwhile)
    deadline = time.monotonic() + patience
    while fetched(s, item_id) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    ck.ok(hit and fetched(s, item_id) is not None,
          "%s: then the event reaches the callbacks with its item" % label,
          "rule %r; spool %r" % (sim.fails(), s.spool_status()))
    sim.clear_fails()
    return item_id


def hostile_verify(s, label, rule):
    """A hook.verify whose validation meets the fail rule: answered 502
    within the API timeout and a little; a delivery meanwhile 200."""
    ck, sim = s.ck, s.sim
    sim.fail("/hook/", **rule)
    out = {}

    def verify():
        body = urllib.parse.urlencode([
            ("type", "hook.verify"), ("hook_id", str(s.hook)),
            ("code", "c0de"), ("secret", s.dep.secret)])
        out["r"] = attack.post(s.apache_port, "/podio-hook", body,
                               CLIENT_WAIT + 20)
    th = threading.Thread(target=verify)
    th.start()
    time.sleep(0.3)
    meanwhile = s.valid(s.nginx_port, "/podio-hook")
    th.join(CLIENT_WAIT + 30)
    st, secs, raw = out.get("r", (0, 0.0, b""))
    ck.ok(st == 502 and secs < 2 + LATE,
          "%s: hook.verify answered 502 after %.2fs (timeout 2s)" % (
              label, secs), raw[:300])
    ck.ok(meanwhile[0] == 200 and meanwhile[1] < PROMPT,
          "%s: a delivery meanwhile: 200 at once" % label, meanwhile)
    sim.clear_fails()


def case_hostile_api(s):
    """The API answers with a huge pause, 100 MB, deep JSON, invalid
    UTF-8, or not at all."""
    ck, sim = s.ck, s.sim
    # Retry-After: 99999999999 pauses for at most an hour.
    ck.ok(s.settle(), "Retry-After: the spool is idle first")
    sim.fail("/item/", status=420, headers={"Retry-After": "99999999999"})
    item_id, body = s.body("item.update")
    st, _secs, _raw = attack.post(s.nginx_port, "/podio-hook", body,
                                  CLIENT_WAIT)
    s.ack(st, item_id, "item.update")
    paused = poll(lambda: s.spool_status().get("api_paused_s"),
                  30 if st == 200 else 0) or 0
    ck.ok(st == 200 and 0 < paused <= 3600,
          "a 420 with Retry-After: 99999999999: the API calls pause for "
          "%s s, at most an hour" % paused, s.spool_status())
    meanwhile = s.valid(s.apache_port, "/podio-hook")
    ck.ok(meanwhile[0] == 200 and meanwhile[1] < PROMPT,
          "while paused, deliveries are answered 200 at once", meanwhile)
    r = s.dep.cli("spool", "resume")
    deadline = time.monotonic() + 30
    while fetched(s, item_id) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    ck.ok(r.returncode == 0 and fetched(s, item_id) is not None,
          "spool resume ends the pause: the paused event reaches the "
          "callbacks with its item", r.stdout + r.stderr)
    sim.clear_fails()

    # An answer that says its length is refused on sight; one in chunks
    # is read up to max_response.
    for label, chunked in (("an answer of 100 MB", False),
                           ("an answer of 100 MB in chunks", True)):
        rule = dict(status=200, stream_bytes=100 * MIB, chunked=chunked)
        hostile_item(s, label, rule)
        hostile_verify(s, label, rule)
    hostile_item(s, "JSON arrays nested 100,000 deep", dict(
        status=200, body="[" * 100000 + "]" * 100000,
        content_type="application/json"))
    hostile_item(s, "JSON objects nested 100,000 deep", dict(
        status=200, body='{"a":' * 100000 + "1" + "}" * 100000,
        content_type="application/json"))
    item_id = next(s.ids)
    bad = json.dumps({"item_id": item_id, "app": {"app_id": 1234},
                      "title": "@BAD@", "fields": [], "external_id": None}
                     ).encode().replace(b"@BAD@", b"\xff\xfe\xc0\xaf\xed"
                                        b"\xa0\x80 bad")
    hostile_item(s, "invalid UTF-8 in the item", dict(
        status=200, body_base64=base64.b64encode(bad).decode(),
        content_type="application/json; charset=utf-8"), item_id)
    hostile_item(s, "an API that never answers", dict(hang=True))
    hostile_verify(s, "an API that never answers", dict(hang=True))
    events, unparsable = [], []
    with open(s.dep.events_log, "rb") as f:
        for line in f:
            try:
                events.append(json.loads(line.decode("utf-8")))
            except ValueError:
                unparsable.append(line[:200])
    ck.ok(events and not unparsable,
          "every line of the `log *` file is JSON in valid UTF-8",
          unparsable[:3])
    s.bounds("hostile API")


def bad_spools(base, owner, group, db_source):
    """(label, directory) of spool directories to refuse, made under base
    for a process running as owner: one of root's, a group-writable one,
    and one whose database is a link to db_source's."""
    other = servers.mkdir(os.path.join(base, "spool-of-root"), 0o755)
    gw = servers.mkdir(os.path.join(base, "spool-group-writable"), 0o770,
                       owner, group)
    linked = servers.mkdir(os.path.join(base, "spool-linked-db"), 0o700,
                           owner, group)
    os.symlink(os.path.join(db_source, "spool.db"),
               os.path.join(linked, "spool.db"))
    return [("a spool directory owned by someone else", other),
            ("a group-writable spool directory", gw),
            ("a spool database that is a symbolic link", linked)]


def case_serve_refuses(s):
    """serve refuses a spool it cannot trust: exit 2, no socket."""
    dep = s.dep
    good = os.path.join(dep.state, "spool")
    for label, spool in bad_spools(servers.mkdir(os.path.join(
            dep.root, "refused"), 0o755), USER, GROUP, good):
        sock = os.path.join(dep.rundir, "refused.sock")
        r = testlib.run(servers.as_user(USER, GROUP) + [
            dep.binary, "-c", dep.config, "-o", "spool_dir=" + spool,
            "serve", "--listen", "unix:" + sock], env=dep.env(), wrap=False,
            timeout=60)
        s.ck.ok(r.returncode == 2 and spool in r.stderr and
                not os.path.exists(sock),
                "serve with %s: exit 2, saying why, no socket" % label,
                "exit %d: %s" % (r.returncode, r.stderr))


def case_socket_path(s):
    """A second serve: its socket path appears only once it listens,
    and the first connection to it is taken."""
    dep = s.dep
    wdir = servers.mkdir(os.path.join(dep.root, "sockdir"), 0o750, USER,
                         servers.WEB_GROUP)
    path = os.path.join(wdir, "fcgi.sock")
    ino = testlib.inotify_watch(wdir)
    if ino is None:
        s.t.skip("the socket path appears only once it listens",
                 "inotify is not available here")
        return
    first = {}

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not os.path.exists(path):
            time.sleep(0.001)
        try:
            first["status"] = fcgi.delivery(path, s.body(secret=False)[1],
                                            timeout=CLIENT_WAIT).status
        except (OSError, fcgi.ProtocolError) as exc:
            first["status"] = repr(exc)
    th = threading.Thread(target=watch)
    th.start()
    proc = servers.Proc("second serve", servers.as_user(USER, GROUP) + [
        dep.binary, "-c", dep.config, "-o",
        "spool_dir=" + os.path.join(dep.state, "spool-second"),
        "serve", "--listen", "unix:" + path, "--workers", "2"],
        os.path.join(dep.root, "serve-second.log"), env=s.serve_env).start()
    th.join(70)
    evs = testlib.inotify_events(ino)
    os.close(ino)
    mine = [m for n, m in evs if n == "fcgi.sock"]
    s.ck.ok(mine == [testlib.IN_MOVED_TO] and first.get("status") == 403,
            "serve's socket path appears only once it listens (renamed into "
            "place), and the first connection to it is answered",
            "events %r, first %r" % (evs, first))
    killed = proc.stop()
    s.ck.ok(not killed and proc.stopped_status == 0,
            "the second serve stops cleanly", killed)

# ------------------------------------------------------------------ CGI


def case_cgi(t, sim):
    """podio-webhook as a CGI program under Apache mod_cgid: sizes and
    lengths, and the spool refused."""
    dep = scenario.Deployment(sim, servers.WEB_USER, servers.WEB_GROUP)
    sample = servers.substitute("podio-webhook-cgi.conf", STATEDIR=dep.state)
    dep.token_cache = os.path.join(dep.state, "token-cache.json")
    dep.events_log = os.path.join(dep.state, "events.jsonl")
    wlog = os.path.join(dep.state, "podio-webhook.log")
    dep.logs.append(("podio-webhook log file", wlog))
    omit = ("token_cache", "spool_dir", "log *", "on", "max_body")
    dep.write_config(sample + "\n# the test's settings\nmax_body = 2M\n",
                     omit=omit)
    www = servers.mkdir(os.path.join(dep.root, "www"))
    hookdir = servers.mkdir(os.path.join(www, "podio"))
    servers.write_file(os.path.join(hookdir, ".htaccess"),
                       servers.substitute("htaccess"))

    def wrapper(name, config):
        servers.write_file(os.path.join(hookdir, name), servers.substitute(
            "podio-webhook.cgi", BINDIR=dep.bindir, CONFIG=config), 0o755)
        return "/podio/" + name
    path = wrapper("podio-webhook.cgi", dep.config)
    port = servers.free_port()
    extra = ('<Directory "%s">\n'
             '    AllowOverride AuthConfig FileInfo Limit '
             'Options=ExecCGI,Indexes\n'
             '</Directory>\n'
             'ScriptSock "%s/apache/run/cgid.sock"\n' % (www, dep.root))
    apache = servers.Apache(dep.root, "", port, modules=["cgid",
                                                         "reqtimeout"],
                            mpm="event", docroot=www,
                            extra=extra + REQTIMEOUT + "\n")
    dep.logs[:0] = apache.logs()
    apache.start()
    ck = scenario.Checker(t, dep, "CGI: ")
    ids = itertools.count(890000)
    acked = []

    def body(secret=True, extra=(), type_="item.delete"):
        item_id = next(ids)
        pairs = [("type", type_), ("hook_id", str(dep.hook_ids[0])),
                 ("item_id", str(item_id))] + list(extra)
        if secret:
            pairs.append(("secret", dep.secret))
        return item_id, urllib.parse.urlencode(pairs).encode()

    def refused_at_once(label, declared, rate):
        """Posts a body declared too large (sent at rate bytes a second,
        or as fast as it goes): the handler's 413 line must be logged
        within PROMPT seconds.  mod_cgid reads a request's whole body
        before it passes the program's answer on, so the client gets the
        413 only then (a diagnostic)."""
        before = len(testlib.read_text(wlog))
        out = {}
        th = threading.Thread(target=lambda: out.update(r=attack.big_post(
            port, path, declared, declared, timeout=CLIENT_WAIT,
            rate=rate)))
        t0 = time.monotonic()
        th.start()
        line = poll(lambda: re.search(r"status=413 ms=(\d+)",
                                      testlib.read_text(wlog)[before:]),
                    PROMPT)
        secs = time.monotonic() - t0
        th.join(CLIENT_WAIT + 5)
        ck.ok(line is not None and secs < PROMPT,
              "%s: the program answers 413 at once (logged after %.2fs, "
              "ms=%s)" % (label, secs, line and line.group(1)),
              testlib.read_text(wlog)[before:])
        t.diag("CGI: %s: the client got %r (status, seconds, bytes sent)"
               % (label, out.get("r")))

    item_id, b = body(type_="item.create")
    st, secs, raw = attack.post(port, path, b, CLIENT_WAIT)
    if st == 200:
        acked.append(item_id)
    ck.is_(st, 200, "a valid item.create delivery: 200")
    refused_at_once("a declared 3 MB body (max_body 2M) trickled at 600 B/s",
                    3 * MIB, 600)
    refused_at_once("a 100 MB body", 100 * MIB, None)
    item_id, b = body()
    st, secs, raw = attack.post(port, path, b, PROMPT + 5,
                                length=len(b) + 100, half_close=True)
    if st == 200:
        acked.append(item_id)
    ck.ok(st in (0, 400, 408),
          "Content-Length 100 more than the body sent: refused (%d)" % st,
          raw[:300])
    _i, part = body(secret=False)
    rest = b"&secret=" + urllib.parse.quote(dep.secret).encode()
    st, secs, raw = attack.post(port, path, part + rest, PROMPT + 5,
                                length=len(part))
    ck.ok(st == 403, "Content-Length short of the body: the declared bytes "
          "alone are judged (403)", raw[:300])
    _i, tail = body()
    st, secs, raw = attack.post(port, path, b"p&" * 100000 + tail,
                                CLIENT_WAIT)
    ck.ok(st == 413 and b"parameters" in raw,
          "100,000 parameters within max_body: 413 naming the parameters "
          "(%.2fs)" % secs, raw[:300])
    st, secs, raw = attack.post(port, path, b"k" * MIB + b"=v&" + tail,
                                CLIENT_WAIT)
    ck.ok(st == 413, "a 1 MB key: 413 (the event would exceed what the "
          "spool stores) (%.2fs)" % secs, raw[:300])

    # The spool refused: 503 and a log line saying what to fix.
    real = os.path.join(dep.state, "spool")
    for n, (label, spool) in enumerate(bad_spools(
            servers.mkdir(os.path.join(dep.root, "refused"), 0o755),
            servers.WEB_USER, servers.WEB_GROUP, real)):
        conf = os.path.join(dep.etc, "refused-%d.conf" % n)
        with open(dep.config) as f:
            text = f.read()
        servers.write_file(conf, text.replace(
            "spool_dir = " + real, "spool_dir = " + spool), 0o600,
            servers.WEB_USER, servers.WEB_GROUP)
        before = testlib.read_text(wlog)
        item_id, b = body()
        st, secs, raw = attack.post(port, wrapper("refused-%d.cgi" % n,
                                                  conf), b, CLIENT_WAIT)
        if st == 200:
            acked.append(item_id)
        new = testlib.read_text(wlog)[len(before):]
        ck.ok(st == 503 and spool in new,
              "%s: 503, and a log line naming it" % label,
              "status %d, log: %s" % (st, new))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = {e.get("item_id") for e in scenario.read_events(
            dep.events_log)[0]}
        if all(i in got for i in acked):
            break
        time.sleep(0.2)
    ck.ok(acked and all(i in got for i in acked),
          "every delivery answered 200 reaches the `log *` file",
          "acknowledged %r, logged %r" % (acked, sorted(got)))
    scenario.check_logs(ck, dep)
    scenario.stop_all(ck, apache)


# The groups against serve, in order, by name.
CASES = (("slow-clients", case_slow_clients), ("stalls", case_stalls),
         ("kept", case_kept), ("sizes", case_sizes),
         ("records", case_records), ("forged", case_forged),
         ("hostile-api", case_hostile_api),
         ("serve-refuses", case_serve_refuses),
         ("socket-path", case_socket_path))


def main():
    t = testlib.Tap()
    servers.require_root(t)
    servers.require_programs(t, servers.NGINX, servers.APACHE, "setpriv")
    servers.require_files(t, *[
        os.path.join(servers.APACHE_MODULES, "mod_%s.so" % m)
        for m in ("proxy_fcgi", "cgid", "reqtimeout")])
    # PODIO_ATTACK_CASES: some groups only, by name (CASES, and "cgi"),
    # as tests/bench/slow-clients runs the first one.
    only = os.environ.get("PODIO_ATTACK_CASES", "").split()
    t0 = time.monotonic()
    with testlib.Sim() as sim:
        s = Suite(t, sim)
        s.start()
        for name, case in CASES:
            if only and name not in only:
                continue
            c0 = time.monotonic()
            case(s)
            t.diag("%s: %.1fs" % (name, time.monotonic() - c0))
            if not s.serve.alive():
                s.restart()
        missing = s.wait_logged("every acknowledged event")
        s.ck.ok(not missing,
                "no acknowledged event lost: each of the %d deliveries "
                "answered 200 reached the `log *` file" % len(s.acked),
                "missing: %r" % missing[:20])
        text = testlib.read_text(s.serve.log)
        s.ck.ok(not any(m in text for m in scenario.SANITIZER_MARKS),
                "no sanitizer report in serve's log")
        scenario.check_logs(s.ck, s.dep)
        scenario.stop_all(s.ck, s.apache, s.nginx, s.serve)
        s.ck.is_(s.serve.stopped_status, 0, "serve exits 0 on SIGTERM")
        if not only or "cgi" in only:
            c0 = time.monotonic()
            case_cgi(t, sim)
            t.diag("cgi: %.1fs" % (time.monotonic() - c0))
    t.diag("total: %.1fs" % (time.monotonic() - t0))
    t.done()


testlib.main(main)
