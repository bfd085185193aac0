"""The paths compiled into podio-webhook follow configure's directories.

configure's --sysconfdir (or --with-config) decides the default
configuration file and --localstatedir the state directory; the build
passes the expected values in PODIO_EXPECT_CONFIG and PODIO_EXPECT_STATEDIR.
When the expected configuration path lies in a temporary directory (as
`make distcheck` configures it), the test also writes a file there and
checks that the program reads it with neither -c nor PODIO_WEBHOOK_CONFIG.
"""
import os

import testlib


def main():
    t = testlib.Tap()
    want_conf = os.environ.get("PODIO_EXPECT_CONFIG", "")
    want_state = os.environ.get("PODIO_EXPECT_STATEDIR", "")
    t.ok(want_conf.startswith("/"), "the build names an absolute config path",
         want_conf)
    t.ok(want_state.startswith("/"), "the build names an absolute state dir",
         want_state)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIO_")}
    r = testlib.run([testlib.PODIO_WEBHOOK, "--help"], env=env)
    t.ok(r.returncode == 0, "--help exits 0", r.stderr)
    t.ok(want_conf in r.stdout, "--help names the compiled-in config path",
         r.stdout)

    tmp = testlib.tmpdir()
    r = testlib.run([testlib.PODIO_WEBHOOK, "config"], env=env, cwd=tmp)
    t.ok(r.returncode == 0, "config exits 0 without a config file",
         r.stderr)
    lines = dict(l.split(" = ", 1) if " = " in l else (l.rstrip(" ="), "")
                 for l in r.stdout.splitlines())
    t.ok(lines.get("token_cache") == want_state + "/token-cache.json",
         "token_cache defaults into the state directory",
         "got %r" % lines.get("token_cache"))

    d = os.path.dirname(want_conf)
    if not (want_conf.startswith("/tmp/") and os.path.isdir(d)
            and not os.path.exists(want_conf)):
        t.skip("the compiled-in config file is read",
               "the config path %s is not a fresh file in /tmp "
               "(only a distcheck-style build sets one)" % want_conf)
        t.done()
    try:
        with open(want_conf, "w") as f:
            f.write("api_url = http://127.0.0.1:9\ntimeout = 7s\n")
        r = testlib.run([testlib.PODIO_WEBHOOK, "config"], env=env)
        t.ok(r.returncode == 0, "config reads the compiled-in file",
             r.stderr)
        t.ok("api_url = http://127.0.0.1:9" in r.stdout
             and "timeout = 7s" in r.stdout,
             "values come from the compiled-in file", r.stdout)
    finally:
        os.unlink(want_conf)
    t.done()


testlib.main(main)
