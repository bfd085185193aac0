#!/usr/bin/env python3
"""Apache running podio-webhook as a CGI program, the shared-hosting
setup, end to end against the Podio simulator: deploy/htaccess as the web
directory's .htaccess, the wrapper deploy/podio-webhook.cgi, the
configuration deploy/podio-webhook-cgi.conf (state outside the web
directory).  Twice: mod_cgi under the prefork MPM, and mod_cgid under the
event MPM (which hands CGI programs a connected socket as stdin).

Each CGI process runs as Apache's user, www-data, and is a new process:
the token cache is what keeps it to one token request.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import scenario  # noqa: E402
import servers  # noqa: E402
import testlib  # noqa: E402

USER, GROUP = servers.WEB_USER, servers.WEB_GROUP
# Decoys in the web directory that the .htaccess rules must refuse.
DECOYS = ("podio-webhook.conf", "token-cache.json", "events.jsonl",
          "podio-webhook.log", "podio-webhook.cgi~", ".env")


def one(t, module, mpm):
    prefix = "%s (%s MPM): " % (module, mpm)
    with testlib.Sim() as sim:
        dep = scenario.Deployment(sim, USER, GROUP)
        sample = servers.substitute("podio-webhook-cgi.conf",
                                    STATEDIR=dep.state)
        dep.token_cache = os.path.join(dep.state, "token-cache.json")
        dep.events_log = os.path.join(dep.state, "events.jsonl")
        dep.write_config(sample + "\n# the test's settings\n",
                         omit=("token_cache", "spool_dir", "log *"))
        dep.logs.append(("podio-webhook log file",
                         os.path.join(dep.state, "podio-webhook.log")))
        www = servers.mkdir(os.path.join(dep.root, "www"))
        hookdir = servers.mkdir(os.path.join(www, "podio"))
        servers.write_file(os.path.join(hookdir, ".htaccess"),
                           servers.substitute("htaccess"))
        servers.write_file(os.path.join(hookdir, "podio-webhook.cgi"),
                           servers.substitute("podio-webhook.cgi",
                                              BINDIR=dep.bindir,
                                              CONFIG=dep.config), 0o755)
        for name in DECOYS:
            servers.write_file(os.path.join(hookdir, name), "decoy\n")
        # The binary itself as the CGI, configured by SetEnv, as the
        # .htaccess comment describes for hosts without suexec: Apache
        # passes it the query string as arguments.
        direct = servers.mkdir(os.path.join(www, "direct"))
        servers.write_file(os.path.join(direct, ".htaccess"),
                           servers.substitute("htaccess") +
                           "SetEnv PODIO_WEBHOOK_CONFIG %s\n" % dep.config)
        shutil.copy(dep.binary, os.path.join(direct, "podio-webhook.cgi"))
        os.chmod(os.path.join(direct, "podio-webhook.cgi"), 0o755)

        port = servers.free_port()
        # What shared hosts usually allow in .htaccess files.
        extra = ('<Directory "%s">\n'
                 '    AllowOverride AuthConfig FileInfo Limit '
                 'Options=ExecCGI,Indexes\n'
                 '</Directory>\n' % www)
        if module == "cgid":
            extra += 'ScriptSock "%s/apache/run/cgid.sock"\n' % dep.root
        apache = servers.Apache(dep.root, "", port, modules=[module],
                                mpm=mpm, docroot=www, extra=extra)
        dep.logs[:0] = apache.logs()
        apache.start()
        path = "/podio/podio-webhook.cgi"
        ck, hooks = scenario.run(t, dep, port, path, prefix)

        for name in DECOYS:
            st, _h, _b = scenario.http(port, "GET", "/podio/" + name)
            ck.is_(st, 403, "the .htaccess refuses GET /podio/" + name)
        st, _h, _b = scenario.http(port, "GET", "/podio/.htaccess")
        ck.is_(st, 403, "the .htaccess refuses GET /podio/.htaccess")
        st, _h, _b = scenario.http(port, "GET", "/podio/")
        ck.ok(st in (403, 404), "no directory listing", "status %d" % st)

        # A query string without '=' becomes the CGI's arguments: they
        # must never run a command (here: delete a hook).
        hid = hooks["item.create"]
        body = scenario.form(("secret", dep.secret), ("type", "item.create"),
                             ("hook_id", str(hid)), ("item_id", "4231"))
        ctype = {"Content-Type": "application/x-www-form-urlencoded"}
        for where, url in (("the wrapper", path),
                           ("the binary as CGI", "/direct/podio-webhook.cgi")):
            q = "?hooks+delete+%d" % hid
            st, _h, b = scenario.http(port, "POST", url + q, body, ctype)
            ck.is_(st, 200, "%s: POST ...%s is a delivery (200)" % (where, q))
            st, _h, b = scenario.http(port, "GET", url + "?config")
            ck.is_(st, 405, "%s: GET ...?config answers 405, runs nothing"
                   % where)
        ck.ok(not sim.requests("/hook/", "DELETE") and
              any(h["hook_id"] == hid for h in sim.hooks()),
              "no argument from the query string deleted the hook",
              repr(sim.requests("/hook/", "DELETE")))
        ck.is_(len(sim.token_requests()), 1,
               "still one token request after the direct CGI")
        scenario.check_workers(ck, apache)
        scenario.stop_all(ck, apache)


def main():
    t = testlib.Tap()
    servers.require_root(t)
    servers.require_programs(t, servers.APACHE, "setpriv")
    for module, mpm in (("cgi", "prefork"), ("cgid", "event")):
        servers.require_files(t, os.path.join(servers.APACHE_MODULES,
                                              "mod_%s.so" % module))
    one(t, "cgi", "prefork")
    one(t, "cgid", "event")
    t.done()


testlib.main(main)
