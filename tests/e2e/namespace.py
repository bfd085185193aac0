"""A private mount namespace for the end-to-end tests that change system
files (useradd's /etc/passwd, /etc/podio-webhook.conf, /var/log/...):
the test runs itself again under `unshare --mount --propagation
private`, and in that namespace mounts an overlay (its upper layer on a
tmpfs) on each of the directories it names, so that whatever it writes
there lands in throwaway layers that vanish with the namespace.  A
descriptor of the host's root, opened before, lets it check the host
afterwards.

    import namespace
    if not namespace.inside():
        why = namespace.unavailable()
        if why:
            t.skip_all(why)
        namespace.enter()                # this process is replaced
    hostfd = namespace.host_root()
    private = namespace.Private(("/etc", "/var/log"), "mytest")
    try:
        private.setup()
        ...
    finally:
        private.teardown()
"""

import os
import re
import subprocess
import sys
import tempfile

NS_ENV = "PODIO_E2E_NAMESPACE"      # set inside the private namespace
HOSTFD_ENV = "PODIO_E2E_HOST_ROOT"  # a descriptor of the host's /


class NamespaceError(Exception):
    pass


def inside():
    """Whether this process runs in the namespace enter() made."""
    return os.environ.get(NS_ENV) == "1"


def unavailable():
    """Why no private mount namespace can be made here ("" when one
    can)."""
    probe = subprocess.run(["unshare", "--mount", "--propagation",
                            "private", "true"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        return "no private mount namespace here (unshare: %s)" % (
            probe.stderr.strip())
    return ""


def enter():
    """Runs this test (sys.argv) again inside a private mount namespace
    (this process is replaced), handing it a descriptor of the host's
    root."""
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    os.set_inheritable(fd, True)
    env = dict(os.environ)
    env[NS_ENV] = "1"
    env[HOSTFD_ENV] = str(fd)
    sys.stdout.flush()
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private",
                           sys.executable, os.path.abspath(sys.argv[0])] +
               sys.argv[1:], env)


def host_root():
    """The descriptor of the host's / that enter() handed over."""
    return int(os.environ[HOSTFD_ENV])


def host_has_user(fd, name):
    """Whether the host's /etc/passwd (seen through fd) has user name."""
    try:
        f = os.open("etc/passwd", os.O_RDONLY, dir_fd=fd)
    except OSError:
        return False
    with os.fdopen(f) as passwd:
        return any(ln.split(":", 1)[0] == name for ln in passwd)


def mountpoints():
    """The mount points of this namespace (unescaped)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            p = line.split()[4]
            out.append(re.sub(r"\\([0-7]{3})",
                              lambda m: chr(int(m.group(1), 8)), p))
    return out


def mount(*args):
    r = subprocess.run(["mount"] + list(args), capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise NamespaceError("mount %s: %s" % (" ".join(args),
                                               r.stderr.strip()))


class Private:
    """The overlays on targets (absolute directories; missing ones are
    left out), their upper layers on a tmpfs; label names the mounts."""

    def __init__(self, targets, label):
        tag = os.environ.get("PODIO_E2E_TAG", "")
        self.targets = tuple(targets)
        self.label = "podio-" + label
        self.base = tempfile.mkdtemp(prefix="podio-e2e-%s%s-ns-" % (
            tag + "-" if tag else "", label))
        self.mounted = []

    def setup(self):
        mount("--make-rprivate", "/")
        mount("-t", "tmpfs", "-o", "mode=0755,size=256m", self.label,
              self.base)
        self.mounted.append(self.base)
        all_mounts = mountpoints()
        for n, target in enumerate(self.targets):
            if not os.path.isdir(target):
                continue
            # Mounts below target would be hidden by the overlay (it
            # shows the directories under them): move them onto it.
            subs = sorted(p for p in all_mounts
                          if p.startswith(target + "/"))
            subs = [p for p in subs if not any(
                p.startswith(q + "/") for q in subs if q != p)]
            held = []
            for k, sub in enumerate(subs):
                hold = os.path.join(self.base, "hold-%d-%d" % (n, k))
                if os.path.isdir(sub):
                    os.mkdir(hold)
                else:
                    open(hold, "w").close()
                mount("--rbind", sub, hold)
                held.append((hold, sub))
            upper = os.path.join(self.base, "upper-%d" % n)
            work = os.path.join(self.base, "work-%d" % n)
            os.mkdir(upper)
            os.mkdir(work)
            st = os.stat(target)
            os.chmod(upper, st.st_mode & 0o7777)
            os.chown(upper, st.st_uid, st.st_gid)
            mount("-t", "overlay", self.label, "-o",
                  "lowerdir=%s,upperdir=%s,workdir=%s" % (target, upper,
                                                          work), target)
            self.mounted.append(target)
            for hold, sub in held:
                mount("--move", hold, sub)

    def teardown(self):
        for target in reversed(self.mounted):
            subprocess.run(["umount", "-l", target], capture_output=True)
        self.mounted = []
        try:
            os.rmdir(self.base)
        except OSError:
            pass
