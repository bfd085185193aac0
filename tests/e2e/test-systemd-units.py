#!/usr/bin/env python3
"""The systemd units of deploy/ (podio-webhook.service, and the
socket-activated podio-webhook-fcgi.socket + .service), their placeholders
replaced, pass `systemd-analyze verify` without a word of complaint.

systemd cannot run inside the tests, so the units are checked, not
started: the same command lines are exercised by the nginx and Apache
tests (serve on a unix socket; a listening socket on standard input).
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import servers  # noqa: E402
import testlib  # noqa: E402

UNITS = ("podio-webhook.service", "podio-webhook-fcgi.socket",
         "podio-webhook-fcgi.service")


def main():
    t = testlib.Tap()
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        t.skip_all("systemd-analyze is not installed")
    d = testlib.tmpdir()
    bindir = os.path.dirname(os.path.abspath(testlib.PODIO_WEBHOOK))
    conf = servers.write_file(os.path.join(d, "podio-webhook.conf"), "")
    paths = []
    for unit in UNITS:
        values = dict(USER=servers.WEB_USER, GROUP=servers.WEB_GROUP)
        if unit.endswith(".service"):
            values.update(BINDIR=bindir, CONFIG=conf)
        try:
            text = servers.substitute(unit, **values)
        except servers.ServerError as exc:
            t.ok(False, "%s: placeholders" % unit, str(exc))
            continue
        t.ok(True, "%s: only the documented placeholders" % unit)
        paths.append(servers.write_file(os.path.join(d, unit), text))
    r = subprocess.run([analyze, "verify", "--man=no"] + paths,
                       capture_output=True, text=True, cwd=d)
    out = (r.stdout + r.stderr).strip()
    # systemd-analyze complains about a missing /proc/1 setting or a
    # non-systemd PID 1 on some hosts; those lines are not the units'.
    mine = [ln for ln in out.splitlines() if any(u in ln for u in UNITS)]
    t.ok(r.returncode == 0 and not mine,
         "systemd-analyze verify accepts the units without a warning",
         out or "exit status %d" % r.returncode)
    socket_text = open(paths[1]).read() if len(paths) > 1 else ""
    t.ok("Accept=no" in socket_text,
         "the socket unit hands the listening socket over (Accept=no)")
    fcgi_service = open(paths[2]).read() if len(paths) > 2 else ""
    t.ok("StandardInput=socket" in fcgi_service and
         "StandardOutput=journal" in fcgi_service,
         "the socket-activated service takes the socket on stdin only")
    t.done()


testlib.main(main)
