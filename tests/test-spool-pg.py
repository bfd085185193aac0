#!/usr/bin/env python3
"""The spool's unit tests on its PostgreSQL backend.

Starts a private PostgreSQL 15 server (tests/pgserver.py: 127.0.0.1, a
free port, fsync on), checks that the role the spool uses must give its
password, and runs tests/test-spool with PODIO_TEST_SPOOL_PG set to the
URI of that role's database: every spool the unit tests open is then that
database (its tables dropped before each test).  Each result of
test-spool is one result here, renumbered into this test's plan; its
skips keep their reasons (what only the SQLite backend has), its
diagnostics are relayed.  Then: test-spool ran to its end, and no
connection of it is left open on the server.

Skipped whole when this build has no PostgreSQL backend (configured
without libpq) or PostgreSQL 15 cannot be started here.
"""

import os
import subprocess

import pgserver
import testlib

t = testlib.Tap()
PROG = os.path.join(testlib.BUILDDIR, "tests", "test-spool")
SLOW = 10 if testlib.wrapper() else 1
# The whole run of test-spool: about 15 s on two cores.
TIMEOUT = 600 * SLOW


def psql_as(url, sql):
    """Runs sql with psql as the URL's role over TCP (no password file,
    no PG* variable of ours); returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = os.devnull
    return subprocess.run(
        [os.path.join(pgserver.bindir(), "psql"), "-X", "-A", "-t",
         "-w", "-c", sql, url],
        capture_output=True, text=True, env=env, timeout=60)


def main():
    ok, why = testlib.built_with_postgresql()
    if not ok:
        t.skip_all(why)
    if not os.access(PROG, os.X_OK):
        t.skip_all("%s is not built (make check builds it)" % PROG)
    ok, why = pgserver.available()
    if not ok:
        t.skip_all(why)

    with pgserver.Server() as pg:
        r = psql_as(pg.url, "SELECT current_user")
        t.ok(r.returncode == 0 and r.stdout.strip() == pgserver.ROLE,
             "the role %s logs in over TCP with its password"
             % pgserver.ROLE, r.stderr)
        wrong = pg.url.replace(pg.password, "x" + pg.password[1:])
        r = psql_as(wrong, "SELECT 1")
        t.ok(r.returncode != 0 and "password authentication failed"
             in r.stderr, "a wrong password is refused (scram-sha-256): "
             "the URI's password is the one used", r.stderr)

        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PODIO_TEST_SPOOL_PG"] = pg.url
        ok, why = testlib.run_relayed(t, testlib.wrapper() + [PROG], env,
                                      "tests/test-spool", TIMEOUT)
        t.ok(ok, "tests/test-spool ran to its end on PostgreSQL",
             why + "\nserver log:\n" + pg.log_tail())
        left, what = pg.connections_left(10 * SLOW)
        t.ok(left == 0, "no connection of the tests is left open on the "
             "server (%d)" % left, what)
    t.done()


testlib.main(main)
