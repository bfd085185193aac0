#!/usr/bin/env python3
"""One CGI worker per spool, under a burst through Apache mod_cgid.

Apache (event MPM, mod_cgid) runs podio-webhook as a CGI through
deploy/htaccess and deploy/podio-webhook.cgi, as on a shared host.  8
connections at once post 200 `item.delete` deliveries for distinct items
(no API call is needed for them).  Every one is answered 200, and then,
without any `spool drain`, every event reaches the `log *` file exactly
once: the detached worker that a run starts (or the one already running)
takes them all, including those stored while a worker was ending.

The workers log when they take and let go the spool's worker lock
("cgi worker pid=N started" / "... ended", info level, in log_target):
in the log, each start is followed by the end of the same PID before the
next start, so no two workers ever held the lock at once; and far fewer
workers start than there are deliveries.  Twice: with the defaults, and
with a budget of 20 ms and no settle window (workers end all the time,
many of them in the middle of a look).

Then a worker is killed with kill -9 in the middle of a burst: the kernel
drops its lock, another worker takes it, and the deliveries after the
kill reach the callbacks without any `spool drain`.
"""
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import scenario  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

USER, GROUP = servers.WEB_USER, servers.WEB_GROUP
DELIVERIES = int(os.environ.get("PODIO_TEST_CGI_WORKER_N", "200"))
CONNECTIONS = 8
FIRST_ITEM = 700000
# With the defaults one worker usually takes the whole burst, and far
# fewer workers start than there are deliveries.  With a budget of 20 ms
# and no settle window, workers end all the time during the burst (each
# starting a successor when events are left): many hand-overs between
# ending workers and the runs that store events.
ROUNDS = (("defaults", "", True),
          ("20 ms budget", "coalesce_window = 0\ncgi_budget = 20ms\n",
           False))
def logged_items(path):
    """{item_id: times} of the events in the `log *` file."""
    seen = {}
    for ev in scenario.read_events(path)[0]:
        seen[ev.get("item_id")] = seen.get(ev.get("item_id"), 0) + 1
    return seen


def post_all(dep, port, first, n):
    """Posts n item.delete deliveries for the items first.. at CONNECTIONS
    connections: {index: HTTP status or the error}."""
    path = "/podio/podio-webhook.cgi"
    hook = dep.hook_ids[scenario.EVENTS.index("item.delete")]
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    lock = threading.Lock()
    todo = list(range(n))
    answers = {}

    def poster():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            body = scenario.form(("secret", dep.secret),
                                 ("type", "item.delete"),
                                 ("hook_id", str(hook)),
                                 ("item_id", str(first + i)))
            try:
                st = scenario.http(port, "POST", path, body, ctype)[0]
            except OSError as exc:
                st = repr(exc)
            with lock:
                answers[i] = st

    threads = [threading.Thread(target=poster) for _ in range(CONNECTIONS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return answers


def open_turn(wlog):
    """The PID of the worker whose lock turn the log shows open (a start
    without its end yet), or None."""
    turns = servers.worker_turns(wlog)
    if turns and turns[-1][1] == "started":
        return turns[-1][0]
    return None


def kill_round(t, ck, dep, port, wlog, first):
    """A worker killed with kill -9 in the middle of a burst lets the lock
    go with its life: the runs after it start a worker of their own, and
    their events reach the callbacks without any `spool drain`."""
    half = DELIVERIES // 4
    answers = post_all(dep, port, first, half)
    try:
        victim = testlib.wait_for(lambda: open_turn(wlog), "a worker",
                                  timeout=10)
    except RuntimeError:
        victim = None
    ck.ok(victim is not None, "kill -9: a worker holds the lock after %d "
          "deliveries" % half)
    if victim is None:
        return
    os.kill(victim, signal.SIGKILL)
    skip = len(servers.worker_turns(wlog))
    more = post_all(dep, port, first + half, half)
    bad = [st for st in list(answers.values()) + list(more.values())
           if st != 200]
    ck.ok(len(answers) + len(more) == 2 * half and not bad,
          "kill -9: %d deliveries answered 200" % (2 * half), repr(bad[:5]))
    want = {first + half + i for i in range(half)}
    try:
        testlib.wait_for(
            lambda: set(logged_items(dep.events_log)) >= want and
            not open_turn(wlog), "the events after the kill", timeout=60)
    except RuntimeError as exc:
        t.diag(str(exc))
    seen = set(logged_items(dep.events_log))
    turns = servers.worker_turns(wlog)[skip:]
    ck.ok(turns and victim not in {pid for pid, _w in turns}
          and not servers.turn_overlaps(turns),
          "kill -9: another worker took the lock after the kill, one at "
          "a time",
          "\n".join(servers.turn_overlaps(turns)[:10]) or repr(turns[:10]))
    ck.ok(seen >= want, "kill -9: every delivery after the kill reached "
          "the `log *` callback with no spool drain",
          "missing %s" % sorted(want - seen)[:10])
    t.diag("kill -9: %d of the %d events stored before the kill reached "
           "the callbacks (those in flight wait for their lease)" % (
               len(seen & {first + i for i in range(half)}), half))


def burst(t, ck, dep, sim, port, wlog, first, label, few):
    """Posts DELIVERIES item.delete deliveries for items first.. at
    CONNECTIONS connections, then checks what reached the callbacks and
    the worker lines the log gained (and, when few, that far fewer
    workers started than there were deliveries)."""
    skip = len(servers.worker_turns(wlog))
    most = [0]
    stop = threading.Event()

    def sampler():
        while not stop.wait(0.01):
            most[0] = max(most[0], servers.processes_of(dep.binary))

    th = threading.Thread(target=sampler)
    th.start()
    try:
        answers = post_all(dep, port, first, DELIVERIES)
    finally:
        stop.set()
        th.join()
    bad = {i: st for i, st in answers.items() if st != 200}
    ck.ok(len(answers) == DELIVERIES and not bad,
          "%s: %d deliveries at %d connections, each answered 200"
          % (label, DELIVERIES, CONNECTIONS), repr(sorted(bad.items())[:10]))

    # No `spool drain`: the workers alone bring every event to the
    # callbacks, and then end (each turn logged as ended).
    want = {first + i for i in range(DELIVERIES)}
    try:
        testlib.wait_for(
            lambda: set(logged_items(dep.events_log)) >= want and
            not servers.turn_overlaps(servers.worker_turns(wlog)[skip:]),
            "every event logged",
            timeout=60)
    except RuntimeError as exc:
        t.diag(str(exc))
    seen = {k: v for k, v in logged_items(dep.events_log).items()
            if k in want}
    ck.ok(set(seen) == want and all(v == 1 for v in seen.values()),
          "%s: every delivery reached the `log *` callback exactly once, "
          "with no spool drain" % label,
          "%d of %d; missing %s" % (len(seen), len(want),
                                    sorted(want - set(seen))[:10]))
    turns = servers.worker_turns(wlog)[skip:]
    ck.ok(turns and not servers.turn_overlaps(turns),
          "%s: no two workers ever held the worker lock at once" % label,
          "\n".join(servers.turn_overlaps(turns)[:10]))
    pids = {pid for pid, what in turns if what == "started"}
    starts = sum(1 for _pid, what in turns if what == "started")
    t.diag("%s: %d worker processes, %d turns of the lock, for %d "
           "deliveries" % (label, len(pids), starts, DELIVERIES))
    if few:
        ck.ok(0 < len(pids) <= DELIVERIES // 4,
              "%s: far fewer workers than deliveries (at most %d)"
              % (label, DELIVERIES // 4), "%d workers" % len(pids))
    # Each of the CONNECTIONS runs at a time may be answering, or
    # starting a worker (itself, a child that starts a session, and the
    # worker that finds the lock taken and exits), beside the worker and
    # a successor; a sanitizer build adds a short-lived clone to a
    # process checking its leaks as it exits.  Never a process per event
    # stored (before one worker per spool: hundreds).
    limit = 4 * CONNECTIONS + 2
    t.diag("%s: at most %d podio-webhook processes seen alive at once"
           % (label, most[0]))
    ck.ok(most[0] <= limit, "%s: at most %d podio-webhook processes alive "
          "at once" % (label, limit), "%d seen" % most[0])
    ck.ok(not sim.api_requests(),
          "%s: item.delete events cost no API call" % label,
          repr(sim.api_requests()[:5]))


def main():
    t = testlib.Tap()
    servers.require_root(t)
    servers.require_programs(t, servers.APACHE, "setpriv")
    servers.require_files(t, os.path.join(servers.APACHE_MODULES,
                                          "mod_cgid.so"))
    with testlib.Sim() as sim:
        dep = scenario.Deployment(sim, USER, GROUP)
        sample = servers.substitute("podio-webhook-cgi.conf",
                                    STATEDIR=dep.state)
        dep.token_cache = os.path.join(dep.state, "token-cache.json")
        dep.events_log = os.path.join(dep.state, "events.jsonl")
        wlog = os.path.join(dep.state, "podio-webhook.log")
        dep.logs.append(("podio-webhook log file", wlog))
        www = servers.mkdir(os.path.join(dep.root, "www"))
        hookdir = servers.mkdir(os.path.join(www, "podio"))
        servers.write_file(os.path.join(hookdir, ".htaccess"),
                           servers.substitute("htaccess"))
        servers.write_file(os.path.join(hookdir, "podio-webhook.cgi"),
                           servers.substitute("podio-webhook.cgi",
                                              BINDIR=dep.bindir,
                                              CONFIG=dep.config), 0o755)
        port = servers.free_port()
        extra = ('<Directory "%s">\n'
                 '    AllowOverride AuthConfig FileInfo Limit '
                 'Options=ExecCGI,Indexes\n'
                 '</Directory>\n'
                 'ScriptSock "%s/apache/run/cgid.sock"\n' % (www, dep.root))
        apache = servers.Apache(dep.root, "", port, modules=["cgid"],
                                mpm="event", docroot=www, extra=extra)
        dep.logs[:0] = apache.logs()
        apache.start()
        ck = scenario.Checker(t, dep, "")
        for n, (label, settings, few) in enumerate(ROUNDS):
            dep.write_config(sample + "\n# the test's settings\n" +
                             settings,
                             omit=("token_cache", "spool_dir", "log *",
                                   "on"))
            burst(t, ck, dep, sim, port, wlog, FIRST_ITEM * (n + 1), label,
                  few)
        dep.write_config(sample, omit=("token_cache", "spool_dir", "log *",
                                       "on"))
        kill_round(t, ck, dep, port, wlog, FIRST_ITEM * (len(ROUNDS) + 1))
        scenario.stop_all(ck, apache)
    t.done()


testlib.main(main)
