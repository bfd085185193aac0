#!/usr/bin/env python3
"""Apache with mod_proxy_fcgi in front of `podio-webhook serve` on a unix
socket, from deploy/apache-proxy-fcgi.conf, end to end against the Podio
simulator.

podio-webhook runs as nobody with the group www-data (socket mode 0660);
Apache's children run as www-data.
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
    servers.require_programs(t, servers.APACHE, "setpriv")
    servers.require_files(t, os.path.join(servers.APACHE_MODULES,
                                          "mod_proxy_fcgi.so"))
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
        site = servers.substitute("apache-proxy-fcgi.conf", SOCKET=sock)
        apache = servers.Apache(dep.root, site, port,
                                modules=["proxy", "proxy_fcgi"])
        dep.logs[:0] = apache.logs()
        apache.start()
        ck, _hooks = scenario.run(t, dep, port, "/podio-hook")
        scenario.check_workers(ck, apache)
        scenario.stop_all(ck, apache, serve)
        ck.is_(serve.stopped_status, 0, "serve exits 0 on SIGTERM")
        ck.ok(not os.path.exists(sock), "serve removes its socket")
    t.done()


testlib.main(main)
