#!/bin/sh
# podio-webhook as a CGI program on shared hosting: this wrapper sits in
# the web directory (next to deploy/htaccess, saved as .htaccess), the
# binary and its configuration outside it.  Mode 0755, owned by your
# account (suexec refuses group- or world-writable scripts).
#
# Placeholders (replace every one; nothing else needs editing):
#   @BINDIR@  the directory holding podio-webhook, outside the web
#             directory, e.g. /home/USER/podio-webhook/bin
#   @CONFIG@  the configuration file, outside the web directory, e.g.
#             /home/USER/podio-webhook/podio-webhook.conf (mode 0600;
#             deploy/podio-webhook-cgi.conf is a starting point)
#
# The path goes through the environment: as a CGI program podio-webhook
# ignores its command line, because Apache turns a query string without
# '=' into arguments (?hooks+delete+1 would otherwise be a command).  For
# the same reason no argument is passed on.  suexec empties the
# environment before running this script, so the variable is set here and
# not in .htaccess.

PODIO_WEBHOOK_CONFIG='@CONFIG@'
export PODIO_WEBHOOK_CONFIG
exec '@BINDIR@/podio-webhook'
