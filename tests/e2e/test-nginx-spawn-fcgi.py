#!/usr/bin/env python3
"""nginx in front of podio-webhook started by spawn-fcgi (a FastCGI
listening socket on its standard input), from deploy/spawn-fcgi.sh and
deploy/nginx-spawn-fcgi.conf, end to end against the Podio simulator.

spawn-fcgi starts as root, gives the socket to nobody:www-data (mode
0660) and runs podio-webhook as nobody with the group www-data; nginx's
workers run as www-data.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import scenario  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

USER, GROUP = "nobody", servers.WEB_GROUP


def main():
    t = testlib.Tap()
    servers.require_root(t)
    servers.require_programs(t, servers.NGINX, "spawn-fcgi", "setpriv")
    with testlib.Sim() as sim:
        dep = scenario.Deployment(sim, USER, GROUP)
        dep.write_config()
        sock = os.path.join(dep.rundir, "fcgi.sock")
        script = servers.write_file(
            os.path.join(dep.root, "spawn-fcgi.sh"),
            servers.substitute("spawn-fcgi.sh", BINDIR=dep.bindir,
                               CONFIG=dep.config, SOCKET=sock, USER=USER,
                               GROUP=GROUP), 0o755)
        spawn = servers.Proc("spawn-fcgi + podio-webhook", ["/bin/sh", script],
                             os.path.join(dep.root, "spawn-fcgi.log"),
                             env=dep.env())
        dep.logs.append(("podio-webhook stderr", spawn.log))
        spawn.start()
        servers.wait_until(lambda: servers.socket_open(sock), 30,
                           "the spawn-fcgi socket", spawn)
        port = servers.free_port()
        site = servers.substitute("nginx-spawn-fcgi.conf",
                                  LISTEN="127.0.0.1:%d" % port,
                                  SERVER_NAME="127.0.0.1", SOCKET=sock)
        ngx = servers.Nginx(dep.root, site, port)
        dep.logs[:0] = ngx.logs()
        ngx.start()
        ck, _hooks = scenario.run(t, dep, port, "/podio-hook")
        st = os.stat(sock)
        ck.ok(st.st_uid == dep.uid and
              st.st_gid == servers.grp_gid(GROUP) and
              (st.st_mode & 0o777) == 0o660,
              "the socket belongs to %s:%s with mode 0660" % (USER, GROUP),
              "uid %d gid %d mode %o" % (st.st_uid, st.st_gid,
                                         st.st_mode & 0o777))
        ck.ok(servers.proc_uid(spawn.popen.pid) == dep.uid,
              "podio-webhook runs as %s (spawn-fcgi -n: same process)" % USER)
        scenario.check_workers(ck, ngx)
        scenario.stop_all(ck, ngx, spawn)
        ck.is_(spawn.stopped_status, 0, "podio-webhook exits 0 on SIGTERM")
        # It did not make the socket, so it leaves it alone (a systemd
        # socket unit, which keeps listening, requires that).
        ck.ok(os.path.exists(sock), "the inherited socket file is left alone")
    t.done()


testlib.main(main)
