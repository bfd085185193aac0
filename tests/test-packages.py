#!/usr/bin/env python3
"""The Debian packages are named in one place, deploy/packages.txt, and
everything that installs or names them agrees with it:

- tests/packages.sh reads the file as this test does, and tests/run and
  tests/demo install through it (no package list of their own);
- every library that configure.ac requires comes from a package of the
  "build" group (found with pkg-config and dpkg on this machine), and
  every tool configure.ac needs is in that group;
- every `apt-get install` in the docs that installs build dependencies
  names exactly the "build" group;
- tests/packages.sh installs PostgreSQL without a cluster of the
  system's and without starting anything: postgresql-common first, then
  create_main_cluster = false, then the rest with service starts refused
  (run against a fake apt-get); prometheus (for promtool) too installs
  with service starts refused.
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
# that installs them: libfcgi only builds make bench's reference server;
# libpq (pkg-config's libpq, else -lpq) the spool's PostgreSQL backend,
# which the tests run against a server of their own.
OPTIONAL = {"fcgi": "test", "libpq": "test", "pq": "test"}


def required_by_configure(name):
    """Whether an AC_MSG_ERROR of configure.ac stops it for want of the
    library name (named on its line or the line before), other than when
    asked for with --with-X (a test of "x$with_X" = xyes there)."""
    lines = configure.splitlines()
    for i, line in enumerate(lines):
        if "AC_MSG_ERROR" not in line:
            continue
        near = "\n".join(lines[max(0, i - 1):i + 1])
        if re.search(r"(?<![\w-])(lib)?%s(?!\w)" % re.escape(name), near) \
                and not re.search(r'"x\$with_\w+"\s*=\s*xyes', near):
            return True
    return False


for name in OPTIONAL:
    t.ok(not required_by_configure(name),
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

# PostgreSQL through tests/packages.sh, as root on Debian, with
# apt-get, dpkg-query and id replaced by fakes and the two files it
# changes under a fake root ($packages_root).  The fake apt-get logs
# each install with what createcluster.conf and policy-rc.d say at that
# moment; installing postgresql-common writes Debian's commented
# default.
FAKE_APT = r"""#!/bin/sh
root=$FAKE_ROOT
case "$1" in update) exit 0;; esac
shift
pkgs=
for a; do case "$a" in -*) ;; *) pkgs="$pkgs $a";; esac; done
case " $pkgs " in *" postgresql-common "*)
    mkdir -p "$root/etc/postgresql-common"
    printf '# Default values\n#create_main_cluster = true\n\nssl = on\n' \
        > "$root/etc/postgresql-common/createcluster.conf";;
esac
conf=$(grep -v '^#' "$root/etc/postgresql-common/createcluster.conf" \
    2>/dev/null | grep create_main_cluster)
if [ -x "$root/usr/sbin/policy-rc.d" ]; then
    "$root/usr/sbin/policy-rc.d" nginx start; policy=$?
else
    policy=none
fi
echo "install$pkgs|$conf|$policy" >> "$FAKE_LOG"
"""


def fake_install(groups_text, policy=None):
    """Runs packages_install test with the packages of groups_text as
    deploy/packages.txt, none installed.  Returns (status, log lines,
    createcluster.conf text, policy-rc.d text or None)."""
    d = testlib.tmpdir()
    root = os.path.join(d, "root")
    bindir = os.path.join(d, "bin")
    for sub in (bindir, os.path.join(root, "usr", "sbin"),
                os.path.join(d, "top", "deploy")):
        os.makedirs(sub)
    fakes = {"apt-get": FAKE_APT, "dpkg-query": "#!/bin/sh\nexit 1\n",
             "id": "#!/bin/sh\necho 0\n"}
    for name, text in fakes.items():
        with open(os.path.join(bindir, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(bindir, name), 0o755)
    with open(os.path.join(d, "top", "deploy", "packages.txt"), "w") as f:
        f.write(groups_text)
    pol = os.path.join(root, "usr", "sbin", "policy-rc.d")
    if policy is not None:
        with open(pol, "w") as f:
            f.write(policy)
        os.chmod(pol, 0o755)
    log = os.path.join(d, "log")
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"],
               FAKE_ROOT=root, FAKE_LOG=log)
    env.pop("PODIO_SKIP_DEPS", None)
    r = subprocess.run(
        ["sh", "-c", 'top="$1"; packages_root="$2"; '
         '. "$3/tests/packages.sh"; packages_install test',
         "sh", os.path.join(d, "top"), root, SRC],
        capture_output=True, text=True, env=env)
    conf = testlib.read_text(os.path.join(
        root, "etc", "postgresql-common", "createcluster.conf"))
    return (r.returncode, testlib.read_text(log).splitlines(), conf,
            testlib.read_text(pol) if os.path.exists(pol) else None,
            r.stdout + r.stderr)


rc, log, conf, pol, out = fake_install("test: curl postgresql libpq-dev\n")
t.ok(rc == 0 and len(log) == 2 and log[0].startswith(
    "install postgresql-common|"),
     "packages.sh installs postgresql-common alone first", "\n".join(log)
     + "\n" + out)
t.ok(len(log) == 2 and log[1] == "install curl postgresql libpq-dev|"
     "create_main_cluster = false|101",
     "packages.sh sets create_main_cluster = false before installing "
     "postgresql, with every service start refused", "\n".join(log))
t.ok(conf == "# Default values\ncreate_main_cluster = false\n\nssl = on\n",
     "createcluster.conf: the line edited in place, the rest kept", conf)
t.ok(pol is None, "the policy-rc.d it made is removed after", pol)
rc, log, conf, pol, out = fake_install("test: postgresql\n",
                                       policy="#!/bin/sh\nexit 0\n")
t.ok(rc == 0 and pol == "#!/bin/sh\nexit 0\n" and len(log) == 2 and
     log[1].endswith("|create_main_cluster = false|0"),
     "a policy-rc.d of the system's is used and kept as it was",
     "\n".join(log) + "\n" + out)
rc, log, conf, pol, out = fake_install("test: curl prometheus\n")
t.ok(rc == 0 and log == ["install curl prometheus||101"] and not conf and
     pol is None,
     "prometheus installs with every service start refused (one install, "
     "the policy-rc.d it made removed after)", "\n".join(log) + "\n" + out)
rc, log, conf, pol, out = fake_install("test: prometheus postgresql\n")
t.ok(rc == 0 and len(log) == 2 and log[0].startswith(
    "install postgresql-common|") and log[0].endswith("|101") and
     log[1] == "install prometheus postgresql|create_main_cluster = false|"
     "101" and pol is None,
     "prometheus beside postgresql: postgresql-common first, then both, "
     "every service start refused", "\n".join(log) + "\n" + out)
rc, log, conf, pol, out = fake_install("test: curl nginx\n")
t.ok(rc == 0 and log == ["install curl nginx||none"] and not conf,
     "without postgresql: one install, nothing else touched",
     "\n".join(log) + "\n" + out)

t.done()
