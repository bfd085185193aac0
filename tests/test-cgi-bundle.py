"""The CGI bundle for shared hosting (`make cgi-bundle`) and its install.sh.

The bundle is built once with `make cgi-bundle` in the build directory
under test, or taken from $PODIO_CGI_BUNDLE (a tarball).  It must unpack
to one directory of the agreed layout; its program and libraries must
need no library outside its lib/ but glibc's, and no glibc symbol
version above 2.34 (readelf -d, objdump -T); the loader must take every
other library from lib/ (the listing is printed), and the program must
run from the unpacked directory with an empty LD_LIBRARY_PATH.

install.sh runs as an unprivileged user (as root: nobody, through
setpriv, with a home directory of its own; else the test's user), in
that user's home: the first run installs with the modes it promises,
writes the paths into the wrapper, puts the .htaccess in place and names
the keys to fill in; with the credentials filled in (api_url: the
simulator) the next run passes `check` and prints the hook URL and the
next command; a third run changes nothing (a listing of modes and
content hashes) and keeps an edit of the configuration; it refuses a web
directory that holds the program's, or the other way round, and puts a
changed library back (an upgrade).  No web server is needed: the
wrapper is run as a CGI program once, as Apache would.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tarfile

import testlib

t = testlib.Tap()
GLIBC_MAX = (2, 34)
# glibc's own libraries: every host has them, the bundle must not carry them.
GLIBC = re.compile(r"^(libc|libm|libmvec|libpthread|libdl|librt|libresolv|"
                   r"libutil|libanl|ld-linux[-\w]*|linux-vdso)\.so(\.|$)"
                   r"|^libnsl\.so\.1$")
NOBODY = 65534
SECRET = "bundle-hook-secret-6d1e02f4"


def clean_env(home=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PODIO_", "MAKE", "MFLAGS"))
           and k != "LD_LIBRARY_PATH"}
    if home is not None:
        env["HOME"] = home
    return env


def build_bundle():
    """The tarball's path: $PODIO_CGI_BUNDLE, else made here."""
    given = os.environ.get("PODIO_CGI_BUNDLE")
    if given:
        t.ok(os.path.isfile(given), "the given bundle exists", given)
        return given
    r = subprocess.run(["make", "-C", testlib.BUILDDIR, "cgi-bundle"],
                       env=clean_env(), capture_output=True, text=True,
                       timeout=1200)
    out = r.stdout + r.stderr
    if not t.ok(r.returncode == 0, "make cgi-bundle succeeds",
                "\n".join(out.splitlines()[-40:])):
        t.bail_out("no bundle to test")
    m = re.search(r"cgi-bundle: (podio-webhook-cgi-\S+\.tar\.gz): (\d+) "
                  r"bytes, (\d+) libraries", out)
    t.ok(m, "make cgi-bundle says what it made", out)
    if not m:
        t.bail_out("no bundle to test")
    t.diag("bundle: %s, %s bytes, %s libraries" % m.groups())
    path = os.path.join(testlib.BUILDDIR, m.group(1))
    t.ok(os.path.isfile(path), "the tarball is in the build directory",
         path)
    return path


def elf_dynamic(path):
    """(NEEDED names, RPATH or None, RUNPATH or None) from readelf -d."""
    out = subprocess.run(["readelf", "-d", path], capture_output=True,
                         text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)
    rpath = re.search(r"\(RPATH\)\s+Library rpath: \[(.*)\]", out)
    runpath = re.search(r"\(RUNPATH\)\s+Library runpath: \[(.*)\]", out)
    return (needed, rpath.group(1) if rpath else None,
            runpath.group(1) if runpath else None)


def glibc_refs(path):
    """{version tuple: [symbol, ...]} of the GLIBC_ versions objdump -T
    shows for path."""
    out = subprocess.run(["objdump", "-T", path], capture_output=True,
                         text=True, check=True).stdout
    refs = {}
    for line in out.splitlines():
        m = re.search(r"\bGLIBC_(\d+(?:\.\d+)*)\b\)?\s+(\S+)\s*$", line)
        if m:
            v = tuple(int(x) for x in m.group(1).split("."))
            refs.setdefault(v, []).append(m.group(2))
    return refs


def check_layout(top, name):
    want = ["bin/podio-webhook", "share/cacert.pem", "web/podio-webhook.cgi",
            "web/htaccess", "etc/podio-webhook.conf", "install.sh",
            "INSTALL"]
    missing = [w for w in want if not os.path.isfile(os.path.join(top, w))]
    if not os.path.isdir(os.path.join(top, "lib")):
        missing.append("lib/")
    if not t.ok(not missing, "the bundle holds lib/, " + ", ".join(want),
                missing):
        t.bail_out("the bundle's layout is not the agreed one")
    libs = sorted(os.listdir(os.path.join(top, "lib")))
    t.ok(libs, "lib/ holds libraries", libs)
    t.diag("lib/: " + " ".join(libs))
    t.ok(os.access(os.path.join(top, "install.sh"), os.X_OK)
         and os.access(os.path.join(top, "bin/podio-webhook"), os.X_OK),
         "install.sh and the program are executable")
    conf = testlib.read_text(os.path.join(top, "etc/podio-webhook.conf"))
    t.ok(re.search(r"^ca_file = @CA_FILE@$", conf, re.M),
         "the sample configuration sets ca_file (install.sh fills it in)")
    with open(os.path.join(top, "web/htaccess"), "rb") as a, \
            open(os.path.join(testlib.SRCDIR, "deploy/htaccess"), "rb") as b:
        t.ok(a.read() == b.read(), "web/htaccess is deploy/htaccess")
    intext = testlib.read_text(os.path.join(top, "INSTALL"))
    t.ok("spool drain" in intext and "hooks heal" in intext
         and "2.34" in intext,
         "INSTALL has the cron lines and names the glibc it needs")
    return libs


def check_elf(top, libs):
    files = ["bin/podio-webhook"] + ["lib/" + x for x in libs]
    outside, over, runpaths = [], [], []
    for rel in files:
        needed, rpath, runpath = elf_dynamic(os.path.join(top, rel))
        if rel == "bin/podio-webhook":
            t.is_(rpath, "$ORIGIN/../lib",
                  "the program's RPATH is $ORIGIN/../lib")
        if runpath is not None:
            runpaths.append("%s: %s" % (rel, runpath))
        for n in needed:
            if not GLIBC.match(n) and n not in libs:
                outside.append("%s needs %s" % (rel, n))
        for v, syms in glibc_refs(os.path.join(top, rel)).items():
            if v > GLIBC_MAX:
                over.append("%s: GLIBC_%s: %s" % (
                    rel, ".".join(map(str, v)), " ".join(sorted(syms))))
    t.ok(not runpaths, "no file has a RUNPATH (it would hide the RPATH)",
         runpaths)
    t.ok(not outside, "every NEEDED library is in lib/ or glibc's",
         "\n".join(outside))
    t.ok(not over, "no glibc symbol version above 2.34 in bin/ and lib/",
         "\n".join(over))


def check_loader(top):
    prog = os.path.join(top, "bin", "podio-webhook")
    env = dict(clean_env(), LD_LIBRARY_PATH="", LD_TRACE_LOADED_OBJECTS="1")
    r = subprocess.run([prog], env=env, capture_output=True, text=True,
                       timeout=60)
    t.diag("what the program loads (LD_TRACE_LOADED_OBJECTS):")
    t.diag(r.stdout)
    real_lib = os.path.realpath(os.path.join(top, "lib"))
    wrong = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if not m or GLIBC.match(m.group(1)):
            continue
        if (m.group(2) == "not"
                or os.path.dirname(os.path.realpath(m.group(2)))
                != real_lib):
            wrong.append(line.strip())
    t.ok(r.returncode == 0 and r.stdout.strip(),
         "the loader lists the program's libraries", r.stderr)
    t.ok(not wrong, "every library but glibc's comes from lib/",
         "\n".join(wrong))
    r = subprocess.run([prog, "--version"], cwd=top,
                       env=dict(clean_env(), LD_LIBRARY_PATH=""),
                       capture_output=True, text=True, timeout=60)
    return r


def tree(*roots):
    """{path: (mode, sha256 or None)} of everything under roots, the
    state directory (var/) left out: check writes its log there."""
    out = {}
    for root in roots:
        for top, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.join(top, d) !=
                       os.path.join(roots[0], "var")]
            for p in [top] + [os.path.join(top, f) for f in files]:
                st = os.lstat(p)
                digest = None
                if os.path.isfile(p):
                    with open(p, "rb") as f:
                        digest = hashlib.sha256(f.read()).hexdigest()
                out[p] = (oct(st.st_mode & 0o7777), digest)
    return out


def mode(path):
    return oct(os.stat(path).st_mode & 0o777)


class User:
    """Runs commands as the unprivileged user whose home is `home`."""

    def __init__(self):
        self.root = os.geteuid() == 0
        self.home = testlib.tmpdir()
        if self.root:
            os.chown(self.home, NOBODY, NOBODY)
            os.chmod(self.home, 0o755)
            self.who = "nobody"
        else:
            self.who = "the test's user"

    def run(self, argv, cwd=None, env=None, input=None):
        pre = []
        if self.root:
            pre = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                   "--clear-groups"]
        return subprocess.run(pre + argv, cwd=cwd or self.home,
                              env=env or clean_env(self.home), input=input,
                              capture_output=True, text=True, timeout=300)

    def write(self, path, text, append=True):
        r = self.run(["sh", "-c", 'cat %s "$0"' % (">>" if append else ">"),
                      path], input=text)
        assert r.returncode == 0, r.stderr


def main():
    tarball = build_bundle()
    with tarfile.open(tarball) as tf:
        tops = sorted({n.split("/")[0] for n in tf.getnames()})
    if not t.ok(len(tops) == 1, "it unpacks to one directory", tops):
        t.bail_out("not a bundle")
    name = tops[0]
    m = re.match(r"^podio-webhook-cgi-(.+)-x86_64$", name)
    t.ok(m, "the directory is named podio-webhook-cgi-VERSION-x86_64",
         name)
    version = m.group(1) if m else "?"
    if "PODIO_CGI_BUNDLE" not in os.environ:
        t.is_(os.path.basename(tarball), name + ".tar.gz",
              "the tarball has the directory's name")

    user = User()
    shutil.copy(tarball, os.path.join(user.home, "bundle.tar.gz"))
    os.chmod(os.path.join(user.home, "bundle.tar.gz"), 0o644)
    r = user.run(["tar", "xzf", "bundle.tar.gz"])
    t.ok(r.returncode == 0, "%s unpacks it in its home" % user.who,
         r.stderr)
    top = os.path.join(user.home, name)

    libs = check_layout(top, name)
    check_elf(top, libs)
    r = check_loader(top)
    t.ok(r.returncode == 0 and r.stdout.strip() ==
         "podio-webhook " + version,
         "the program runs from the unpacked bundle and prints its version",
         r.stdout + r.stderr)

    home = user.home
    prefix = os.path.join(home, "podio-webhook")
    conf = os.path.join(prefix, "podio-webhook.conf")
    binpath = os.path.join(prefix, "bin", "podio-webhook")
    web = os.path.join(home, "public_html", "podio")
    cgi = os.path.join(web, "podio-webhook.cgi")
    install = [os.path.join(top, "install.sh")]

    # --- first run: installs, names the keys to fill in
    r = user.run(install, cwd=top)
    out = r.stdout + r.stderr
    t.ok(r.returncode == 0, "install.sh as %s exits 0" % user.who, out)
    t.diag(r.stdout)
    modes = {prefix: "0o700", os.path.join(prefix, "bin"): "0o700",
             os.path.join(prefix, "lib"): "0o700",
             os.path.join(prefix, "var"): "0o700", binpath: "0o700",
             conf: "0o600", cgi: "0o755",
             os.path.join(web, ".htaccess"): "0o644"}
    got = {p: (mode(p) if os.path.exists(p) else None) for p in modes}
    t.is_(got, modes, "the installed files have their modes")
    bad_owner = [p for p in modes if os.path.exists(p)
                 and os.stat(p).st_uid != os.stat(home).st_uid]
    t.ok(not bad_owner, "they belong to the user", bad_owner)
    wrapper = testlib.read_text(cgi)
    lines = wrapper.splitlines()
    t.ok(lines and lines[0] == "#!%s --cgi-config=%s" % (binpath, conf)
         and all(l.startswith("#") for l in lines),
         "the CGI script is one line naming the program as its "
         "interpreter and the configuration, then comments", wrapper)
    t.ok(testlib.read_text(os.path.join(web, ".htaccess")) ==
         testlib.read_text(os.path.join(top, "web/htaccess")),
         "the .htaccess is the bundle's")
    ctext = testlib.read_text(conf)
    t.ok(re.search(r"^ca_file = %s$" % re.escape(
        os.path.join(prefix, "share", "cacert.pem")), ctext, re.M)
         and not re.search(r"^[^#]*@[A-Z_]+@", ctext, re.M),
         "the configuration has its paths filled in, ca_file the bundle's",
         ctext)
    t.ok("Fill in these keys in %s: client_id, client_secret, app_id, "
         "app_token (or username, password), webhook_secret" % conf in out,
         "it names the keys to fill in", out)
    t.ok("%s -c %s check" % (binpath, conf) in out
         and "Checking" not in out,
         "it says how to run check, and does not run it yet", out)

    # --- the credentials filled in: check runs and passes
    with testlib.Sim() as sim:
        user.write(conf, "\n# ---- mine\napi_url = %s\n" % sim.url +
                   "".join("%s = %s\n" % kv for kv in
                           testlib.DEFAULT_CREDS.items()) +
                   "webhook_secret = %s\n" % SECRET)
        before = len(sim.token_requests())
        r = user.run(install, cwd=top)
        out = r.stdout + r.stderr
        t.ok(r.returncode == 0, "with the credentials, install.sh exits 0",
             out)
        t.diag(r.stdout)
        t.ok("Checking the credentials" in out and "Fill in" not in out
             and len(sim.token_requests()) > before,
             "it runs check, which asks the API for a token", out)
        t.ok("https://YOUR-HOST/podio/podio-webhook.cgi" in out
             and "https://YOUR-HOST/~%s/podio/podio-webhook.cgi" % (
                 "nobody" if user.root else
                 subprocess.run(["id", "-un"], capture_output=True,
                                text=True).stdout.strip()) in out,
             "without --url it prints the hook URL's path under a "
             "placeholder host", out)
        t.ok("%s -c %s hooks create app 1234 "
             "https://YOUR-HOST/podio/podio-webhook.cgi item.create" % (
                 binpath, conf) in out,
             "and the hooks create command", out)
        t.ok("*/5 * * * * %s -c %s spool drain" % (binpath, conf) in out
             and "spool purge --dead" in out and "hooks heal" in out,
             "and the cron lines", out)

        # The script as Apache runs a CGI program through suexec: its
        # name relative to its directory, suexec's empty environment, a
        # GET (405: only POST is taken; without the configuration, 503).
        def as_cgi(script, ran, cwd):
            return user.run(["env", "-i", "GATEWAY_INTERFACE=CGI/1.1",
                             "REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1",
                             "SCRIPT_NAME=/podio/podio-webhook.cgi",
                             "SCRIPT_FILENAME=" + ran, script], cwd=cwd)
        r = as_cgi("./podio-webhook.cgi", cgi, web)
        t.ok(r.returncode == 0 and re.match(r"Status: 405", r.stdout),
             "the script runs the program as a CGI program with its "
             "configuration (GET: 405)", r.stdout + r.stderr)
        # The path is taken only from the script the server ran: a copy
        # of the script (or arguments a query string made) names none.
        copy = os.path.join(home, "copy.cgi")
        user.run(["cp", "-p", cgi, copy])
        r = as_cgi(copy, cgi, home)
        t.ok(re.match(r"Status: 503", r.stdout) and
             "--cgi-config=... is ignored" in r.stderr,
             "run through another script than the one the server names, "
             "the program ignores the path (503, and says why)",
             r.stdout + r.stderr)
        r = user.run(
            ["env", "-i", "GATEWAY_INTERFACE=CGI/1.1",
             "REQUEST_METHOD=GET", "SCRIPT_FILENAME=" + binpath,
             binpath, "--cgi-config=" + conf, cgi], cwd=home)
        t.ok(re.match(r"Status: 503", r.stdout) and
             "--cgi-config=... is ignored" in r.stderr,
             "so does the program run directly with the script's "
             "arguments, as a query string without '=' would give them",
             r.stdout + r.stderr)
        user.run(["rm", "-f", copy])

        # --- an edit is kept, a third run changes nothing
        user.write(conf, "# my own note\nhook app 1234 = item.create\n")
        snap = tree(prefix, os.path.join(home, "public_html"))
        r = user.run(install + ["--url", "https://hooks.example.org/podio/"],
                     cwd=top)
        out = r.stdout + r.stderr
        t.ok(r.returncode == 0, "a third run exits 0", out)
        after = tree(prefix, os.path.join(home, "public_html"))
        diff = sorted(set(snap.items()) ^ set(after.items()))
        t.ok(not diff, "it changes nothing (modes and contents)", diff)
        t.ok("nothing to change" in out and "# my own note" in
             testlib.read_text(conf),
             "it says so and keeps the edited configuration", out)
        t.ok("The hook URL: https://hooks.example.org/podio/"
             "podio-webhook.cgi" in out
             and "Set hook_url = https://hooks.example.org/podio/"
             "podio-webhook.cgi" in out
             and "%s -c %s hooks sync" % (binpath, conf) in out,
             "with hook lines and --url it names the URL and hooks sync",
             out)

        # --- an upgrade puts a changed library back
        lib = os.path.join(prefix, "lib", libs[0])
        user.write(lib, "old\n", append=False)
        r = user.run(install, cwd=top)
        t.ok(r.returncode == 0 and "updated   %s" % lib in r.stdout
             and tree(prefix, os.path.join(home, "public_html")) == after,
             "a changed library is replaced by the bundle's",
             r.stdout + r.stderr)

        # --- paths too long for a script's first line: the shell wrapper
        lprefix = os.path.join(home, "p" * 130, "podio-webhook")
        lweb = os.path.join(home, "public_html", "long")
        lconf = os.path.join(lprefix, "podio-webhook.conf")
        r = user.run(install + ["--prefix", lprefix, lweb], cwd=top)
        lcgi = os.path.join(lweb, "podio-webhook.cgi")
        text = testlib.read_text(lcgi) if os.path.exists(lcgi) else ""
        t.ok(r.returncode == 0 and text.startswith("#!/bin/sh\n")
             and "PODIO_WEBHOOK_CONFIG='%s'" % lconf in text
             and "exec '%s/bin/podio-webhook'" % lprefix in text,
             "with a first line over 255 bytes it installs the shell "
             "wrapper, paths filled in", r.stdout + r.stderr + text)
        user.write(lconf, "\n" + "".join(
            "%s = %s\n" % kv for kv in testlib.DEFAULT_CREDS.items()) +
                   "webhook_secret = %s\n" % SECRET)
        r = as_cgi("./podio-webhook.cgi", lcgi, lweb)
        t.ok(r.returncode == 0 and re.match(r"Status: 405", r.stdout),
             "which runs the program with its configuration (GET: 405)",
             r.stdout + r.stderr)
        user.run(["rm", "-rf", os.path.join(home, "p" * 130), lweb])

    # --- refusals
    inside = os.path.join(web, "program")
    r = user.run(install + ["--prefix", inside, web], cwd=top)
    t.ok(r.returncode == 1 and "inside the web directory" in r.stderr
         and not os.path.exists(inside),
         "it refuses a program directory inside the web directory",
         r.stdout + r.stderr)
    r = user.run(install + [os.path.join(prefix, "web")], cwd=top)
    t.ok(r.returncode == 1 and "inside the program directory" in r.stderr
         and not os.path.exists(os.path.join(prefix, "web")),
         "it refuses a web directory inside the program directory",
         r.stdout + r.stderr)
    t.done()


testlib.main(main)
