#!/usr/bin/env python3
"""The configuration keys are documented from one source, the program's
key table (`podio-webhook config --keys`): the manual
podio-webhook.conf(5) made by the build, CONFIGURATION.md (which must be
exactly what `make configuration-md` makes now) and the sample
configuration deploy/podio-webhook.conf each list every key once and no
other; podio-webhook(1) points to podio-webhook.conf(5) instead of
listing them; and every key README.md or deploy/README.md shows (a
`key = value` line in a code block, a backticked key in a table row) is
one the program knows."""

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


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def man_section(lines, name):
    """The lines of section .SH name of a manual."""
    out, inside = [], False
    for line in lines:
        if line.startswith(".SH "):
            inside = line[4:].strip().strip('"') == name
            continue
        if inside:
            out.append(line)
    return out


def man_keys(lines):
    """Each ".B key" right after ".TP"."""
    keys = []
    for i, line in enumerate(lines):
        if line.strip() == ".TP" and i + 1 < len(lines):
            m = re.match(r"^\.B\s+(\S+)\s*$", lines[i + 1])
            if m:
                keys.append(m.group(1).replace("\\-", "-").strip('"'))
    return keys


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
conf_keys = [m.group(1) for m in
             (re.match(r"^#?([a-z_]+) = ", line)
              for line in read(conf).splitlines()) if m]
t.ok(len(conf_keys) > 0, "deploy/podio-webhook.conf names keys", conf)
t.ok(not duplicates(conf_keys),
     "deploy/podio-webhook.conf lists each key once",
     duplicates(conf_keys))
compare("config --keys", cli_keys, "deploy/podio-webhook.conf", conf_keys)

# podio-webhook.conf(5), as the build made it from the key table.
man5 = os.path.join(testlib.BUILDDIR, "handler", "podio-webhook.conf.5")
t.ok(os.path.exists(man5), "the build made podio-webhook.conf(5)", man5)
man5_lines = read(man5).splitlines() if os.path.exists(man5) else []
keys5 = man_keys(man_section(man5_lines, "KEYS"))
t.ok(not duplicates(keys5), "podio-webhook.conf(5) lists each key once",
     duplicates(keys5))
compare("config --keys", cli_keys, "podio-webhook.conf(5)", keys5)
t.ok(not [ln for ln in man5_lines if "@" in ln and
          re.search(r"@[A-Za-z_]+@", ln)],
     "podio-webhook.conf(5) has no placeholder left",
     [ln for ln in man5_lines if re.search(r"@[A-Za-z_]+@", ln)])
# Each key's paragraph: type, default, environment variable, then the
# description (a sentence at least).
thin = []
for i, line in enumerate(man5_lines):
    m = re.match(r"^\.B\s+(\S+)\s*$", line)
    if not (m and i > 0 and man5_lines[i - 1] == ".TP" and
            m.group(1) in cli_keys):
        continue
    key = m.group(1)
    meta = man5_lines[i + 1] if i + 1 < len(man5_lines) else ""
    text = man5_lines[i + 3] if i + 3 < len(man5_lines) else ""
    env_name = "PODIO_" + key.upper()
    if (not re.match(r"^\\fI[a-z ]+\\fR, (unset by default|default )",
                     meta) or env_name not in meta or
            len(re.sub(r"\\f[BIR]|\\&|\\%", "", text)) < 30 or
            not text.rstrip().endswith(".")):
        thin.append(key)
t.ok(cli_keys and not thin,
     "podio-webhook.conf(5): each key with its type, default, environment "
     "variable and a description of a sentence or more", thin)

# podio-webhook(1) points to podio-webhook.conf(5) instead of listing the
# keys.
man1 = os.path.join(testlib.BUILDDIR, "handler", "podio-webhook.1")
if not os.path.exists(man1):
    man1 = os.path.join(testlib.SRCDIR, "handler", "podio-webhook.1.in")
man1_lines = read(man1).splitlines()
section = man_section(man1_lines, "CONFIGURATION")
listed = [k for k in man_keys(section) if k in cli_keys]
t.ok(section and ".BR podio\\-webhook.conf (5)" in section and
     not listed,
     "podio-webhook(1)'s CONFIGURATION section points to "
     "podio-webhook.conf(5) and lists no key", listed)
t.ok(".BR podio\\-webhook.conf (5)," in man_section(man1_lines,
                                                   "SEE ALSO"),
     "podio-webhook(1) names podio-webhook.conf(5) under SEE ALSO",
     man_section(man1_lines, "SEE ALSO"))

# CONFIGURATION.md: what `make configuration-md` makes now.
md_path = os.path.join(testlib.SRCDIR, "CONFIGURATION.md")
template = read(os.path.join(testlib.SRCDIR, "handler",
                             "configuration.md.in"))
r = testlib.run([testlib.PODIO_WEBHOOK, "-c", "/dev/null", "config",
                 "--reference=md"], env=env)
t.ok(r.returncode == 0 and r.stderr == "" and r.stdout.startswith("### "),
     "config --reference=md prints the keys in Markdown",
     "exit %d\nstderr: %r" % (r.returncode, r.stderr))
expected = re.sub(r"^@KEYS@\n", lambda m: r.stdout, template, flags=re.M)
expected = expected.replace("@podio_statedir@", "/var/lib/podio-webhook")
md = read(md_path) if os.path.exists(md_path) else ""
diff = []
if md != expected:
    a, b = md.splitlines(), expected.splitlines()
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else "(end)"
        y = b[i] if i < len(b) else "(end)"
        if x != y:
            diff = ["first difference at line %d:" % (i + 1),
                    "CONFIGURATION.md: %r" % x, "expected: %r" % y]
            break
t.ok(md == expected, "CONFIGURATION.md is what `make configuration-md` "
     "makes from the key table now", "\n".join(diff))
md_keys = re.findall(r"^### `([a-z_]+)`$", md, re.M)
t.ok(not duplicates(md_keys), "CONFIGURATION.md lists each key once",
     duplicates(md_keys))
compare("config --keys", cli_keys, "CONFIGURATION.md", md_keys)

r = testlib.run([testlib.PODIO_WEBHOOK, "-c", "/dev/null", "config",
                 "--reference=roff"], env=env)
t.ok(r.returncode == 2 and r.stdout == "" and "roff" in r.stderr,
     "config --reference with an unknown format: exit 2",
     "exit %d\nstdout: %r\nstderr: %r" % (r.returncode, r.stdout, r.stderr))


def readme_keys(text):
    """(key, line number) of each key-like name a Markdown text shows:
    "name = " in a fenced code block, `name` in a table row.  A block
    fenced as ```postgresql.conf is the database's configuration, not
    the program's."""
    found = []
    fence = False
    other = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = not fence
            other = fence and line.strip()[3:].startswith("postgresql")
            continue
        if fence and not other:
            m = re.match(r"^\s*#?\s*([a-z][a-z0-9]*(?:_[a-z0-9]+)*) = ",
                         line)
            if m:
                found.append((m.group(1), n))
        elif line.lstrip().startswith("|"):
            for name in re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`",
                                   line):
                found.append((name, n))
    return found


for rel in ("README.md", os.path.join("deploy", "README.md")):
    path = os.path.join(testlib.SRCDIR, rel)
    unknown = ["%s:%d: %s" % (rel, n, k) for k, n in
               readme_keys(read(path)) if k not in cli_keys]
    t.ok(not unknown, "%s shows no key the program does not know" % rel,
         unknown)

# The README check finds what it must: a key in a code block (commented
# out or not) and in a table row, not in running text nor in a block of
# the database's configuration.
sample = ("`bogus_key` in text\n```\nfake_key = 1\n#other_key = 2\n"
          "timeout = 5s\n```\n| `row_key` | x |\n"
          "```postgresql.conf\nwork_mem = 4MB\n```\n```\nlast_key = 1\n"
          "```\n")
t.ok([k for k, _ in readme_keys(sample)] ==
     ["fake_key", "other_key", "timeout", "row_key", "last_key"],
     "the README check sees keys in code blocks and table rows only",
     readme_keys(sample))

t.done()
