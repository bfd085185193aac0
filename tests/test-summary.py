#!/usr/bin/env python3
"""tests/summary, the line CI ends with: counts, skips with their reasons,
and each failure with the diagnostics its test printed after it (the TAP
driver echoes the result line in between) and the exit status of a test
script that failed as a whole."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

SUMMARY = os.path.join(testlib.SRCDIR, "tests", "summary")


def write(d, name, log, results):
    with open(os.path.join(d, name + ".log"), "w") as f:
        f.write(log)
    with open(os.path.join(d, name + ".trs"), "w") as f:
        f.write("".join(":test-result: %s\n" % r for r in results))


def main():
    t = testlib.Tap()
    top = os.path.join(testlib.tmpdir(), "b", "tests")
    os.makedirs(top)
    write(top, "test-a",
          "ok 1 - first\nPASS: tests/test-a.py 1 - first\n"
          "not ok 2 - second\nFAIL: tests/test-a.py 2 - second\n"
          "# got [503, 200]\n# the log's last line\n"
          "ok 3 - third # SKIP no database\n"
          "SKIP: tests/test-a.py 3 - third # SKIP no database\n"
          "1..3\nERROR: tests/test-a.py - exited with status 1\n",
          ["PASS", "FAIL", "SKIP", "ERROR"])
    write(top, "test-b", "ok 1 - only\nPASS: tests/test-b.py 1 - only\n1..1\n",
          ["PASS"])
    r = subprocess.run([sys.executable, SUMMARY, top], capture_output=True,
                       text=True)
    lines = r.stdout.splitlines()
    t.is_(lines[-1] if lines else "", "2 passed, 2 failed, 1 skipped",
          "the last line counts what passed, failed and was skipped")
    t.ok(r.returncode == 1, "exit 1 when a test failed", r.returncode)
    t.ok("FAILED: b/tests test-a: FAIL second" in lines,
         "a failure names its build, test and check", r.stdout)
    i = lines.index("FAILED: b/tests test-a: FAIL second") \
        if "FAILED: b/tests test-a: FAIL second" in lines else -1
    t.is_(lines[i + 1:i + 3] if i >= 0 else [],
          ["    # got [503, 200]", "    # the log's last line"],
          "a failure is followed by the diagnostics its test printed after "
          "the driver's echo of the result")
    t.ok("FAILED: b/tests test-a: ERROR exited with status 1" in lines,
         "a script that failed as a whole says its exit status", r.stdout)
    t.ok(any(ln.startswith("skipped: b/tests test-a:") and
             "no database" in ln for ln in lines),
         "a skip says why", r.stdout)
    write(top, "test-a", "ok 1 - first\nPASS: tests/test-a.py 1 - first\n"
          "1..1\n", ["PASS"])
    r = subprocess.run([sys.executable, SUMMARY, top], capture_output=True,
                       text=True)
    t.ok(r.returncode == 0 and r.stdout.splitlines()[-1:] ==
         ["2 passed, 0 failed"], "all passed: exit 0, no skipped count",
         r.stdout)
    t.done()


if __name__ == "__main__":
    testlib.main(main)
