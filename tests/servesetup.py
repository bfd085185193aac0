"""A spool, a `log *` callback file and `podio-webhook serve` on a unix
socket, for the tests that post many deliveries to a running server and
read what reached the callbacks (tests/test-bulk.py, tests/test-outage.py).

    s = servesetup.ServeSetup(t, sim, os.path.join(D, "name"), SECRET,
                              coalesce_window="0")
    s.deliver_many(bodies)
    testlib.wait_for(lambda: len(s.logged()) == len(bodies), "the events")
    s.stop()
"""

import json
import os
import subprocess
import threading
import urllib.parse

import fcgi
import testlib


def form(secret, pairs):
    """A delivery's form body: pairs (values made text), then the secret."""
    pairs = [(k, str(v)) for k, v in pairs] + [("secret", secret)]
    return urllib.parse.urlencode(pairs).encode()


def show(reqs, most=20):
    """The simulator's recorded requests, one line each, at most most."""
    lines = ["%s %s -> %s" % (r["method"], r["path"], r["status"])
             for r in reqs]
    if len(lines) > most:
        lines = lines[:most] + ["... %d more" % (len(lines) - most)]
    return "\n".join(lines)


class ServeSetup:
    """The directory d (made here) with its configuration, spool and log
    file; `serve` started with 4 workers.  keys are configuration keys
    (set through the environment), extra_env more environment, conf_extra
    more lines of the configuration file (app lines, say)."""

    def __init__(self, tap, sim, d, secret, extra_env=None, conf_extra="",
                 **keys):
        self.t = tap
        self.dir = d
        os.mkdir(d)
        self.log = os.path.join(d, "events.jsonl")
        self.conf = os.path.join(d, "handler.conf")
        with open(self.conf, "w") as f:
            f.write('webhook_secret = "%s"\nlog * = %s\n' % (secret,
                                                              self.log))
            f.write(conf_extra)
        self.env = testlib.base_env(sim, spool_dir=os.path.join(d, "spool"),
                                    **keys)
        self.env.update(extra_env or {})
        self.sock = os.path.join(d, "serve.sock")
        self.errlog = os.path.join(d, "serve.log")
        self.errf = open(self.errlog, "w")
        self.proc = testlib.popen(
            [testlib.PODIO_WEBHOOK, "-c", self.conf, "serve", "--listen",
             "unix:" + self.sock, "--workers", "4"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=self.errf)
        testlib.wait_for(lambda: "serving FastCGI" in testlib.read_text(
            self.errlog) or self.proc.poll() is not None, "the server")

    def deliver(self, body):
        """The status of one delivery, 0 when it failed (with a diag)."""
        try:
            return fcgi.delivery(self.sock, body, timeout=120).status
        except Exception as exc:  # reported through the status
            self.t.diag("delivery failed: %r" % exc)
            return 0

    def deliver_many(self, bodies, threads=8):
        """Posts bodies from threads connections, in order; the statuses."""
        todo = list(range(len(bodies)))
        lock = threading.Lock()
        statuses = [None] * len(bodies)

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop(0)
                statuses[i] = self.deliver(bodies[i])
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        return statuses

    def logged(self):
        """The events of the log file (complete lines), oldest first."""
        out = []
        for line in testlib.read_text(self.log).split("\n")[:-1]:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"unparsable": line})
        return out

    def pw(self, *args):
        return testlib.run([testlib.PODIO_WEBHOOK, "-c", self.conf] +
                           list(args), env=self.env, timeout=60)

    def json_of(self, *args):
        """The JSON a command prints with --json ({"error": ...} if not)."""
        r = testlib.run([testlib.PODIO_WEBHOOK, "-c", self.conf] +
                        list(args) + ["--json"], env=self.env, wrap=False)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"error": r.stdout + r.stderr}

    def status(self):
        return self.json_of("spool", "status")

    def stop(self):
        """Stops the server (one check: cleanly); returns its log."""
        rc = testlib.stop_process(self.proc, 120)
        self.errf.close()
        text = testlib.read_text(self.errlog)
        self.t.ok(rc == 0 and "Sanitizer" not in text and
                  "runtime error:" not in text,
                  "%s: the server stops cleanly" % os.path.basename(self.dir),
                  "exit %r\n%s" % (rc, text[-3000:]))
        return text
