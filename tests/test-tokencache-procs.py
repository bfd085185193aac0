"""The token cache file shared by processes, end to end: many
podio-test-client processes (as CGI starts one process per request) share
one token_cache file against the simulator.

- 8 processes started at once make exactly one token request between them;
  8 more make none; the cached token is the one the API calls carry.
- A cache file with mode 0644, one of another client, and a corrupt one
  are ignored with a warning on stderr (never showing a token) and
  replaced by a good 0600 file.
- A process killed with SIGKILL while it holds the cache lock (its token
  request held at a simulator gate) does not stall the next processes.
"""

import json
import os
import re
import signal
import stat

import testlib

t = testlib.Tap()
CLIENT = testlib.PODIO_TEST_CLIENT
SUMMARY = re.compile(r"^ok=(\d+) failed=(\d+) token_requests=(\d+)$", re.M)


def auth_argv():
    return [CLIENT, "--op", "auth", "--threads", "1", "--calls", "1"]


def item_argv(item_id):
    return [CLIENT, "--op", "item", "--item", str(item_id), "--threads",
            "1", "--calls", "1"]


def summary(out):
    """(ok, failed, token_requests) from the driver's output, or None."""
    m = SUMMARY.search(out or "")
    return tuple(int(x) for x in m.groups()) if m else None


def finish(procs, timeout=120):
    """Waits for every Popen in procs; returns [(rc, stdout, stderr)]."""
    if testlib.wrapper():
        timeout *= 10
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def all_succeeded(results):
    return all(rc == 0 and summary(out) is not None and
               summary(out)[:2] == (1, 0) for rc, out, _ in results)


def show(results):
    return "\n".join("rc=%s out=%r err=%r" % r for r in results)


HAVE_PROC = os.path.isdir("/proc/self/fd")


def holds_open(pid, path):
    """Whether process pid has path open (Linux /proc; always true
    without /proc, where this cannot be seen)."""
    if not HAVE_PROC:
        return True
    path = os.path.realpath(path)
    fd_dir = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(os.path.join(fd_dir, name)) == path:
                return True
        except OSError:
            pass
    return False


def read_cache(path):
    with open(path) as f:
        return json.load(f)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def no_token_in(text, *tokens):
    return all(tok and tok not in text for tok in tokens)


with testlib.Sim() as sim:
    env = testlib.base_env(sim)
    cache = env["PODIO_TOKEN_CACHE"]
    lock = cache + ".lock"

    # ---------------------------------------------------------------
    # 8 processes at once: one token request.  The token endpoint is
    # slow (token_latency_ms) and, to be sure the 8 overlap, held at a
    # gate until every process has opened the lock file: by then each
    # one has found no usable cache and waits for the lock.  The gate
    # could hold all 8 token requests; it must only ever see one.
    sim.configure(token_latency_ms=1500)
    gid = sim.gate("/oauth/token", count=8)
    procs = [testlib.popen(auth_argv(), env=env) for _ in range(8)]
    sim.wait_until(lambda: sim.gate_waiting(gid) >= 1, timeout=120,
                   what="the first token request at the gate")
    sim.wait_until(lambda: all(holds_open(p.pid, lock) or
                               p.poll() is not None for p in procs),
                   timeout=120, what="all 8 processes at the lock")
    held = sim.gate_waiting(gid)
    waiting = len(sim.token_requests())
    sim.release(gid)
    results = finish(procs)
    t.ok(held == 1 and waiting == 1,
         "while one process waits for its token, the other 7 send none",
         "held=%d recorded=%d" % (held, waiting))
    t.ok(all_succeeded(results), "all 8 concurrent processes succeed",
         show(results))
    t.is_(len(sim.token_requests()), 1,
          "the simulator saw exactly 1 token request from 8 processes")
    t.is_(sum(summary(out)[2] for _, out, _ in results
              if summary(out) is not None), 1,
          "the processes' own counters add up to 1 token request")
    t.ok(os.path.exists(cache) and mode_of(cache) == 0o600,
         "the cache file exists with mode 0600")
    cached = read_cache(cache)
    issued = [tok["access_token"] for tok in sim.tokens()]
    t.ok(cached.get("access_token") in issued and
         cached.get("refresh_token"),
         "the cache holds the issued access token and a refresh token")
    t.ok(all(no_token_in(err, cached["access_token"],
                         cached["refresh_token"])
             for _, _, err in results),
         "no token appears on any process's stderr")
    sim.configure(token_latency_ms=0)

    # ---------------------------------------------------------------
    # 8 more processes: everything from the cache.
    sim.clear_requests()
    procs = [testlib.popen(auth_argv(), env=env) for _ in range(8)]
    results = finish(procs)
    t.ok(all_succeeded(results), "8 more processes succeed", show(results))
    t.is_(len(sim.token_requests()), 0,
          "and make no token request (the cache serves them)")
    t.ok(all(summary(out) is not None and summary(out)[2] == 0
             for _, out, _ in results),
         "each reports token_requests=0")

    # ---------------------------------------------------------------
    # The cached token is the one the API call carries.
    sim.clear_requests()
    r = testlib.run(item_argv(4242), env=env)
    items = sim.requests("/item/4242")
    t.ok(r.returncode == 0 and len(items) == 1 and
         items[0]["headers"].get("authorization") ==
         "OAuth2 " + cached["access_token"],
         "the item request carries the cached token",
         "rc=%d out=%r err=%r requests=%r" % (r.returncode, r.stdout,
                                             r.stderr, items))
    t.is_(len(sim.token_requests()), 0, "no token request for it")

    # ---------------------------------------------------------------
    # A cache readable by group and others: ignored with a warning, then
    # replaced by a 0600 file.
    os.chmod(cache, 0o644)
    sim.clear_requests()
    r = testlib.run(auth_argv(), env=env)
    t.ok(r.returncode == 0 and len(sim.token_requests()) == 1,
         "a 0644 cache file is ignored: a new token is requested",
         "rc=%d out=%r err=%r" % (r.returncode, r.stdout, r.stderr))
    t.ok(cache in r.stderr and "0644" in r.stderr and
         "warn" in r.stderr.lower(),
         "a warning on stderr names the file and its mode", r.stderr)
    t.ok(no_token_in(r.stderr, cached["access_token"],
                     cached["refresh_token"]),
         "the warning shows no token")
    t.is_(mode_of(cache), 0o600, "the file was replaced with mode 0600")
    new = read_cache(cache)
    t.ok(new["access_token"] != cached["access_token"] and
         new["access_token"] in [tok["access_token"] for tok in sim.tokens()],
         "and holds the newly issued token")

    # ---------------------------------------------------------------
    # A cache of another client: ignored.
    other = dict(new)
    other["owner"] = new["owner"].replace("test-client", "other-client", 1)
    with open(cache, "w") as f:
        json.dump(other, f)
    os.chmod(cache, 0o600)
    sim.clear_requests()
    r = testlib.run(auth_argv(), env=env)
    t.ok(other["owner"] != new["owner"] and r.returncode == 0 and
         len(sim.token_requests()) == 1,
         "a cache of another client_id is ignored: a new token is "
         "requested", "rc=%d err=%r" % (r.returncode, r.stderr))
    t.ok(cache in r.stderr and "another" in r.stderr,
         "with a warning naming the file", r.stderr)
    t.ok(read_cache(cache)["owner"] == new["owner"],
         "the file now holds this client's tokens")

    # ---------------------------------------------------------------
    # A corrupt (truncated) cache: ignored.
    text = json.dumps(read_cache(cache))
    with open(cache, "w") as f:
        f.write(text[:len(text) // 2])
    sim.clear_requests()
    r = testlib.run(auth_argv(), env=env)
    t.ok(r.returncode == 0 and len(sim.token_requests()) == 1,
         "a truncated cache file is ignored: a new token is requested",
         "rc=%d err=%r" % (r.returncode, r.stderr))
    t.ok(cache in r.stderr and "JSON" in r.stderr,
         "with a warning naming the file", r.stderr)
    t.ok(no_token_in(r.stderr, *[tok["access_token"]
                                 for tok in sim.tokens()]),
         "no warning shows a token")
    good = read_cache(cache)
    t.ok(good.get("version") == 1 and good.get("access_token"),
         "the file is valid again")

    # ---------------------------------------------------------------
    # A lock holder killed with SIGKILL.  Start from no cache so the
    # process must fetch a token, hold its token request at the gate
    # (it holds the lock then), kill it, release the gate, then start 3.
    os.unlink(cache)
    sim.clear_requests()
    gid = sim.gate("/oauth/token", count=1)
    victim = testlib.popen(auth_argv(), env=env)
    sim.wait_until(lambda: sim.gate_waiting(gid) == 1 or
                   victim.poll() is not None, timeout=120,
                   what="the victim's token request at the gate")
    t.ok(sim.gate_waiting(gid) == 1 and holds_open(victim.pid, lock),
         "the victim holds the lock while its token request waits")
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    t.is_(victim.returncode, -signal.SIGKILL, "the victim died of SIGKILL")
    sim.release(gid)
    sim.wait_until(lambda: all(r["status"] is not None
                               for r in sim.token_requests()),
                   what="the victim's token request to finish")
    t.ok(not os.path.exists(cache), "the victim wrote no cache file")
    before = len(sim.token_requests())
    procs = [testlib.popen(auth_argv(), env=env) for _ in range(3)]
    results = finish(procs, timeout=60)
    t.ok(all_succeeded(results),
         "3 processes after the killed holder complete", show(results))
    t.is_(len(sim.token_requests()) - before, 1,
          "and make 1 token request among them")
    t.is_(sum(summary(out)[2] for _, out, _ in results
              if summary(out) is not None), 1,
          "their own counters agree")

t.done()
