#!/usr/bin/env python3
"""Apache with mod_fcgid starting podio-webhook itself (a FastCGI
listening socket on standard input, one request at a time per process),
from deploy/apache-fcgid.conf, end to end against the Podio simulator.

The processes run as Apache's user, www-data, which therefore owns the
configuration, the token cache and the event log; their standard error is
Apache's error log.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import scenario  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

USER, GROUP = servers.WEB_USER, servers.WEB_GROUP


def main():
    t = testlib.Tap()
    servers.require_root(t)
    servers.require_programs(t, servers.APACHE, "setpriv")
    servers.require_files(t, os.path.join(servers.APACHE_MODULES,
                                          "mod_fcgid.so"))
    with testlib.Sim() as sim:
        dep = scenario.Deployment(sim, USER, GROUP)
        dep.write_config()
        port = servers.free_port()
        site = servers.substitute("apache-fcgid.conf", BINDIR=dep.bindir,
                                  CONFIG=dep.config)
        run = os.path.join(dep.root, "apache", "run")
        # Debian keeps mod_fcgid's sockets under /var/lib/apache2: use
        # private ones.
        extra = ('FcgidIPCDir "%s/fcgid"\n'
                 'FcgidProcessTableFile "%s/fcgid-shm"\n' % (run, run))
        apache = servers.Apache(dep.root, site, port, modules=["fcgid"],
                                extra=extra)
        dep.logs[:0] = apache.logs()
        apache.start()
        # mod_fcgid reads the whole body before passing the request on
        # and always sets CONTENT_LENGTH (0 without a body): the handler
        # never sees a request without a length, so no 411 here.
        ck, _hooks = scenario.run(t, dep, port, "/podio-hook", no_length=403)
        procs = [p for p in servers.pids_in_session(apache.proc.sid)
                 if servers.proc_exe(p) == dep.binary]
        ck.ok(procs and all(servers.proc_uid(p) == dep.uid for p in procs),
              "mod_fcgid runs podio-webhook as %s" % USER,
              "processes: %r" % procs)
        scenario.check_workers(ck, apache)
        scenario.stop_all(ck, apache)
    t.done()


testlib.main(main)
