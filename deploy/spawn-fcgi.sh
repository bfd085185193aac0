#!/bin/sh
# Starts podio-webhook as a FastCGI server with spawn-fcgi, for nginx
# (deploy/nginx-spawn-fcgi.conf).
#
# spawn-fcgi creates the unix socket as root, gives it to USER:GROUP with
# mode 0660, then becomes USER:GROUP and runs podio-webhook with the
# listening socket on its standard input: podio-webhook sees that and
# serves FastCGI (16 requests at once by default).  With -n spawn-fcgi
# does not fork: podio-webhook replaces it and keeps this process id,
# which suits systemd (Type=simple), runit or daemontools.  Run it as
# root.  podio-webhook logs to its standard error (here: this script's)
# or wherever log_target says.
#
# Placeholders (replace every one; nothing else needs editing):
#   @BINDIR@  the directory holding podio-webhook, e.g. /usr/local/bin
#   @CONFIG@  the configuration file, e.g. /etc/podio-webhook.conf
#             (mode 0600, owned by USER)
#   @SOCKET@  the socket to create, e.g. /run/podio-webhook/fcgi.sock; its
#             directory must exist (the same value as in
#             nginx-spawn-fcgi.conf)
#   @USER@    the user podio-webhook runs as, e.g. podio-webhook
#   @GROUP@   its group: the web server's group (www-data on Debian), so
#             that nginx may use the socket
#
# As a systemd service instead of this script:
#   ExecStart=/usr/bin/spawn-fcgi -n -s @SOCKET@ -M 0660 -u @USER@ -g @GROUP@ -U @USER@ -G @GROUP@ -- @BINDIR@/podio-webhook -c @CONFIG@
# (or use deploy/podio-webhook-fcgi.socket, where systemd plays the part
# of spawn-fcgi).

exec spawn-fcgi -n -s '@SOCKET@' -M 0660 \
	-u '@USER@' -g '@GROUP@' -U '@USER@' -G '@GROUP@' \
	-- '@BINDIR@/podio-webhook' -c '@CONFIG@'
