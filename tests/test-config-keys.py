#!/usr/bin/env python3
"""The configuration keys are the same everywhere: the program's table
(`podio-webhook config --keys`), the sample configuration
deploy/podio-webhook.conf and the CONFIGURATION section of the manual,
each listing each key once."""

import collections
import os
import re

import testlib

t = testlib.Tap()


def duplicates(names):
    return sorted(k for k, n in collections.Counter(names).items() if n > 1)


def compare(a_name, a, b_name, b):
    """One check that two key sets are equal; the differences as diag."""
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    diag = []
    if only_a:
        diag.append("only in %s: %s" % (a_name, ", ".join(only_a)))
    if only_b:
        diag.append("only in %s: %s" % (b_name, ", ".join(only_b)))
    t.ok(not only_a and not only_b,
         "the keys of %s and %s are the same" % (a_name, b_name),
         "\n".join(diag))


# The program's keys.  A private, empty configuration file keeps an
# installed one out of the way.
d = testlib.tmpdir()
empty = testlib.write_config(os.path.join(d, "empty.conf"))
env = {k: v for k, v in os.environ.items() if not k.startswith("PODIO_")}
env["PODIO_WEBHOOK_CONFIG"] = empty
r = testlib.run([testlib.PODIO_WEBHOOK, "config", "--keys"], env=env)
cli_keys = r.stdout.splitlines()
t.ok(r.returncode == 0 and len(cli_keys) > 0 and r.stderr == "",
     "podio-webhook config --keys lists keys",
     "exit %d\nstdout: %r\nstderr: %r" % (r.returncode, r.stdout, r.stderr))
bad = [k for k in cli_keys if not re.match(r"^[a-z_]+$", k)]
t.ok(not bad, "every key name is lower case letters and '_'", bad)
t.ok(not duplicates(cli_keys), "config --keys lists each key once",
     duplicates(cli_keys))

# The sample configuration: "key = value" or "#key = value".
conf = os.path.join(testlib.SRCDIR, "deploy", "podio-webhook.conf")
with open(conf) as f:
    conf_keys = [m.group(1) for m in
                 (re.match(r"^#?([a-z_]+) = ", line) for line in f) if m]
t.ok(len(conf_keys) > 0, "deploy/podio-webhook.conf names keys", conf)
t.ok(not duplicates(conf_keys),
     "deploy/podio-webhook.conf lists each key once",
     duplicates(conf_keys))

# The manual: in .SH CONFIGURATION, each ".B key" right after ".TP".
man = os.path.join(testlib.BUILDDIR, "handler", "podio-webhook.1")
if not os.path.exists(man):
    man = os.path.join(testlib.SRCDIR, "handler", "podio-webhook.1.in")
with open(man) as f:
    man_lines = f.read().splitlines()
man_keys = []
inside = False
for i, line in enumerate(man_lines):
    if line.startswith(".SH "):
        inside = line[4:].strip().strip('"') == "CONFIGURATION"
        continue
    if inside and line.strip() == ".TP" and i + 1 < len(man_lines):
        m = re.match(r"^\.B\s+(\S+)\s*$", man_lines[i + 1])
        if m:
            man_keys.append(m.group(1).replace("\\-", "-").strip('"'))
t.ok(len(man_keys) > 0, "the manual's CONFIGURATION section lists keys",
     man)
t.ok(not duplicates(man_keys), "the manual lists each key once",
     duplicates(man_keys))

compare("config --keys", cli_keys, "deploy/podio-webhook.conf", conf_keys)
compare("config --keys", cli_keys, "the manual", man_keys)
compare("deploy/podio-webhook.conf", conf_keys, "the manual", man_keys)

t.done()
