#!/usr/bin/env python3
"""`serve --metrics-listen`: the Prometheus page of a FastCGI server,
against the simulator.

A scripted run, then the values of /metrics:

 - deliveries by type and status: item events, a comment, a type not in
   Podio's list ("other"), a duplicate, a wrong secret (403), a
   malformed delivery (400), a GET (405);
 - events acknowledged, duplicates, processed, retried (a token request
   Podio refuses makes the first fetch wait, not counted as a try) and
   dead (a callback failing with retry_max 1);
 - API calls by endpoint class and status, token requests;
 - the spool's events by state, the rate limit left, then an outage
   (Podio answering 503: outage 1 with its start and next probe, 0 once
   it answers again) and a 420 (the default class paused until the time
   Podio named);
 - `promtool check metrics` on the page (skipped with the reason when
   promtool is not installed: Debian's prometheus package);
 - the HTTP side: 404 for another path, 405 for another method, HEAD,
   431 for a head too long, and clients that connect and send nothing
   (more than the metrics port serves at once) while webhook deliveries
   are still answered; the server cuts them off, then /metrics answers
   again;
 - after SIGHUP the counters go on with the new configuration;
 - bad --metrics-listen values and a port in use are usage errors (2);
 - FastCGI on an inherited socket (fd 0) takes --metrics-listen too;
 - with a PostgreSQL spool (skipped without libpq or PostgreSQL 15): the
   spool's series read from the database.

No check is about speed."""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import fcgi
import pgserver
import servesetup
import testlib

t = testlib.Tap()
SECRET = "metrics-secret-4711"
PW = testlib.PODIO_WEBHOOK
D = testlib.tmpdir()
HOOK = 1001
# Callbacks: every event is logged; item 66's command always fails.
FAIL66 = os.path.join(D, "fail66.sh")
with open(FAIL66, "w") as f:
    f.write('#!/bin/sh\ncat > /dev/null\n'
            '[ "$PODIO_ITEM_ID" = 66 ] && { echo "no" >&2; exit 1; }\n'
            'exit 0\n')
os.chmod(FAIL66, 0o755)

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, ((label, value), ...)): float} of the page's samples."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            out[("unparsable", (("line", line),))] = 0
            continue
        labels = tuple(sorted(LABEL.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


# The series of the API's state carry the credential they belong to:
# the test's is the app of testlib.DEFAULT_CREDS.
CRED = "app:" + testlib.DEFAULT_CREDS["app_id"]
BY_CRED = ("podio_webhook_api_paused",
           "podio_webhook_api_pause_end_timestamp_seconds",
           "podio_webhook_api_rate_limit_remaining",
           "podio_webhook_api_outage",
           "podio_webhook_api_outage_start_timestamp_seconds",
           "podio_webhook_api_next_probe_timestamp_seconds")


def val(page, name, **labels):
    """The value of one series, None when the page lacks it (the test's
    credential added to the labels of the API state's series)."""
    if name in BY_CRED:
        labels.setdefault("credential", CRED)
    return page.get((name, tuple(sorted(labels.items()))))


def total(page, name, **labels):
    """The sum of the series of name whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in page.items()
               if n == name and want <= set(ls))


def get(port, method="GET", path="/metrics", timeout=30):
    """(status, headers, body text) of one request to the metrics port."""
    conn = http.client.HTTPConnection("127.0.0.1", port,
                                      timeout=timeout * SLOW)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), \
            r.read().decode("utf-8", "replace")
    finally:
        conn.close()


SLOW = 10 if testlib.wrapper() else 1


def form(pairs, secret=SECRET):
    return servesetup.form(secret, pairs)


def item(type_, item_id, rev):
    return form([("type", type_), ("hook_id", HOOK), ("item_id", item_id),
                 ("item_revision_id", rev)])


class Server:
    """serve on a unix socket with --metrics-listen on a free loopback
    port, the callbacks above, the spool where (spool_dir or
    spool_url)."""

    def __init__(self, sim, name, **keys):
        self.dir = os.path.join(D, name)
        os.mkdir(self.dir)
        self.log = os.path.join(self.dir, "events.jsonl")
        self.conf = testlib.write_config(
            os.path.join(self.dir, "handler.conf"),
            ['webhook_secret = "%s"' % SECRET, "log * = " + self.log,
             "on item.* = " + FAIL66])
        keys.setdefault("spool_dir", os.path.join(self.dir, "spool"))
        self.env = testlib.base_env(sim, coalesce_window="0", **keys)
        # Outage probes within a few milliseconds (test seam).
        self.env["PODIO_TEST_PROBE_MS"] = "20"
        self.sock = os.path.join(self.dir, "serve.sock")
        self.errlog = os.path.join(self.dir, "serve.log")
        for _ in range(5):
            self.port = pgserver.free_port()
            self.errf = open(self.errlog, "w")
            self.proc = testlib.popen(
                [PW, "-c", self.conf, "serve", "--listen",
                 "unix:" + self.sock, "--workers", "4",
                 "--metrics-listen", str(self.port)],
                env=self.env, stdout=subprocess.DEVNULL, stderr=self.errf)
            testlib.wait_for(lambda: "serving FastCGI" in testlib.read_text(
                self.errlog) or self.proc.poll() is not None, "the server")
            if self.proc.poll() is None:
                # Not left running when the test ends early.
                atexit.register(self.proc.kill)
                break
            # Another program took the port meanwhile: another one.
            self.errf.close()

    def logged_items(self):
        """The item ids of the events the log callback got."""
        out = []
        for line in testlib.read_text(self.log).split("\n")[:-1]:
            try:
                out.append(json.loads(line).get("item_id"))
            except ValueError:
                pass
        return out

    def deliver(self, body, **more):
        return fcgi.delivery(self.sock, body, timeout=60 * SLOW,
                             **more).status

    def page(self):
        status, _, body = get(self.port)
        return parse(body) if status == 200 else {}, body

    def wait_page(self, fn, what):
        """Scrapes until fn(page) holds; the last page (and its text)."""
        last = [None, ""]

        def look():
            last[0], last[1] = self.page()
            return fn(last[0])
        try:
            testlib.wait_for(look, what, timeout=60)
        except RuntimeError:
            t.diag("timed out waiting for %s" % what)
        return last[0], last[1]

    def stop(self):
        rc = testlib.stop_process(self.proc, 120)
        self.errf.close()
        text = testlib.read_text(self.errlog)
        t.ok(rc == 0 and "Sanitizer" not in text and
             "runtime error:" not in text,
             "%s: the server stops cleanly" % os.path.basename(self.dir),
             "exit %r\n%s" % (rc, text[-3000:]))
        return text


def promtool_check(text):
    """`promtool check metrics` on text, or a skip saying why not."""
    tool = shutil.which("promtool")
    if tool is None:
        t.skip("promtool check metrics passes on the page",
               "promtool is not installed (Debian package prometheus)")
        return
    r = subprocess.run([tool, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and not r.stdout.strip(),
         "promtool check metrics passes on the page",
         "exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))


def scripted_run(sim):
    s = Server(sim, "run", retry_max="1")
    t.ok(s.proc.poll() is None and "serving metrics on http://127.0.0.1:%d"
         "/metrics" % s.port in testlib.read_text(s.errlog),
         "serve --metrics-listen PORT listens on 127.0.0.1:PORT and says so",
         testlib.read_text(s.errlog))

    # The first token request is refused: item 11's fetch waits (not a
    # try of its own) and is counted as retried.
    sim.fail("/oauth/token", status=400, error="invalid_grant", count=1)
    t.is_(s.deliver(item("item.create", 11, 1)), 200, "item.create: 200")
    page, _ = s.wait_page(
        lambda p: val(p, "podio_webhook_events_retried_total") == 1,
        "the retry of item 11")
    sts = [s.deliver(item("item.update", 12, 1)),
           s.deliver(item("item.update", 66, 1)),
           s.deliver(item("item.update", 12, 1)),
           s.deliver(form([("type", "comment.create"), ("hook_id", HOOK),
                           ("item_id", 12), ("comment_id", 5)])),
           s.deliver(form([("type", "custom.thing"), ("hook_id", HOOK)])),
           s.deliver(form([("type", "item.update"), ("hook_id", HOOK),
                           ("item_id", 13)], secret="wrong")),
           s.deliver(form([("hook_id", HOOK), ("item_id", 13)])),
           s.deliver(b"", method="GET")]
    t.is_(sts, [200, 200, 200, 200, 200, 403, 400, 405],
          "the deliveries are answered 200 (four, one a duplicate), 403, "
          "400, 405")
    before = len(sim.requests("/item/"))
    page, text = s.wait_page(
        lambda p: (val(p, "podio_webhook_events_processed_total") or 0) >=
        3 and val(p, "podio_webhook_events_dead_total") == 1,
        "items 12 and 66, the comment and the custom event")
    after = len(sim.requests("/item/"))
    d = "podio_webhook_deliveries_total"
    got = {(dict(ls)["type"], dict(ls)["status"]): v
           for (n, ls), v in page.items() if n == d}
    t.is_(got, {("item.create", "200"): 1, ("item.update", "200"): 3,
                ("comment.create", "200"): 1, ("other", "200"): 1,
                ("none", "403"): 1, ("none", "400"): 1,
                ("none", "405"): 1},
          "deliveries by type and status (an unlisted type is \"other\", "
          "a refused request \"none\")")
    # Item 11's next try comes a minute later: processed, unless the
    # run took that long, then its event is no longer retrying.
    retrying = val(page, "podio_webhook_spool_events", state="retrying")
    t.is_([val(page, "podio_webhook_events_%s_total" % k) for k in
           ("acknowledged", "duplicate", "processed", "retried", "dead")],
          [5, 1, 4 - retrying if retrying is not None else None, 1, 1],
          "events acknowledged 5, duplicate 1, processed 3 (item 12, the "
          "comment, the custom event; item 11 too once its next try "
          "came), retried 1 (item 11), dead 1 (item 66)")
    t.is_((val(page, "podio_webhook_api_calls_total", endpoint="token",
               status="400"),
           val(page, "podio_webhook_api_calls_total", endpoint="token",
               status="200"),
           val(page, "podio_webhook_token_requests_total")),
          (1, 1, 2), "API calls: the token request refused (400) and the "
          "one that worked (200); 2 token requests")
    fetched = total(page, "podio_webhook_api_calls_total", endpoint="item",
                    status="200") + total(
        page, "podio_webhook_api_calls_total", endpoint="filter",
        status="200")
    t.ok(fetched >= 1 and before <= fetched <= after,
         "API calls of the item and filter classes: as many as the "
         "simulator answered (%d)" % fetched, text)
    t.is_([val(page, "podio_webhook_spool_up")] +
          [val(page, "podio_webhook_spool_events", state=st) for st in
           ("pending", "in_flight", "dead", "bad")] + [retrying in (0, 1)],
          [1, 0, 0, 1, 0, True], "the spool: 1 dead event (item 66), "
          "item 11 retrying (until its next try)")
    age = val(page, "podio_webhook_spool_oldest_age_seconds")
    t.ok(age is not None and age > 0,
         "the age of the oldest event not finished is given (%r s)" % age)
    left = [v for (n, ls), v in page.items()
            if n == "podio_webhook_api_rate_limit_remaining"]
    t.ok(left and all(0 <= v <= 1000 for v in left),
         "the rate limit left last seen is given", text)
    t.is_((val(page, "podio_webhook_api_paused", **{"class": "default"}),
           val(page, "podio_webhook_api_paused", **{"class": "filter"}),
           val(page, "podio_webhook_api_outage")), (0, 0, 0),
          "no pause, no outage")
    promtool_check(text)

    # An outage: Podio answers 503 until told otherwise.
    sim.fail("/item/", status=503, count=None)
    t.is_(s.deliver(item("item.update", 14, 1)), 200, "item 14: 200")
    now = time.time()
    page, text = s.wait_page(
        lambda p: val(p, "podio_webhook_api_outage") == 1,
        "the outage")
    start = val(page, "podio_webhook_api_outage_start_timestamp_seconds")
    probe = val(page, "podio_webhook_api_next_probe_timestamp_seconds")
    t.ok(start is not None and probe is not None and
         now - 60 < start <= probe,
         "an outage: podio_webhook_api_outage 1, with its start and next "
         "probe", text)
    t.ok(total(page, "podio_webhook_api_calls_total", status="503") >= 1,
         "the 503 answers are counted", text)
    promtool_check(text)
    sim.clear_fails()
    testlib.wait_for(lambda: 14 in s.logged_items(),
                     "item 14 after the outage")
    page, text = s.page()
    t.ok(val(page, "podio_webhook_api_outage") == 0 and
         val(page, "podio_webhook_api_outage_start_timestamp_seconds") is
         None, "Podio answering again ends the outage", text)

    # A 420 naming a wait of 600 s: the default class pauses (for an
    # hour at most).
    sim.fail("/item/", status=420, count=1, error_description="You have "
             "hit the rate limit. Please wait 600 seconds before trying "
             "again")
    now = time.time()
    t.is_(s.deliver(item("item.update", 15, 1)), 200, "item 15: 200")
    page, text = s.wait_page(
        lambda p: val(p, "podio_webhook_api_paused",
                      **{"class": "default"}) == 1, "the pause")
    end = val(page, "podio_webhook_api_pause_end_timestamp_seconds",
              **{"class": "default"})
    t.ok(end is not None and now + 500 < end < now + 700 + 60 * SLOW,
         "a 420: the default class is paused until the time Podio named "
         "(%r, now %.0f)" % (end, now), text)
    t.ok(total(page, "podio_webhook_api_calls_total", status="420") == 1,
         "the 420 is counted", text)
    promtool_check(text)
    return s


def http_side(s):
    st, h, body = get(s.port)
    t.ok(st == 200 and h.get("content-type", "").startswith(
        "text/plain; version=0.0.4") and h.get("connection") == "close" and
        int(h.get("content-length", -1)) == len(body.encode()),
        "GET /metrics: 200, text/plain; version=0.0.4, Content-Length, "
        "Connection: close", (st, h))
    st, h, body = get(s.port, path="/metrics?name[]=x")
    t.is_(st, 200, "a query string is ignored")
    st, h, body = get(s.port, "HEAD")
    t.ok(st == 200 and body == "" and int(h.get("content-length", 0)) > 0,
         "HEAD /metrics: the head only", (st, h, body))
    for path in ("/", "/metrics/", "/metricsx", "/other"):
        st, _, _ = get(s.port, path=path)
        t.is_(st, 404, "GET %s: 404" % path)
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        st, h, _ = get(s.port, method)
        t.ok(st == 405 and h.get("allow") == "GET, HEAD",
             "%s /metrics: 405 with Allow: GET, HEAD" % method, (st, h))
    with socket.create_connection(("127.0.0.1", s.port),
                                  timeout=30 * SLOW) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
        answer = c.recv(200)
    t.ok(answer.startswith(b"HTTP/1.1 431 "),
         "a head longer than 8 KiB: 431", answer)
    with socket.create_connection(("127.0.0.1", s.port),
                                  timeout=30 * SLOW) as c:
        c.sendall(b"nonsense\r\n\r\n")
        answer = c.recv(200)
    t.ok(answer.startswith(b"HTTP/1.1 400 "), "a malformed head: 400",
         answer)

    # Clients that connect and send nothing, more than the metrics port
    # serves at once: webhook deliveries are answered meanwhile.
    silent = [socket.create_connection(("127.0.0.1", s.port),
                                       timeout=60 * SLOW)
              for _ in range(12)]
    try:
        sts = [s.deliver(form([("type", "comment.create"),
                               ("hook_id", HOOK), ("item_id", 20 + i),
                               ("comment_id", i)])) for i in range(5)]
        t.is_(sts, [200] * 5, "with 12 silent clients on the metrics "
              "port, webhook deliveries are answered")
        cut = []
        for c in silent[:8]:
            try:
                cut.append(c.recv(100) == b"")
            except OSError as exc:
                cut.append(repr(exc))
        t.ok(cut == [True] * 8, "the silent clients are cut off by the "
             "server", cut)
    finally:
        for c in silent:
            c.close()
    st, _, body = get(s.port)
    page = parse(body)
    t.ok(st == 200 and val(page, "podio_webhook_deliveries_total",
                           type="comment.create", status="200") == 6,
         "then /metrics answers again, the deliveries counted", body)


def reload(s):
    """SIGHUP: the counters go on with the new configuration's threads
    and clients."""
    _, _, body = get(s.port)
    before = parse(body)
    s.proc.send_signal(signal.SIGHUP)
    testlib.wait_for(lambda: "configuration reloaded" in testlib.read_text(
        s.errlog), "the reload")
    r = testlib.run([PW, "-c", s.conf, "spool", "resume"], env=s.env)
    t.is_(r.returncode, 0, "spool resume ends the 420's pause")
    t.is_(s.deliver(item("item.update", 16, 1)), 200, "item 16: 200")
    testlib.wait_for(lambda: 16 in s.logged_items(), "item 16")
    _, _, body = get(s.port)
    after = parse(body)

    def fetches(p):
        return sum(total(p, "podio_webhook_api_calls_total", endpoint=e,
                         status="200") for e in ("item", "filter"))
    t.ok(val(after, "podio_webhook_deliveries_total", type="item.update",
             status="200") == val(before, "podio_webhook_deliveries_total",
                                  type="item.update", status="200") + 1 and
         val(after, "podio_webhook_events_acknowledged_total") ==
         val(before, "podio_webhook_events_acknowledged_total") + 1 and
         fetches(after) > fetches(before) and
         val(after, "podio_webhook_api_paused", **{"class": "default"}) == 0,
         "after SIGHUP the counters go on (the delivery, the event and "
         "its fetch counted), the pause ended", body)


def usage_errors(sim):
    env = testlib.base_env(sim, webhook_secret=SECRET,
                           spool_dir=os.path.join(D, "usage-spool"))
    sock = os.path.join(D, "usage.sock")
    for spec, why in (("unix:/tmp/x.sock", "wants [HOST:]PORT"),
                      ("", "wants [HOST:]PORT"),
                      ("0", "port from 1 to 65535"),
                      ("127.0.0.1:99999", "port from 1 to 65535")):
        r = testlib.run([PW, "serve", "--listen", "unix:" + sock,
                         "--metrics-listen", spec], env=env)
        t.ok(r.returncode == 2 and why in r.stderr and
             not os.path.exists(sock),
             "--metrics-listen %r: exit 2, %s" % (spec, why),
             (r.returncode, r.stderr))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = testlib.run([PW, "serve", "--listen", "unix:" + sock,
                         "--metrics-listen", "127.0.0.1:%d" % port], env=env)
    t.ok(r.returncode == 2 and "cannot listen on 127.0.0.1:%d" % port in
         r.stderr and not os.path.exists(sock),
         "a metrics port in use: exit 2, said, no socket file left",
         (r.returncode, r.stderr))


def on_fd0(sim):
    """FastCGI on an inherited listening socket (spawn-fcgi, systemd):
    `serve --metrics-listen` may follow the options there too."""
    d = os.path.join(D, "fd0")
    os.mkdir(d)
    path = os.path.join(d, "fcgi.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(16)
    port = pgserver.free_port()
    env = testlib.base_env(sim, webhook_secret=SECRET, coalesce_window="0",
                           spool_dir=os.path.join(d, "spool"))
    errlog = os.path.join(d, "serve.log")
    with open(errlog, "w") as errf:
        proc = testlib.popen([PW, "serve", "--workers", "2",
                              "--metrics-listen", "127.0.0.1:%d" % port],
                             env=env, stdin=lsock.fileno(),
                             stdout=subprocess.DEVNULL, stderr=errf)
    atexit.register(proc.kill)
    lsock.close()
    try:
        testlib.wait_for(lambda: "serving FastCGI" in testlib.read_text(
            errlog) or proc.poll() is not None, "the server on fd 0")
        st = fcgi.delivery(path, form([("type", "comment.create"),
                                       ("hook_id", HOOK), ("item_id", 1),
                                       ("comment_id", 1)]),
                           timeout=60 * SLOW).status
        _, _, body = get(port)
        t.ok(st == 200 and val(parse(body), "podio_webhook_deliveries_"
                               "total", type="comment.create",
                               status="200") == 1,
             "FastCGI on fd 0 with serve --metrics-listen: the delivery "
             "counted", testlib.read_text(errlog)[-2000:] + body[:2000])
    finally:
        rc = testlib.stop_process(proc, 120)
    t.is_(rc, 0, "FastCGI on fd 0: stops cleanly")


def postgresql(sim):
    ok, why = testlib.built_with_postgresql()
    if ok:
        ok, why = pgserver.available()
    if not ok:
        t.skip("a PostgreSQL spool's series", why)
        return
    with pgserver.Server() as pg:
        s = Server(sim, "pg", spool_url=pg.url)
        sim.fail("/item/", status=503, count=None)
        t.is_(s.deliver(item("item.update", 31, 1)), 200,
              "PostgreSQL spool: item 31: 200")
        page, text = s.wait_page(
            lambda p: val(p, "podio_webhook_api_outage") == 1 and
            val(p, "podio_webhook_spool_events", state="pending") == 1,
            "the outage")
        t.ok(val(page, "podio_webhook_spool_up") == 1 and
             val(page, "podio_webhook_spool_events", state="pending") == 1
             and val(page, "podio_webhook_api_outage") == 1,
             "PostgreSQL spool: the pending event and the outage are read "
             "from the database", text)
        sim.clear_fails()
        s.wait_page(lambda p: val(p, "podio_webhook_events_processed_"
                                  "total") == 1, "item 31")
        s.stop()


with testlib.Sim() as sim:
    usage_errors(sim)
    srv = scripted_run(sim)
    http_side(srv)
    reload(srv)
    srv.stop()
    on_fd0(sim)
    sim.reset()
    postgresql(sim)
t.done()
