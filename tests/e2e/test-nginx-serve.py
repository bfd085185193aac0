#!/usr/bin/env python3
"""nginx in front of `podio-webhook serve` on a unix socket, from
deploy/nginx-serve.conf, end to end against the Podio simulator.

podio-webhook runs as nobody with the group www-data (the README's
dedicated user, with the web server's group so that nginx may use the
socket, mode 0660); nginx's workers run as www-data.
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
    servers.require_programs(t, servers.NGINX, "setpriv")
    with testlib.Sim() as sim:
        dep = scenario.Deployment(sim, USER, GROUP)
        dep.write_config()
        sock = os.path.join(dep.rundir, "podio-webhook.sock")
        serve = servers.Proc(
            "podio-webhook serve",
            servers.as_user(USER, GROUP) + [
                dep.binary, "-c", dep.config, "serve", "--listen",
                "unix:" + sock, "--workers", "8", "--socket-mode", "0660"],
            os.path.join(dep.root, "serve.log"), env=dep.env())
        dep.logs.append(("podio-webhook serve stderr", serve.log))
        serve.start()
        servers.wait_until(lambda: servers.socket_open(sock), 30,
                           "the serve socket", serve)
        port = servers.free_port()
        site = servers.substitute("nginx-serve.conf",
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
        scenario.check_workers(ck, ngx)
        scenario.stop_all(ck, ngx, serve)
        ck.is_(serve.stopped_status, 0, "serve exits 0 on SIGTERM")
        ck.ok(not os.path.exists(sock), "serve removes its socket")
    t.done()


testlib.main(main)
