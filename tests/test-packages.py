#!/usr/bin/env python3
"""The Debian packages are named in one place, deploy/packages.txt, and
everything that installs or names them agrees with it:

- tests/packages.sh reads the file as this test does, and tests/run and
  tests/demo install through it (no package list of their own);
- every library that configure.ac requires comes from a package of the
  "build" group (found with pkg-config and dpkg on this machine), and
  every tool configure.ac needs is in that group;
- every `apt-get install` in the docs that installs build dependencies
  names exactly the "build" group.
"""

import os
import re
import shutil
import subprocess

import testlib

t = testlib.Tap()
SRC = testlib.SRCDIR
LIST = os.path.join(SRC, "deploy", "packages.txt")
DOCS = ("README.md", "HACKING.md", os.path.join("deploy", "README.md"))


def parse_list(path):
    """{group: [package, ...]} of deploy/packages.txt."""
    groups = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^([a-z]+):\s*(.*)$", line)
            if not m:
                t.ok(False, "packages.txt line %d is GROUP: PACKAGE..." % n,
                     line)
                continue
            groups.setdefault(m.group(1), []).extend(m.group(2).split())
    return groups


groups = parse_list(LIST)
for g in ("build", "demo", "test"):
    pk = groups.get(g, [])
    t.ok(len(pk) > 0 and len(pk) == len(set(pk)),
         "packages.txt has a group %s, each package once" % g, pk)
build = set(groups.get("build", []))

# tests/packages.sh reads the same list.
for want in (["build"], ["build", "test"], ["build", "demo"]):
    r = subprocess.run(
        ["sh", "-c", 'top="$1"; shift; . "$top/tests/packages.sh"; '
         'packages_of "$@"', "sh", SRC] + want,
        capture_output=True, text=True)
    expected = []
    for g in want:
        expected += [p for p in groups.get(g, []) if p not in expected]
    t.is_(r.stdout.split(), expected,
          "tests/packages.sh lists the packages of %s" % " and ".join(want))

# tests/run and tests/demo install through it, with no list of their own.
for script, want in (("run", "build test"), ("demo", "build demo")):
    with open(os.path.join(SRC, "tests", script)) as f:
        text = f.read()
    t.ok(re.search(r"^[^#]*\bpackages_install %s\b" % want, text, re.M),
         "tests/%s installs the groups %s" % (script, want))
    t.ok(not re.search(r"^[^#]*apt-get\b", text, re.M),
         "tests/%s runs no apt-get of its own" % script)

# What configure.ac requires.
with open(os.path.join(SRC, "configure.ac")) as f:
    configure = f.read()
# Tools: the macro that needs one, and the package that has it.
TOOLS = {"AC_PROG_CC": "build-essential", "AC_INIT": "autoconf",
         "AM_INIT_AUTOMAKE": "automake", "LT_INIT": "libtool",
         "PKG_PROG_PKG_CONFIG": "pkg-config", "AM_PATH_PYTHON": "python3"}
for macro, pkg in sorted(TOOLS.items()):
    if re.search(r"^\s*%s\b" % macro, configure, re.M):
        t.ok(pkg in build, "configure.ac's %s needs %s, in the build group"
             % (macro, pkg))

# Libraries: each PKG_CHECK_MODULES module (its .pc file) and each
# AC_CHECK_LIB library (its .so), to the package that installed it.
# Libraries configure.ac looks for without requiring them, and the group
# that installs them: libfcgi only builds make bench's reference server.
OPTIONAL = {"fcgi": "test"}
for name in OPTIONAL:
    t.ok(not re.search(r"%s[^\n]*\n[^\n]*AC_MSG_ERROR" % name, configure)
         and "AC_MSG_ERROR([lib%s" % name not in configure,
         "configure.ac does not require the optional library %s" % name)
modules = re.findall(r"PKG_CHECK_MODULES\(\[\w+\],\s*\[([\w.+-]+)", configure)
libs = re.findall(r"AC_CHECK_LIB\(\[([\w.+-]+)\]", configure)
t.ok(len(modules) >= 4, "configure.ac requires libraries through pkg-config",
     modules)
if not shutil.which("dpkg") or not shutil.which("pkg-config"):
    t.skip("the libraries configure requires are in the build group",
           "dpkg or pkg-config is not installed (not a Debian system)")
else:
    def owner(path):
        # The path as given (a -dev package owns the libX.so link), then
        # with /usr/lib's merged-/usr twin and links resolved.
        for p in (os.path.normpath(path), os.path.realpath(path)):
            r = subprocess.run(["dpkg", "-S", p], capture_output=True,
                               text=True)
            if r.returncode == 0:
                break
        return r.stdout.split(":")[0] if r.returncode == 0 else None

    for mod in modules:
        r = subprocess.run(["pkg-config", "--path", mod],
                           capture_output=True, text=True)
        pc = r.stdout.strip()
        pkg = owner(pc) if r.returncode == 0 and pc else None
        grp = OPTIONAL.get(mod, "build")
        t.ok(pkg in groups.get(grp, []), "library %s (%s) comes from %s, in "
             "the %s group" % (mod, pc or "no .pc file", pkg, grp),
             sorted(groups.get(grp, [])))
    for lib in libs:
        cc = os.environ.get("CC", "cc").split()[0]
        r = subprocess.run([cc, "-print-file-name=lib%s.so" % lib],
                           capture_output=True, text=True)
        so = r.stdout.strip()
        pkg = owner(so) if os.path.isabs(so) else None
        grp = OPTIONAL.get(lib, "build")
        t.ok(pkg in groups.get(grp, []), "library -l%s (%s) comes from %s, "
             "in the %s group" % (lib, so or "not found", pkg, grp),
             sorted(groups.get(grp, [])))

# The docs.


def apt_installs(text):
    """The package lists of the `apt-get install` commands in text."""
    text = re.sub(r"\\\n\s*", " ", text)
    found = []
    for m in re.finditer(r"apt-get\s+(?:-\S+\s+)*install\b([^\n;&|`]*)",
                         text):
        found.append([w for w in m.group(1).split()
                      if not w.startswith("-") and re.match(r"^[a-z0-9.+-]+$",
                                                            w)])
    return found


dev = {p for p in build if p.endswith("-dev")}
seen = 0
for doc in DOCS:
    path = os.path.join(SRC, doc)
    if not os.path.exists(path):
        continue
    with open(path) as f:
        for pk in apt_installs(f.read()):
            if not dev & set(pk):
                continue
            seen += 1
            t.ok(set(pk) == build,
                 "%s installs exactly the build group: %s" % (doc,
                                                              " ".join(pk)),
                 "missing: %s\nnot in the group: %s" % (
                     " ".join(sorted(build - set(pk))),
                     " ".join(sorted(set(pk) - build))))
t.ok(seen > 0, "the docs install the build dependencies with apt-get")

t.done()
