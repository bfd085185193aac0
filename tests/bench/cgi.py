#!/usr/bin/env python3
"""The CGI benchmark (run by tests/bench/cgi and `make bench`, after
tests/bench/ack).

First the CGI bundle: `make cgi-bundle` in the build directory
(incremental; as the build directory's owner when run as root), then
its size (the tarball in bytes and MB, unpacked, the libraries in lib/)
and the shared objects each program loads to start (the normal build's
handler/podio-webhook and the bundle's bin/podio-webhook, from
LD_TRACE_LOADED_OBJECTS, ld.so and glibc's included), with what the
bundle loads later, at its first API call (libcurl and its libraries).
This part needs no root; when the bundle cannot be built it says why
and the rest runs without the bundle's runs.

Apache (event MPM, mod_cgid) on 127.0.0.1, started as root with its
children as www-data, serves a web directory laid out as on a shared
host: deploy/htaccess as .htaccess, the wrapper deploy/podio-webhook.cgi
(placeholders replaced; the binary and its configuration outside the web
directory), minimal.cgi (tests/bench/cgi-minimal) and durable.cgi (the
same program, given MINIMAL_SYNC_FILE by SetEnv).  The bundle is
installed as users install it, as www-data (whom the CGI runs as: this
Apache has no suexec): unpacked in that user's home, its install.sh run
with --prefix ~/podio-webhook and a web directory of its own (bundle/),
then the benchmark's settings added to the configuration install.sh
wrote (its state, spool and `log *` file in ~/podio-webhook/var).  wrk at
8 connections, for the same number of seconds each, against:

  (a) minimal.cgi, posted item.delete deliveries: it reads CONTENT_LENGTH
      bytes and answers 200 (what mod_cgid costs with the cheapest
      program it can start);
  (b) podio-webhook.cgi with GET, answered 405: start, answer, exit, the
      program's own cheapest answer (what starting this binary costs);
  (c) podio-webhook.cgi, posted item.delete deliveries of distinct items
      (cgi.lua): each is stored in the spool, and the spool's one
      detached worker runs the `log *` callback;
  (d) and (e): (b) and (c) against the bundle as installed, through the
      CGI script its install.sh wrote, bundle/podio-webhook.cgi (the
      program named as the script's interpreter, so no shell runs), as
      shared hosts run it;
  (f) and (g): (b) and (c) against the bundle's binary called directly
      (/bundle-direct.cgi, a copy beside it in ~/podio-webhook/bin, with
      PODIO_WEBHOOK_CONFIG from SetEnv), so that the script's cost shows;
  (h) durable.cgi, the durable reference, posted item.delete deliveries:
      it reads the body, appends it to a file (O_APPEND) and answers 200
      once fdatasync() of that file returned (what any CGI that answers
      only after a durable write costs, with nothing else to do).

The runs alternate, (a) to (h), in each of the rounds; after each
delivery run, without any `spool drain`, it waits until every event
acknowledged in it reached the `log *` file and the worker has ended (so
that the next run starts on a quiet machine) and says how long that
took.  It prints requests/s, p50 and p99 of each run and their medians,
the ratios (c)/(b) and (c)/(a) of the medians, the targets (requests/s of
(c) at least 0.8 of (b)'s, p99 at most twice (b)'s) as met or NOT met,
and the most podio-webhook processes seen alive at once during (c)
(/proc sampled).  Then the bundle's: the ratios to the normal build
((d)/(b), (e)/(c)) and to the minimal C CGI ((d)/(a), (e)/(a)), the
direct calls' ratios, and the bundle's targets, judged on the bundle as
installed, through its CGI script: requests/s at least the normal build's
((d)/(b) and (e)/(c) at least 1) and at least 0.5 of the minimal C CGI's
((d)/(a) and (e)/(a)), each met or NOT met.  Then the durable
reference's median, its ratio to the minimal C CGI ((h)/(a): what the
flush alone costs) and the deliveries' ratios to it ((c)/(h), and the
bundle's (e)/(h) and (g)/(h)): how close each comes to what any CGI that
answers only after a durable write can do on this machine.  Last, the 2,000-delivery
check (the normal build): exactly 2,000 item.delete deliveries from 8
threads of a Python client; every one must reach the `log *` file, and
the workers' lines in the log ("cgi worker pid=N started" / "... ended")
must show lock turns that never overlap.

A benchmark, not a test: it prints figures and exits 0 whatever they
are, also when it is not run as root or Apache, mod_cgid or wrk is
missing (it says why).

Usage: cgi.py [BUILDDIR]   (default: $top_builddir, else .)
Environment: PODIO_BENCH_CGI_SECONDS (per wrk run, default 10),
PODIO_BENCH_CGI_ROUNDS (rounds of (a) to (h) in turn, default 2),
PODIO_BENCH_CGI_DELIVERIES (the check's deliveries, default 2000),
MAKE (for make cgi-bundle, default make).
"""

import http.client
import json
import os
import re
import pwd
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse

# The helpers ack.py has too (this directory is on the path of a script).
from ack import count_lines, env_int, median_of, parse_wrk, say

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))

TARGET_RATIO = 0.8        # requests/s of (c), times (b)'s
TARGET_P99 = 2.0          # p99 of (c), at most times (b)'s
# The CGI bundle as installed, through its CGI script:
TARGET_BUNDLE_NORMAL = 1.0    # requests/s, times the normal build's
TARGET_BUNDLE_MINIMAL = 0.5   # requests/s, times the minimal C CGI's
CONNECTIONS = 8
WRK_THREADS = 2
HOOK_ID = 1001
CHECK_FIRST_ITEM = 900000000000   # far from the ids of cgi.lua's runs
DRAIN_TIMEOUT_S = 300
servers = None            # tests/e2e/servers.py, imported in main()


def give_up(why):
    """Says why the benchmark does not run; exits 0 (never fails)."""
    say("CGI benchmark: not run: " + why)
    sys.exit(0)


# ------------------------------------------------------------------ wrk


def run_wrk(url, seconds, args=None):
    """One wrk run at CONNECTIONS connections: GET without args, else
    cgi.lua's posts with args (SECRET RUN HOOK_ID)."""
    argv = ["wrk", "-t", str(WRK_THREADS), "-c", str(CONNECTIONS),
            "-d", "%ds" % seconds, "--latency", "--timeout", "30s"]
    if args:
        argv += ["-s", os.path.join(HERE, "cgi.lua"), url, "--"] + \
            [str(a) for a in args]
    else:
        argv.append(url)
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=seconds * 3 + 120)
    fig = parse_wrk(r.stdout)
    if fig is None:
        raise RuntimeError("wrk gave no figures (exit %d):\n%s%s" % (
            r.returncode, r.stdout, r.stderr))
    return fig


def fmt_ms(v):
    return "?" if v is None else "%.1f ms" % v


def verdict(ok, how):
    return ("met" if ok else "NOT met") + " (" + how + ")"

# ------------------------------------------------------------------ bundle


def build_bundle(builddir):
    """Runs `make cgi-bundle` in builddir (incremental: it rebuilds what
    changed).  Run as root, it runs as the build directory's owner, so
    that no file of root's is left there.  Returns (tarball, None), or
    (None, why)."""
    argv = [os.environ.get("MAKE") or "make", "cgi-bundle"]
    env = dict(os.environ)
    st = os.stat(builddir)
    if os.geteuid() == 0 and st.st_uid != 0:
        argv = ["setpriv", "--reuid=%d" % st.st_uid,
                "--regid=%d" % st.st_gid, "--clear-groups", "--"] + argv
        try:
            env["HOME"] = pwd.getpwuid(st.st_uid).pw_dir
        except KeyError:
            pass
    start = time.time()
    try:
        r = subprocess.run(argv, cwd=builddir, env=env, capture_output=True,
                           text=True, timeout=3600)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, "make cgi-bundle did not run: %s" % exc
    if r.returncode != 0:
        out = (r.stdout + r.stderr).strip().splitlines() or ["(no output)"]
        return None, "make cgi-bundle failed (exit %d):\n    %s" % (
            r.returncode, "\n    ".join(out[-15:]))
    m = re.search(r"cgi-bundle: (podio-webhook-cgi-\S+\.tar\.gz):", r.stdout)
    tarball = os.path.join(builddir, m.group(1)) if m else None
    if not tarball or not os.path.isfile(tarball) or \
            os.path.getmtime(tarball) < start - 1:
        return None, "make cgi-bundle named no tarball it made:\n    " + \
            "\n    ".join(r.stdout.strip().splitlines()[-5:])
    return tarball, None


def loaded_objects(binary, env=None):
    """The shared objects the loader maps to start binary (ld.so and
    glibc's included, the vDSO not): their names, in load order, from
    LD_TRACE_LOADED_OBJECTS (ldd's own way).  Raises RuntimeError."""
    e = {"PATH": "/usr/bin:/bin", "LANG": "C",
         "LD_TRACE_LOADED_OBJECTS": "1"}
    e.update(env or {})
    r = subprocess.run([binary], capture_output=True, text=True, env=e,
                       timeout=60)
    names = []
    for line in r.stdout.splitlines():
        f = line.split()
        if not f or f[0].startswith(("linux-vdso", "linux-gate")):
            continue
        names.append(os.path.basename(f[0]))
    if r.returncode != 0 or not names or "not found" in r.stdout:
        raise RuntimeError("cannot list what %s loads (exit %d): %s" % (
            binary, r.returncode, (r.stdout + r.stderr).strip()[:300]))
    return names


def ldd_names(path, env=None):
    """The names ldd lists for a shared library (the vDSO not)."""
    e = {"PATH": "/usr/bin:/bin", "LANG": "C"}
    e.update(env or {})
    r = subprocess.run(["ldd", path], capture_output=True, text=True,
                       env=e, timeout=60)
    if r.returncode != 0 or "not found" in r.stdout:
        raise RuntimeError("ldd %s failed: %s" % (
            path, (r.stdout + r.stderr).strip()[:300]))
    return [os.path.basename(line.split()[0])
            for line in r.stdout.splitlines()
            if line.split() and
            not line.split()[0].startswith(("linux-vdso", "linux-gate"))]


def tree_size(top):
    """(bytes, files) of the regular files under top (apparent sizes)."""
    size = files = 0
    for d, _dirs, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                size += os.path.getsize(p)
                files += 1
    return size, files


def bundle_figures(tarball, normal):
    """The bundle's sizes and what each program loads to start: unpacks
    tarball into a temporary directory (removed again).  Raises
    RuntimeError or OSError."""
    tmp = tempfile.mkdtemp(prefix="podio-bench-bundle-")
    try:
        with tarfile.open(tarball) as t:
            t.extractall(tmp)
        tops = os.listdir(tmp)
        if len(tops) != 1:
            raise RuntimeError("%s does not unpack to one directory" %
                               tarball)
        top = os.path.join(tmp, tops[0])
        size, files = tree_size(top)
        libdir = os.path.join(top, "lib")
        libs = sorted(os.listdir(libdir))
        start = loaded_objects(os.path.join(top, "bin", "podio-webhook"))
        # libcurl, with what it needs, comes at the first API call only
        # (dlopen through the program's run path: lib/ first).
        curl = ["libcurl.so.4"] + ldd_names(
            os.path.join(libdir, "libcurl.so.4"),
            {"LD_LIBRARY_PATH": libdir})
        later = [n for n in dict.fromkeys(curl) if n not in start]
        return {"tarball": os.path.basename(tarball),
                "bytes": os.path.getsize(tarball),
                "unpacked": size, "files": files, "libs": len(libs),
                "start": start, "later": later,
                "normal": loaded_objects(normal)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def say_bundle(fig):
    say("  %s: %d bytes (%.2f MB); unpacked %d bytes (%.2f MB) in %d "
        "files; %d libraries in lib/" % (
            fig["tarball"], fig["bytes"], fig["bytes"] / 1e6,
            fig["unpacked"], fig["unpacked"] / 1e6, fig["files"],
            fig["libs"]))
    say("  shared objects loaded to start (LD_TRACE_LOADED_OBJECTS; ld.so "
        "and glibc's included): the normal build %d, the bundle %d (%s); "
        "the bundle loads %d more (libcurl and its libraries) at its "
        "first API call only" % (
            len(fig["normal"]), len(fig["start"]), ", ".join(fig["start"]),
            len(fig["later"])))


def install_bundle(root, www, tarball, user, group, port):
    """Installs the bundle as shared-host users do, as the web server's
    user (whom the CGI runs as: the bench's Apache has no suexec): the
    tarball unpacked in that user's home, its install.sh run from there
    with --prefix ~/podio-webhook and the web directory www/bundle.
    Returns the installed paths; raises RuntimeError or OSError."""
    home = servers.mkdir(os.path.join(root, "home"), 0o755, user, group)
    copy = os.path.join(home, os.path.basename(tarball))
    shutil.copy(tarball, copy)
    shutil.chown(copy, user, group)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": home}
    r = subprocess.run(servers.as_user(user, group) +
                       ["tar", "-xzf", copy], cwd=home, env=env,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("tar -xzf %s failed: %s" % (copy, r.stderr))
    unpacked = os.path.join(home, os.path.basename(tarball)[:-len(".tar.gz")])
    # The web directory is the user's own, as public_html is.
    webdir = servers.mkdir(os.path.join(www, "bundle"), 0o755, user, group)
    prefix = os.path.join(home, "podio-webhook")
    r = subprocess.run(servers.as_user(user, group) +
                       ["./install.sh", "--prefix", prefix, "--url",
                        "http://127.0.0.1:%d/bundle" % port, webdir],
                       cwd=unpacked, env=env, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("install.sh failed (exit %d):\n%s%s" % (
            r.returncode, r.stdout, r.stderr))
    binary = os.path.join(prefix, "bin", "podio-webhook")
    # The same binary run directly as the CGI program (no /bin/sh), from
    # the same directory, so that its run path finds lib/.
    direct = os.path.join(prefix, "bin", "bundle-direct.cgi")
    shutil.copy(binary, direct)
    os.chmod(direct, 0o700)
    shutil.chown(direct, user, group)
    return {"prefix": prefix, "config": os.path.join(prefix,
                                                      "podio-webhook.conf"),
            "binary": binary, "direct": direct,
            "events_log": os.path.join(prefix, "var", "events.jsonl"),
            "wlog": os.path.join(prefix, "var", "podio-webhook.log"),
            "said": r.stdout}

# ------------------------------------------------------------------ files


def logged_items(path):
    """{item_id: times} of the events in the `log *` file."""
    seen = {}
    try:
        with open(path, "rb") as f:
            lines = f.readlines()
    except OSError:
        return seen
    for line in lines:
        m = re.search(rb'"item_id":\s*(\d+)', line)
        if m:
            k = int(m.group(1))
            seen[k] = seen.get(k, 0) + 1
    return seen


def wait_until(fn, timeout):
    """Polls fn() every 50 ms until it is true: the seconds it took, or
    None after timeout seconds."""
    start = time.monotonic()
    while not fn():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.05)
    return time.monotonic() - start

# ------------------------------------------------------------------ client


def post_deliveries(port, path, secret, first, n):
    """Posts n item.delete deliveries (items first..first+n-1) from
    CONNECTIONS threads, each on a keep-alive connection: {status: count}
    (an error counts under its repr)."""
    lock = threading.Lock()
    todo = list(range(n))
    statuses = {}

    def poster():
        conn = None
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            body = urllib.parse.urlencode(
                (("secret", secret), ("type", "item.delete"),
                 ("hook_id", str(HOOK_ID)), ("item_id", str(first + i))))
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port,
                                                      timeout=60)
                conn.request("POST", path, body, {
                    "Content-Type": "application/x-www-form-urlencoded"})
                resp = conn.getresponse()
                resp.read()
                st = resp.status
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                st = repr(exc)
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                statuses[st] = statuses.get(st, 0) + 1
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=poster) for _ in range(CONNECTIONS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return statuses

# ------------------------------------------------------------------ main


def main():
    builddir = os.path.abspath(
        (sys.argv[1] if len(sys.argv) > 1 else "") or
        os.environ.get("top_builddir") or ".")
    os.environ["top_builddir"] = builddir
    os.environ.setdefault("top_srcdir", SRCDIR)
    webhook = os.path.join(builddir, "handler", "podio-webhook")
    minimal = os.path.join(builddir, "tests", "bench", "cgi-minimal")
    for prog, how in ((webhook, "make"),
                      (minimal, "make tests/bench/cgi-minimal")):
        if not os.access(prog, os.X_OK):
            give_up("%s is missing (build it: %s)" % (prog, how))
    # The bundle's size needs neither root nor a web server.
    say("podio-webhook CGI bundle (make cgi-bundle in %s):" % builddir)
    tarball, why = build_bundle(builddir)
    if tarball:
        try:
            say_bundle(bundle_figures(tarball, webhook))
        except (RuntimeError, OSError, tarfile.TarError,
                subprocess.SubprocessError) as exc:
            tarball, why = None, "cannot measure %s: %s" % (tarball, exc)
    if not tarball:
        say("  not measured, and the bundle's runs are left out: " + why)
    say()
    if os.geteuid() != 0:
        give_up("needs root (Apache starts as root and runs its children "
                "as www-data, as deployed)")
    if not shutil.which("wrk"):
        give_up("wrk is not installed")
    sys.path.insert(0, os.path.join(SRCDIR, "tests", "e2e"))
    global servers
    import servers  # noqa: E402  (needs top_builddir set above)
    if not os.access(servers.APACHE, os.X_OK):
        give_up("Apache is not installed (%s)" % servers.APACHE)
    if not os.path.exists(os.path.join(servers.APACHE_MODULES,
                                       "mod_cgid.so")):
        give_up("mod_cgid is not installed (%s)" % servers.APACHE_MODULES)
    user, group = servers.WEB_USER, servers.WEB_GROUP
    try:
        servers.grp_gid(group)
    except KeyError:
        give_up("no group %s for Apache's children" % group)
    seconds = env_int("PODIO_BENCH_CGI_SECONDS", 10, 1, 600)
    rounds = env_int("PODIO_BENCH_CGI_ROUNDS", 2, 1, 20)
    check_n = env_int("PODIO_BENCH_CGI_DELIVERIES", 2000, 1, 1000000)

    # The layout of a shared host: the binary, its configuration and its
    # state outside the web directory.
    root = servers.make_root()
    bindir = servers.mkdir(os.path.join(root, "bin"))
    binary = os.path.join(bindir, "podio-webhook")
    shutil.copy(webhook, binary)
    os.chmod(binary, 0o755)
    etc = servers.mkdir(os.path.join(root, "etc"))
    config = os.path.join(etc, "podio-webhook.conf")
    state = servers.mkdir(os.path.join(root, "state"), 0o700, user, group)
    events_log = os.path.join(state, "events.jsonl")
    wlog = os.path.join(state, "podio-webhook.log")
    secret = "bench-" + secrets.token_hex(16)
    # item.delete needs no API call: the API is a loopback port nothing
    # listens on, so that a call would show as an error in the log.
    sample = servers.substitute("podio-webhook-cgi.conf", STATEDIR=state)
    servers.write_file(config, sample + "\n# the benchmark's settings\n" +
                       "client_id = bench\nclient_secret = bench\n"
                       "app_id = 1234\napp_token = bench\n"
                       "api_url = http://127.0.0.1:%d\n"
                       "webhook_secret = %s\nallowed_hooks = %d\n"
                       "log_level = info\n" % (servers.free_port(), secret,
                                               HOOK_ID),
                       0o600, user, group)
    www = servers.mkdir(os.path.join(root, "www"))
    hookdir = servers.mkdir(os.path.join(www, "podio"))
    servers.write_file(os.path.join(hookdir, ".htaccess"),
                       servers.substitute("htaccess"))
    servers.write_file(os.path.join(hookdir, "podio-webhook.cgi"),
                       servers.substitute("podio-webhook.cgi",
                                          BINDIR=bindir, CONFIG=config),
                       0o755)
    for name in ("minimal.cgi", "durable.cgi"):
        shutil.copy(minimal, os.path.join(hookdir, name))
        os.chmod(os.path.join(hookdir, name), 0o755)
    # The durable reference's file, beside the spools (the same file
    # system), written as the CGI's user.
    durable_dir = servers.mkdir(os.path.join(root, "durable"), 0o700,
                                user, group)
    durable_file = os.path.join(durable_dir, "bodies.log")
    port = servers.free_port()
    extra = ('<Directory "%s">\n'
             '    AllowOverride AuthConfig FileInfo Limit '
             'Options=ExecCGI,Indexes\n'
             '</Directory>\n'
             '<Directory "%s">\n'
             '    <Files "durable.cgi">\n'
             '        SetEnv MINIMAL_SYNC_FILE "%s"\n'
             '    </Files>\n'
             '</Directory>\n'
             'ScriptSock "%s/apache/run/cgid.sock"\n' % (
                 www, hookdir, durable_file, root))
    bundle = None
    if tarball:
        try:
            bundle = install_bundle(root, www, tarball, user, group, port)
        except (RuntimeError, OSError,
                subprocess.SubprocessError) as exc:
            why = "the bundle did not install: %s" % exc
    if bundle:
        # install.sh left the credentials to fill in: the same settings
        # as the normal build's, with the bundle's own state (var/).
        with open(bundle["config"], "a") as f:
            f.write("\n# the benchmark's settings\n"
                    "client_id = bench\nclient_secret = bench\n"
                    "app_id = 1234\napp_token = bench\n"
                    "api_url = http://127.0.0.1:%d\n"
                    "webhook_secret = %s\nallowed_hooks = %d\n"
                    "log_level = info\n" % (servers.free_port(), secret,
                                             HOOK_ID))
        # The bundle's binary as the CGI program itself: the
        # configuration comes from Apache (SetEnv), as the wrapper
        # would set it.
        extra += ('ScriptAlias "/bundle-direct.cgi" "%s"\n'
                  '<Directory "%s">\n'
                  '    Require all granted\n'
                  '    SetEnv PODIO_WEBHOOK_CONFIG "%s"\n'
                  '</Directory>\n' % (
                      bundle["direct"], os.path.dirname(bundle["direct"]),
                      bundle["config"]))
    apache = servers.Apache(root, "", port, modules=["cgid"], mpm="event",
                            docroot=www, extra=extra)
    try:
        apache.start()
    except servers.ServerError as exc:
        give_up("Apache did not start: %s" % exc)
    base = "http://127.0.0.1:%d/podio/" % port
    say("podio-webhook CGI benchmark: Apache %s (event MPM, mod_cgid) on "
        "127.0.0.1, wrk at %d connections, %d rounds of %d s per run, "
        "%d CPUs" % (
            apache_version(), CONNECTIONS, rounds, seconds,
            os.cpu_count() or 0))
    say("  the web directory: deploy/htaccess, deploy/podio-webhook.cgi "
        "(the wrapper), minimal.cgi (tests/bench/cgi-minimal) and "
        "durable.cgi (the same, appending each body to %s with "
        "O_APPEND and fdatasync() before its 200)" % durable_file)
    say("  %s" % webhook)
    if bundle:
        say("  the bundle: unpacked and installed by its install.sh as %s "
            "(--prefix %s, WEB_DIR %s); bundle/podio-webhook.cgi is the "
            "CGI script it wrote (first line: %s), /bundle-direct.cgi a "
            "copy of its binary beside it run as the CGI program itself "
            "(PODIO_WEBHOOK_CONFIG from SetEnv)" % (
                user, bundle["prefix"], os.path.join(www, "bundle"),
                open(os.path.join(www, "bundle", "podio-webhook.cgi"),
                     errors="replace").readline().strip()))
    else:
        say("  the bundle's runs (d) to (g) are left out: %s" % why)
    say()
    try:
        run_all(base, port, binary, config, secret, events_log, wlog,
                seconds, rounds, check_n, bundle, durable_file)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        say("CGI benchmark: stopped: %s" % exc)
    apache.stop()
    servers.cleanup()


def apache_version():
    try:
        out = subprocess.run([servers.APACHE, "-v"], capture_output=True,
                             text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    except OSError:
        return "?"
    m = re.search(r"Apache/(\S+)", out)
    return m.group(1) if m else "?"


def row(label, fig, note=""):
    say("  %-42s %8.1f req/s  p50 %9s  p99 %9s  (%d requests%s%s)" % (
        label, fig["rps"], fmt_ms(fig["p50"]), fmt_ms(fig["p99"]),
        fig["requests"],
        ", %d non-2xx" % fig["non2xx"] if fig["non2xx"] else "",
        ", %d socket errors" % fig["socket_errors"]
        if fig["socket_errors"] else "") +
        note)


def run_c(url, binary, secret, events_log, seconds, run):
    """One run of deliveries to url ((c), (e) or (g)), sampling the
    processes of binary alive, then the wait until its events all
    reached the `log *` file.  Returns its figures with "most"
    (processes), "drained" (seconds, or None) and "late" (events sent as
    the run ended, which wrk does not count)."""
    most = [0]
    stop = threading.Event()

    def sampler():
        while not stop.wait(0.01):
            most[0] = max(most[0], servers.processes_of(binary))

    before = count_lines(events_log)
    th = threading.Thread(target=sampler)
    th.start()
    try:
        fig = run_wrk(url, seconds, (secret, run, HOOK_ID))
    finally:
        stop.set()
        th.join()
    fig["most"] = most[0]
    # No `spool drain`: the workers alone bring the events to the file.
    # wrk counts no request still in flight when the run ends, although
    # it was sent and stored: the events are all there once the file
    # holds the acknowledged ones and the last worker has ended (a worker
    # looks for new events before it ends).
    acks = fig["requests"] - fig["non2xx"]
    fig["drained"] = wait_until(
        lambda: count_lines(events_log) - before >= acks and
        not servers.processes_of(binary), DRAIN_TIMEOUT_S)
    fig["logged"] = count_lines(events_log) - before
    fig["late"] = max(0, fig["logged"] - acks)
    return fig


def say_drained(fc):
    acks = fc["requests"] - fc["non2xx"]
    say("      at most %d podio-webhook processes alive at once; "
        "%s" % (fc["most"], (
            "all %d acknowledged events (and %d sent as the run ended) "
            "reached the `log *` file %.1f s after the run, with no "
            "spool drain" % (acks, fc["late"], fc["drained"]))
            if fc["drained"] is not None else (
            "%d events in the `log *` file for %d acknowledged, a "
            "worker still running %d s after the run (no spool drain)"
            % (fc["logged"], acks, DRAIN_TIMEOUT_S))))


def run_all(base, port, binary, config, secret, events_log, wlog, seconds,
            rounds, check_n, bundle, durable_file):
    runs = {k: [] for k in "abcdefgh"}
    for r in range(rounds):
        fa = run_wrk(base + "minimal.cgi", seconds, (secret, 1 + r, HOOK_ID))
        row("round %d (a) minimal C CGI, item.delete" % (r + 1), fa)
        fb = run_wrk(base + "podio-webhook.cgi", seconds)
        row("round %d (b) podio-webhook, GET (405)" % (r + 1), fb)
        fc = run_c(base + "podio-webhook.cgi", binary, secret, events_log,
                   seconds, 50 + r)
        row("round %d (c) podio-webhook, item.delete" % (r + 1), fc)
        say_drained(fc)
        runs["a"].append(fa)
        runs["b"].append(fb)
        runs["c"].append(fc)
        if bundle:
            run_bundle(base, secret, seconds, r, bundle, runs)
        fh = run_wrk(base + "durable.cgi", seconds, (secret, 80 + r, HOOK_ID))
        row("round %d (h) durable C CGI, item.delete" % (r + 1), fh,
            "; its file holds %d bodies" % count_lines(durable_file))
        runs["h"].append(fh)
    say()
    med = {k: {key: median_of(v, key) for key in ("rps", "p50", "p99")}
           for k, v in runs.items() if v}
    for k, label in (("a", "(a) minimal C CGI"), ("b", "(b) 405"),
                     ("c", "(c) item.delete")):
        say("  median of %d, %-18s %8.1f req/s  p50 %9s  p99 %9s" % (
            rounds, label, med[k]["rps"], fmt_ms(med[k]["p50"]),
            fmt_ms(med[k]["p99"])))
    rb, ra = med["b"]["rps"], med["a"]["rps"]
    ratio_b = med["c"]["rps"] / rb if rb else None
    ratio_a = med["c"]["rps"] / ra if ra else None
    p99_b = med["c"]["p99"] / med["b"]["p99"] \
        if med["c"]["p99"] and med["b"]["p99"] else None
    say("  (c)/(b) requests/s: %s   (c)/(a): %s   (c)/(b) p99: %s" % (
        "?" if ratio_b is None else "%.2f" % ratio_b,
        "?" if ratio_a is None else "%.2f" % ratio_a,
        "?" if p99_b is None else "%.2f" % p99_b))
    say("  target: item deliveries at least %.1f of the 405 rate: %s" % (
        TARGET_RATIO, "not measured" if ratio_b is None else
        verdict(ratio_b >= TARGET_RATIO, "%.2f" % ratio_b)))
    say("  target: p99 at most %.0fx the 405's: %s" % (
        TARGET_P99, "not measured" if p99_b is None else
        verdict(p99_b <= TARGET_P99, "%.2fx" % p99_b)))
    say("  podio-webhook processes alive at once during (c): at most %d"
        % max(f["most"] for f in runs["c"]))
    say_turns("worker turns of the lock during and after (c)", wlog)
    if bundle:
        say()
        say_bundle_runs(runs, med, rounds, bundle)
    say()
    say_durable(med, rounds, bundle)
    say()
    check(port, binary, config, secret, events_log, wlog, check_n)


def run_bundle(base, secret, seconds, r, bundle, runs):
    """Round r's runs (d) to (g): the bundle as installed, through its
    CGI script, then its binary called directly; the same spool, log and
    `log *` file."""
    url = base.replace("/podio/", "/bundle/") + "podio-webhook.cgi"
    direct = base.replace("/podio/", "/bundle-direct.cgi")
    fd = run_wrk(url, seconds)
    row("round %d (d) bundle, script, GET (405)" % (r + 1), fd)
    fe = run_c(url, bundle["binary"], secret, bundle["events_log"],
               seconds, 60 + r)
    row("round %d (e) bundle, script, item.delete" % (r + 1), fe)
    say_drained(fe)
    ff = run_wrk(direct, seconds)
    row("round %d (f) bundle, direct, GET (405)" % (r + 1), ff)
    fg = run_c(direct, bundle["direct"], secret, bundle["events_log"],
               seconds, 70 + r)
    row("round %d (g) bundle, direct, item.delete" % (r + 1), fg)
    say_drained(fg)
    runs["d"].append(fd)
    runs["e"].append(fe)
    runs["f"].append(ff)
    runs["g"].append(fg)


def say_durable(med, rounds, bundle):
    """The durable reference's median and the deliveries' ratios to
    it (not a target: how close each comes to the limit of a CGI that
    answers only after a durable write)."""
    say("  median of %d, %-22s %8.1f req/s  p50 %9s  p99 %9s" % (
        rounds, "(h) durable C CGI", med["h"]["rps"],
        fmt_ms(med["h"]["p50"]), fmt_ms(med["h"]["p99"])))
    say("  the durable reference to the minimal C CGI, (h)/(a): %s (what "
        "one O_APPEND write and its fdatasync() cost a CGI here)" %
        fmt_ratio(ratio(med, "h", "a")))
    say("  item deliveries to the durable reference (how close to what any "
        "CGI that answers only after a durable write can do on this "
        "machine): the normal build (c)/(h) %s%s" % (
            fmt_ratio(ratio(med, "c", "h")),
            "; the bundle through its script (e)/(h) %s, called directly "
            "(g)/(h) %s" % (fmt_ratio(ratio(med, "e", "h")),
                            fmt_ratio(ratio(med, "g", "h")))
            if bundle else ""))


def ratio(med, k, base):
    """The ratio of the median requests/s of runs k and base, or None."""
    a, b = med[k]["rps"], med[base]["rps"]
    return a / b if a is not None and b else None


def fmt_ratio(v):
    return "?" if v is None else "%.2f" % v


def say_bundle_runs(runs, med, rounds, bundle):
    """The medians of the bundle's runs (d) to (g), their ratios to the
    normal build's and the minimal C CGI's, and the bundle's targets."""
    for k, label in (("d", "(d) bundle 405"),
                     ("e", "(e) bundle item.delete"),
                     ("f", "(f) direct 405"),
                     ("g", "(g) direct item.delete")):
        say("  median of %d, %-22s %8.1f req/s  p50 %9s  p99 %9s" % (
            rounds, label, med[k]["rps"], fmt_ms(med[k]["p50"]),
            fmt_ms(med[k]["p99"])))
    # r["db"]: the median requests/s of (d) over (b)'s, and so on.
    r = {k + b: ratio(med, k, b) for k, b in (
            ("d", "b"), ("e", "c"), ("d", "a"), ("e", "a"), ("f", "b"),
            ("g", "c"), ("f", "a"), ("g", "a"), ("f", "d"), ("g", "e"))}
    say("  bundle, through its CGI script, requests/s: to the normal build "
        "(d)/(b) 405 %s, (e)/(c) item.delete %s; to the minimal C CGI "
        "(d)/(a) %s, (e)/(a) %s" % tuple(fmt_ratio(r[k]) for k in (
            "db", "ec", "da", "ea")))
    say("  bundle's binary called directly (no /bin/sh): to the normal "
        "build (f)/(b) %s, (g)/(c) %s; to the minimal C CGI (f)/(a) %s, "
        "(g)/(a) %s; to the script (f)/(d) %s, (g)/(e) %s" % tuple(
            fmt_ratio(r[k]) for k in ("fb", "gc", "fa", "ga", "fd", "ge")))

    def judge(v, target, how):
        return "not measured" if v is None else \
            verdict(v >= target, "%s %.2f" % (how, v))
    say("  target: the bundle as installed (its CGI script "
        "web/podio-webhook.cgi) at least the normal build's requests/s (the "
        "normal build through deploy/podio-webhook.cgi, the shell wrapper): "
        "405, (d)/(b): "
        "%s; item.delete, (e)/(c): %s" % (
            judge(r["db"], TARGET_BUNDLE_NORMAL, "(d)/(b)"),
            judge(r["ec"], TARGET_BUNDLE_NORMAL, "(e)/(c)")))
    say("  target: the bundle as installed (its CGI script) at least %.1f of "
        "the minimal C CGI's requests/s ((a), which reads posted "
        "item.delete deliveries and answers 200): 405, (d)/(a): %s; "
        "item.delete, (e)/(a): %s" % (
            TARGET_BUNDLE_MINIMAL,
            judge(r["da"], TARGET_BUNDLE_MINIMAL, "(d)/(a)"),
            judge(r["ea"], TARGET_BUNDLE_MINIMAL, "(e)/(a)")))
    say("  (not judged: the binary called directly, without the script: "
        "(f)/(b) %s, (g)/(c) %s, (f)/(a) %s, (g)/(a) %s)" % tuple(
            fmt_ratio(r[k]) for k in ("fb", "gc", "fa", "ga")))
    say("  bundle processes alive at once during (e) and (g): at most %d" %
        max(f["most"] for f in runs["e"] + runs["g"]))
    say_turns("the bundle's worker turns of its lock during and after (e) "
              "and (g)", bundle["wlog"])


def say_turns(what, wlog):
    """Says how many worker turns of the lock the log at wlog shows, by
    how many processes, and whether they never overlapped."""
    turns = servers.worker_turns(wlog)
    bad = servers.turn_overlaps(turns)
    say("  %s: %d, by %d processes, never two at once: %s" % (
        what, sum(1 for _p, w in turns if w == "started"),
        len({p for p, _w in turns}), "OK" if turns and not bad
        else "FAILED"))
    for line in bad[:10]:
        say("    " + line)


def check(port, binary, config, secret, events_log, wlog, n):
    """The fixed-count check: n deliveries, all in the file, lock turns
    one after the other."""
    skip = len(servers.worker_turns(wlog))
    want = set(range(CHECK_FIRST_ITEM, CHECK_FIRST_ITEM + n))
    start = time.monotonic()
    statuses = post_deliveries(port, "/podio/podio-webhook.cgi", secret,
                               CHECK_FIRST_ITEM, n)
    posted = time.monotonic() - start
    say("  %d-delivery check: %d posted from %d threads in %.1f s (%.0f/s); "
        "answers: %s" % (n, n, CONNECTIONS, posted, n / posted,
                         ", ".join("%s: %d" % (k, v) for k, v in
                                   sorted(statuses.items(), key=str))))
    took = wait_until(
        lambda: want <= set(logged_items(events_log)) and
        not servers.turn_overlaps(servers.worker_turns(wlog)[skip:]),
        DRAIN_TIMEOUT_S)
    seen = {k: v for k, v in logged_items(events_log).items() if k in want}
    once = sum(1 for v in seen.values() if v == 1)
    turns = servers.worker_turns(wlog)[skip:]
    bad = servers.turn_overlaps(turns)
    starts = sum(1 for _p, w in turns if w == "started")
    say("  %d-delivery check: %d of %d reached the `log *` file (%d "
        "exactly once), %s after the last answer, with no spool drain: %s"
        % (n, len(seen), n, once,
           "%.1f s" % took if took is not None else
           "not within %d s" % DRAIN_TIMEOUT_S,
           "OK" if len(seen) == n and once == n else "FAILED"))
    say("  %d-delivery check: %d worker turns of the lock by %d processes, "
        "never two at once: %s" % (
            n, starts, len({p for p, _w in turns}),
            "OK" if turns and not bad else "FAILED"))
    for line in bad[:10]:
        say("    " + line)
    done = sum(int(m.group(1)) for m in
               re.finditer(r"cgi worker pid=\d+ ended: (\d+) done",
                           read_text(wlog)))
    say("  the workers' own count over the whole benchmark: %d events "
        "done; the spool now: %s" % (done, spool_status(binary, config)))


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def spool_status(binary, config):
    """`spool status --json` as the web server's user, its counts in a
    line (or why not)."""
    r = subprocess.run(servers.as_user(servers.WEB_USER, servers.WEB_GROUP)
                       + [binary, "-c", config, "spool", "status", "--json"],
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "LANG": "C"})
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        return "spool status failed (exit %d): %s" % (
            r.returncode, (r.stderr or r.stdout).strip()[:200])
    return ", ".join("%s %s" % (k, v) for k, v in doc.items()
                     if isinstance(v, int)) or r.stdout.strip()


if __name__ == "__main__":
    main()
