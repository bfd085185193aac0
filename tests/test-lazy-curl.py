"""A build with --enable-lazy-libcurl loads libcurl only for an API call.

Run in a build configured with --enable-lazy-libcurl (config.h defines
PODIO_LAZY_CURL); any other build reports itself skipped.  Checks:
 - the program has no NEEDED libcurl (readelf -d);
 - the CGI answers a GET (405), a delivery with a wrong secret (403) and
   a delivery it stores (200, no detached worker: cgi_budget = 0) without
   loading libcurl: the dynamic loader's trace (LD_DEBUG=files) names no
   libcurl, and the simulator saw no request;
 - `spool drain` then fetches the stored item (loading libcurl), a stored
   delivery's detached worker does the same, and a hook.verify loads it
   and the simulator records the validate call;
 - when libcurl.so.4 cannot be loaded (an empty file mounted over it in a
   private mount namespace: unshare --mount as root, -rm otherwise), a
   hook.verify is answered 502, the log says "cannot load libcurl.so.4:
   ..." once, `check` and `doctor` say it too, and nothing crashes.
   Skipped where no namespace can be made.
"""
import json
import os
import re
import shutil
import subprocess
import urllib.parse

import fcgi
import testlib

SECRET = "lazy-curl-secret"
FORM = "application/x-www-form-urlencoded"


def lazy_build():
    """(yes, why not) from this build's config.h."""
    path = os.path.join(testlib.BUILDDIR, "config.h")
    text = testlib.read_text(path)
    if not text:
        return False, "%s cannot be read" % path
    if not re.search(r"^#define PODIO_LAZY_CURL 1$", text, re.M):
        return False, "built without --enable-lazy-libcurl"
    return True, ""


def form(*pairs, secret=SECRET):
    return urllib.parse.urlencode(list(pairs) + [("secret", secret)]).encode()


class Run:
    """One run of the program: exit status, stdout, stderr and the
    dynamic loader's trace (every process it started included)."""

    def __init__(self, rc, stdout, stderr, trace):
        self.rc, self.stdout, self.stderr, self.trace = (
            rc, stdout, stderr, trace)
        self.status = fcgi.parse_cgi(stdout)[0] if stdout else 0

    def loaded_curl(self):
        return re.search(r"libcurl\.so", self.trace) is not None

    def show(self):
        return "exit %d\nstdout: %r\nstderr: %s" % (
            self.rc, self.stdout[:2000], self.stderr[-3000:])


def run(env, argv=(), body=None, method="POST", prefix=()):
    """Runs the program (as a CGI program when body is not None) with
    LD_DEBUG=files writing its trace to files of a fresh directory."""
    d = testlib.tmpdir()
    e = dict(env)
    e["LD_DEBUG"] = "files"
    e["LD_DEBUG_OUTPUT"] = os.path.join(d, "ld")
    if body is not None:
        e.update(fcgi.cgi_params(body, method=method))
    r = subprocess.run(list(prefix) + testlib.wrapper() +
                       [testlib.PODIO_WEBHOOK] + list(argv), env=e,
                       input=body if body is not None else b"",
                       capture_output=True, timeout=120)
    trace = "".join(testlib.read_text(os.path.join(d, n))
                    for n in sorted(os.listdir(d)))
    return Run(r.returncode, r.stdout, r.stderr.decode("utf-8", "replace"),
               trace)


def clean(r):
    """No crash and no sanitizer report."""
    return r.rc >= 0 and r.rc < 128 and not re.search(
        r"AddressSanitizer|LeakSanitizer|runtime error:|==\d+== (Invalid|"
        r"Conditional|Syscall)", r.stderr)


def curl_path(trace):
    """The file the loader opened for libcurl.so.4, from a trace."""
    m = re.search(r"calling init: (\S*libcurl\.so\.4\S*)", trace)
    return os.path.realpath(m.group(1)) if m else None


def main():
    t = testlib.Tap()
    ok, why = lazy_build()
    if not ok:
        t.skip_all(why)
        return
    r = subprocess.run(["readelf", "-d", testlib.PODIO_WEBHOOK],
                       capture_output=True, text=True)
    t.ok(r.returncode == 0 and "NEEDED" in r.stdout and
         "libcurl" not in r.stdout,
         "the program has no NEEDED libcurl", r.stdout + r.stderr)

    with testlib.Sim() as sim:
        d = testlib.tmpdir()
        spool = os.path.join(d, "spool")
        events = os.path.join(d, "events.jsonl")
        conf = testlib.write_config(
            os.path.join(d, "handler.conf"),
            ["log * = %s" % events],
            webhook_secret='"%s"' % SECRET, spool_dir=spool,
            coalesce_window="0", cgi_budget="0")
        env = testlib.base_env(sim)
        env["PODIO_WEBHOOK_CONFIG"] = conf
        sim.add_item(4201)
        sim.add_item(4202)

        # ---------------------------------------------- no API call
        r = run(env, body=b"", method="GET")
        t.ok(r.status == 405 and clean(r), "GET: 405", r.show())
        t.ok(r.trace and not r.loaded_curl(),
             "GET: libcurl not loaded", r.trace[-3000:])
        r = run(env, body=form(("type", "item.create"), ("hook_id", "1001"),
                               ("item_id", "4201"),
                               ("item_revision_id", "1"), secret="wrong"))
        t.ok(r.status == 403 and clean(r), "a wrong secret: 403", r.show())
        t.ok(r.trace and not r.loaded_curl(),
             "a wrong secret: libcurl not loaded", r.trace[-3000:])
        r = run(env, body=form(("type", "item.create"), ("hook_id", "1001"),
                               ("item_id", "4201"),
                               ("item_revision_id", "1")))
        t.ok(r.status == 200 and clean(r), "a stored delivery: 200",
             r.show())
        t.ok(r.trace and not r.loaded_curl(),
             "a stored delivery: libcurl not loaded", r.trace[-3000:])
        t.ok(not sim.requests(), "no request reached the simulator",
             sim.requests())

        # ---------------------------------------------- API calls
        r = run(env, ["-c", conf, "spool", "drain"])
        fetched = sim.requests("/item/4201")
        t.ok(r.rc == 0 and clean(r) and fetched and r.loaded_curl(),
             "spool drain fetches the item, loading libcurl",
             "%s\nfetches: %s" % (r.show(), fetched))
        path = curl_path(r.trace)

        # The detached worker of a CGI run (forked, not executed anew)
        # loads it for its fetch.
        worker_conf = testlib.write_config(
            os.path.join(d, "worker.conf"), ["log * = %s" % events],
            webhook_secret='"%s"' % SECRET, spool_dir=spool,
            coalesce_window="0", cgi_budget="5s")
        worker_env = dict(env, PODIO_WEBHOOK_CONFIG=worker_conf)
        r = run(worker_env, body=form(("type", "item.create"),
                                      ("hook_id", "1001"),
                                      ("item_id", "4202"),
                                      ("item_revision_id", "1")))
        t.ok(r.status == 200 and clean(r),
             "a stored delivery with a worker: 200", r.show())
        try:
            testlib.wait_for(lambda: sim.requests("/item/4202"),
                             "the worker's fetch")
            fetched = True
        except RuntimeError:
            fetched = False
        t.ok(fetched, "the detached worker fetched the item",
             testlib.read_text(events)[-2000:])

        r = run(env, ["-c", conf, "hooks", "create", "app", "1234",
                      "https://hooks.example.com/podio", "item.create"])
        hook_id = int(r.stdout.strip() or 0) if r.rc == 0 else 0
        code = sim.verify_code(hook_id)
        t.ok(hook_id > 0 and code, "a hook to verify", r.show())
        sim.clear_requests()
        verify = form(("type", "hook.verify"), ("hook_id", str(hook_id)),
                      ("code", code or "x"))
        r = run(env, body=verify)
        val = sim.requests("/hook/%d/verify/validate" % hook_id)
        t.ok(r.status == 200 and clean(r) and r.loaded_curl(),
             "hook.verify: 200, libcurl loaded", r.show())
        t.ok(len(val) == 1 and json.loads(val[0]["body"]) == {"code": code},
             "the simulator recorded the validate call", val)

        missing_curl(t, sim, env, conf, path, verify)
    t.done()


def missing_curl(t, sim, env, conf, path, verify):
    """hook.verify and check where libcurl.so.4 cannot be loaded: an empty
    file is mounted over it in a mount namespace of the run's own."""
    names = ["hook.verify without libcurl: 502",
             "the log says why, once",
             "check says it",
             "doctor says it, and what to do"]
    if not path:
        for name in names:
            t.skip(name, "the trace named no libcurl.so.4 file")
        return
    unshare = shutil.which("unshare")
    empty = os.path.join(testlib.tmpdir(), "empty.so")
    open(empty, "w").close()
    # As root a mount namespace alone does (and works where user
    # namespaces are refused, as in a chroot); otherwise a user namespace
    # gives the right to mount.
    flags = (["--mount", "--propagation", "private"] if os.geteuid() == 0
             else ["-rm"])
    prefix = [unshare or "unshare"] + flags + ["sh", "-c",
              'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
              empty, path]
    probe = subprocess.run(prefix + ["true"], capture_output=True,
                           text=True) if unshare else None
    if probe is None or probe.returncode != 0:
        why = ("no unshare(1)" if probe is None else
               "cannot make a mount namespace here (unshare %s: %s)" % (
                   " ".join(flags), probe.stderr.strip()))
        for name in names:
            t.skip(name, why)
        return
    # A cache of its own: the token cached above would spare the token
    # request, and the call must be the first to need libcurl.
    e = dict(env, PODIO_TOKEN_CACHE=os.path.join(testlib.tmpdir(),
                                                 "cache.json"))
    sim.clear_requests()
    r = run(e, body=verify, prefix=prefix)
    t.ok(r.status == 502 and clean(r) and not sim.requests(),
         names[0], "%s\nrequests: %s" % (r.show(), sim.requests()))
    # The failure is logged once as such; the request's own error lines
    # quote it.
    t.ok(len(re.findall(r"error: cannot load libcurl\.so\.4: \S",
                        r.stderr)) == 1, names[1], r.stderr)
    r = run(e, ["-c", conf, "check"], prefix=prefix)
    t.ok(r.rc != 0 and clean(r) and re.search(
        r"check: .*cannot load libcurl\.so\.4: \S", r.stderr),
        names[2], r.show())
    r = run(e, ["-c", conf, "doctor"], prefix=prefix)
    out = r.stdout.decode("utf-8", "replace")
    t.ok(r.rc != 0 and clean(r) and re.search(
        r"api: .*cannot be used: cannot load libcurl\.so\.4: \S.*"
        r"install libcurl", out), names[3],
        "exit %d\nstdout: %s\nstderr: %s" % (r.rc, out, r.stderr))


if __name__ == "__main__":
    main()
