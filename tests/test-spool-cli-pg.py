#!/usr/bin/env python3
"""The spool commands and the handler on a PostgreSQL spool.

Starts a private PostgreSQL 15 server (tests/pgserver.py) and runs
tests/test-spool-cli.py with PODIO_TEST_SPOOL_URL set to a database of
its own: the same deliveries (FastCGI and CGI), retries, dead letters,
`spool status`, `list`, `show`, `replay`, `drain` and `purge` as on
SQLite, and a 503 while the database cannot be reached.  Each of its
results is one result here, renumbered; then it ran to its end, the
password may come from a password file (PGPASSFILE) instead of the URI,
and no connection is left open.

Skipped whole when this build has no PostgreSQL backend or PostgreSQL 15
cannot be started here.
"""

import os
import sys

import pgserver
import testlib

t = testlib.Tap()
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "test-spool-cli.py")
SLOW = 10 if testlib.wrapper() else 1
TIMEOUT = 900 * SLOW


def main():
    ok, why = testlib.built_with_postgresql()
    if not ok:
        t.skip_all(why)
    ok, why = pgserver.available()
    if not ok:
        t.skip_all(why)
    with pgserver.Server() as pg:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PODIO_TEST_SPOOL_URL"] = pg.new_database("cli")
        env["PODIO_TEST_PSQL"] = os.path.join(pgserver.bindir(), "psql")
        ok, why = testlib.run_relayed(t, [sys.executable, SCRIPT], env,
                                      "tests/test-spool-cli.py", TIMEOUT)
        t.ok(ok, "tests/test-spool-cli.py ran to its end on PostgreSQL",
             why + "\nserver log:\n" + pg.log_tail())

        # The password from a password file instead of the URI.
        conf = os.path.join(testlib.tmpdir(), "pgpass.conf")
        testlib.write_config(conf, webhook_secret="pgpass-test-secret")
        base = {k: v for k, v in env.items() if not k.startswith("PODIO_")}
        base["PODIO_SPOOL_URL"] = pg.url_for("cli", password=False)
        base["PODIO_SPOOL_DIR"] = os.path.join(testlib.tmpdir(), "local")
        r = testlib.run([testlib.PODIO_WEBHOOK, "-c", conf, "spool",
                         "status"], env=dict(base, PGPASSFILE=os.devnull))
        t.ok(r.returncode != 0 and "password" in r.stderr,
             "without a password the database refuses the spool, saying "
             "so", r.stdout + r.stderr)
        r = testlib.run([testlib.PODIO_WEBHOOK, "-c", conf, "spool",
                         "status"], env=dict(base, **pg.pgpass_env()))
        t.ok(r.returncode == 0 and "pending:" in r.stdout,
             "with the password in the file PGPASSFILE names, it opens",
             r.stdout + r.stderr)

        left, what = pg.connections_left(30 * SLOW)
        t.ok(left == 0, "no connection is left open on the server, the "
             "detached CGI workers' included (%d)" % left, what)
    t.done()


testlib.main(main)
