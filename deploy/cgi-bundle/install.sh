#!/bin/sh
# Installs podio-webhook from this unpacked bundle for shared hosting (a
# CGI program under your own account, no root):
#
#   ./install.sh [--prefix DIR] [--url URL] [WEB_DIR]
#
#   WEB_DIR        the web directory for the wrapper podio-webhook.cgi
#                  and the .htaccess (default: ~/public_html/podio)
#   --prefix DIR   where the program, its libraries and configuration go,
#                  OUTSIDE the web directory (default: ~/podio-webhook)
#   --url URL      the address of WEB_DIR on the web, e.g.
#                  https://www.example.com/podio: the hook URL and the
#                  commands printed at the end use it
#
# What lands where (PREFIX = ~/podio-webhook):
#   PREFIX/bin/podio-webhook       the program (mode 0700)
#   PREFIX/lib/                    its libraries
#   PREFIX/share/cacert.pem        CA certificates (ca_file)
#   PREFIX/podio-webhook.conf      the configuration (mode 0600), written
#                                  once from etc/podio-webhook.conf and
#                                  never replaced afterwards
#   PREFIX/var/                    spool, token cache, logs (mode 0700)
#   WEB_DIR/podio-webhook.cgi      the CGI script (0755): "#!PROGRAM
#                                  --cgi-config=CONFIG", else (a path
#                                  too long or with a blank) the shell
#                                  wrapper with the paths filled in
#   WEB_DIR/.htaccess              from web/htaccess (0644)
#
# Running it again changes nothing; with a newer bundle it replaces the
# program, the libraries, the CA certificates and the wrapper, and keeps
# the configuration.  Once the credentials are filled in, it runs
# `podio-webhook check`; it ends with the hook URL, the next command and
# the cron lines.  Exit status: 0 installed (and checked when the
# credentials are there), 1 an error, 2 a usage error.

set -u
umask 077

prog=install.sh
err() { printf '%s: error: %s\n' "$prog" "$*" >&2; }
die() { err "$@"; exit 1; }
usage() {
	sed -n '4,13s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

# ------------------------------------------------------------ arguments
prefix=
url=
web_dir=
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#--prefix=}; shift ;;
	--url) [ $# -ge 2 ] || usage; url=$2; shift 2 ;;
	--url=*) url=${1#--url=}; shift ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) err "unknown option $1"; usage ;;
	*) [ -z "$web_dir" ] || { err "one WEB_DIR only"; usage; }
	   web_dir=$1; shift ;;
	esac
done
if [ $# -gt 0 ]; then
	[ -z "$web_dir" ] && [ $# -eq 1 ] || { err "one WEB_DIR only"; usage; }
	web_dir=$1
fi

case ${HOME:-} in
/*) ;;
*) die "HOME is not set to an absolute path" ;;
esac
[ -n "$prefix" ] || prefix=$HOME/podio-webhook
[ -n "$web_dir" ] || web_dir=$HOME/public_html/podio
case $url in
''|http://*|https://*) url=${url%/} ;;
*) die "--url must start with https:// (or http://): $url" ;;
esac

bundle=$(cd -P "$(dirname "$0")" && pwd -P) ||
	die "cannot find the bundle's directory"
for f in bin/podio-webhook share/cacert.pem etc/podio-webhook.conf \
		web/podio-webhook.cgi web/htaccess; do
	[ -f "$bundle/$f" ] ||
		die "$bundle/$f is missing: run this script from the unpacked bundle"
done

# abspath PATH: PATH made absolute, with the symbolic links of its
# existing part resolved (the rest need not exist yet).
abspath() {
	case $1 in
	/*) _p=$1 ;;
	*) _p=$(pwd -P)/$1 ;;
	esac
	while :; do
		case $_p in
		?*/) _p=${_p%/} ;;
		*) break ;;
		esac
	done
	_rest=
	while [ ! -d "$_p" ]; do
		_rest=/${_p##*/}$_rest
		_p=${_p%/*}
		[ -n "$_p" ] || _p=/
	done
	_p=$(cd -P "$_p" && pwd -P) || return 1
	# No "." or ".." in the part that does not exist yet.
	case $_rest/ in
	*/./*|*/../*) return 1 ;;
	esac
	_p=${_p%/}$_rest
	printf '%s\n' "${_p:-/}"
}

prefix=$(abspath "$prefix") || die "cannot resolve --prefix $prefix"
web_dir=$(abspath "$web_dir") || die "cannot resolve WEB_DIR $web_dir"

# The program and its configuration must not be reachable over the web.
case $prefix/ in
"$web_dir"/*)
	die "the program directory $prefix lies inside the web directory" \
	    "$web_dir: choose another WEB_DIR or --prefix" ;;
esac
case $web_dir/ in
"$prefix"/*)
	die "the web directory $web_dir lies inside the program directory" \
	    "$prefix: choose another WEB_DIR or --prefix" ;;
esac
# The wrapper quotes the paths in single quotes; sed takes them after |.
case $prefix in
*\'*|*\|*|*\\*|*'&'*|*'
'*)
	die "the program directory's path may not hold ', |, \\, & or a new line: $prefix" ;;
esac

conf=$prefix/podio-webhook.conf
bin=$prefix/bin/podio-webhook
cafile=$prefix/share/cacert.pem
statedir=$prefix/var

# The program from the bundle must run here: a host whose C library is
# older than the bundle's (glibc 2.34) stops here, before anything is
# installed.
if ! out=$("$bundle/bin/podio-webhook" --version 2>&1); then
	err "the program does not run on this host:"
	printf '  %s\n' "$out" >&2
	printf '%s\n' "It needs glibc 2.34 or later (RHEL/AlmaLinux/CloudLinux 9," \
	    "Debian 12, Ubuntu 22.04 and later); 'ldd --version' shows this" \
	    "host's." >&2
	exit 1
fi
echo "Installing $out into $prefix, the web part into $web_dir"

# ------------------------------------------------------------ files
changed=0

# mkdir_mode DIR MODE: creates DIR (and missing parents) with MODE each;
# an existing directory keeps its mode, except DIR itself, which gets
# MODE when it is one of ours (under PREFIX).
mkdir_mode() {
	if [ ! -d "$1" ]; then
		_parent=${1%/*}
		[ -n "$_parent" ] && [ ! -d "$_parent" ] && {
			mkdir_mode "$_parent" "$2" || return 1
		}
		mkdir "$1" && chmod "$2" "$1" || return 1
		echo "  created   $1/"
		changed=1
	fi
}

# mode_of FILE: its permission bits in octal, e.g. 600.
mode_of() {
	ls -ld "$1" | awk '{
		m = 0; s = substr($1, 2, 9)
		for (i = 1; i <= 9; i++) {
			m *= 2; if (substr(s, i, 1) != "-") m += 1
		}
		printf "%o\n", m }'
}

# set_mode PATH MODE: chmod only when the mode differs, saying so.
set_mode() {
	_m=$(mode_of "$1")
	[ "$_m" = "${2#0}" ] && return 0
	chmod "$2" "$1" || return 1
	echo "  mode $2 $1 (was 0$_m)"
	changed=1
}

# put SRC DEST MODE: copies SRC to DEST unless they are equal (through a
# temporary file renamed over DEST: a running program keeps the old one).
put() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		set_mode "$2" "$3"
		return
	fi
	if [ -e "$2" ]; then _what=updated; else _what=installed; fi
	cp "$1" "$2.new.$$" && chmod "$3" "$2.new.$$" &&
		mv -f "$2.new.$$" "$2" || {
		rm -f "$2.new.$$"
		return 1
	}
	printf '  %-9s %s\n' "$_what" "$2"
	changed=1
}

# sedarg TEXT: TEXT for the right-hand side of s|...|...|.
sedarg() {
	printf '%s\n' "$1" | sed -e 's/[\\|&]/\\&/g'
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/podio-install.XXXXXX") ||
	die "cannot create a temporary directory"
trap 'rm -rf "$tmp"' 0
trap 'exit 1' 1 2 15

for d in "$prefix" "$prefix/bin" "$prefix/lib" "$prefix/share" \
		"$statedir"; do
	mkdir_mode "$d" 0700 && set_mode "$d" 0700 ||
		die "cannot create $d"
done
put "$bundle/bin/podio-webhook" "$bin" 0700 || die "cannot install $bin"
for lib in "$bundle"/lib/*; do
	[ -f "$lib" ] || continue
	put "$lib" "$prefix/lib/${lib##*/}" 0600 ||
		die "cannot install $prefix/lib/${lib##*/}"
done
put "$bundle/share/cacert.pem" "$cafile" 0600 || die "cannot install $cafile"

# The configuration: written once, never replaced (it holds your
# credentials and edits); only its mode is kept at 0600.
if [ -e "$conf" ]; then
	[ -f "$conf" ] || die "$conf exists and is not a file"
	set_mode "$conf" 0600 || die "cannot chmod $conf"
	echo "  kept      $conf (your configuration)"
else
	sed -e "s|@STATEDIR@|$(sedarg "$statedir")|g" \
	    -e "s|@CA_FILE@|$(sedarg "$cafile")|g" \
	    "$bundle/etc/podio-webhook.conf" > "$tmp/conf" &&
		put "$tmp/conf" "$conf" 0600 || die "cannot write $conf"
fi

# The web directory: new directories get 0755 (the web server must
# enter them); existing ones keep their mode.
mkdir_mode "$web_dir" 0755 || die "cannot create $web_dir"
# The CGI script names the program as its interpreter, so that the web
# server starts the program directly: its first line carries the
# configuration's path, which the program takes from there only after
# checking that the script run is this one.  Linux reads 255 bytes of
# that line (127 before Linux 5.1) and splits it at the first blank, so
# a longer line or a program path with a blank gets the shell wrapper
# web/podio-webhook.cgi instead (the same paths, one more program
# started per request).
shebang="#!$bin --cgi-config=$conf"
case $bin in
*' '*|*'	'*) shebang= ;;
esac
line_max=127
case $(uname -r 2>/dev/null) in
[1-4].*|5.0|5.0.*|5.0-*) ;;
[0-9]*) line_max=255 ;;
esac
if [ -n "$shebang" ] && [ ${#shebang} -le $line_max ]; then
	{
		printf '%s\n' "$shebang" \
		    "# podio-webhook as a CGI program, written by install.sh: the web" \
		    "# server runs the program named on the first line, which takes its" \
		    "# configuration from there.  Mode 0755, owned by your account" \
		    "# (suexec refuses group- or world-writable scripts).  To move the" \
		    "# program or the configuration, run install.sh again."
	} > "$tmp/cgi"
else
	sed -e "s|@BINDIR@|$(sedarg "$prefix/bin")|g" \
	    -e "s|@CONFIG@|$(sedarg "$conf")|g" \
	    "$bundle/web/podio-webhook.cgi" > "$tmp/cgi"
fi &&
	put "$tmp/cgi" "$web_dir/podio-webhook.cgi" 0755 ||
	die "cannot install $web_dir/podio-webhook.cgi"
htaccess=$web_dir/.htaccess
if [ -e "$htaccess" ] && ! cmp -s "$bundle/web/htaccess" "$htaccess"; then
	# Another .htaccess (the site's own, or an edited one) is not
	# replaced: it may hold rules of yours.
	echo "  kept      $htaccess: it differs from the bundle's web/htaccess;"
	echo "            make sure it holds that file's lines (ExecCGI, the handler"
	echo "            for .cgi, and the refusal of configuration files)"
else
	put "$bundle/web/htaccess" "$htaccess" 0644 ||
		die "cannot install $htaccess"
fi
case $bundle/ in
"$web_dir"/*)
	echo "Warning: this bundle lies inside the web directory; delete it" \
	     "($bundle) now that it is installed." ;;
esac
[ "$changed" = 1 ] || echo "  nothing to change"

# ------------------------------------------------------------ check
# The program as CGI and cron run it: no PODIO_* variables from this
# shell, only the configuration file.
pw() {
	env -i PATH=/usr/bin:/bin HOME="$HOME" "$bin" -c "$conf" "$@"
}

if ! pw config > "$tmp/config" 2> "$tmp/config.err"; then
	err "the configuration $conf is not usable:"
	sed 's/^/  /' "$tmp/config.err" >&2
	echo "Fix it, then run ./install.sh again (or: $bin -c $conf check)." >&2
	exit 1
fi
# value KEY: the key's effective value (secrets print as "(set)").
value() {
	sed -n "s/^$1 = //p" "$tmp/config" | head -n 1
}
missing=
need() {
	[ -n "$(value "$1")" ] || missing="$missing${missing:+, }$1"
}
need client_id
need client_secret
if [ -n "$(value app_id)$(value app_token)" ] ||
   [ -z "$(value username)$(value password)" ]; then
	if [ -z "$(value app_id)$(value app_token)" ]; then
		missing="$missing${missing:+, }app_id, app_token (or username, password)"
	else
		need app_id
		need app_token
	fi
else
	need username
	need password
fi
need webhook_secret

checked=0
if [ -n "$missing" ]; then
	echo
	echo "Fill in these keys in $conf: $missing"
	echo "(client_id and client_secret from https://podio.com/settings/api,"
	echo "app_id and app_token from the app's Developer settings, webhook_secret"
	echo "a long random string, e.g. from 'openssl rand -hex 24')."
	echo "Then check them with:"
	echo "  $bin -c $conf check"
	echo "or run ./install.sh again, which does the same."
else
	echo
	echo "Checking the credentials: $bin -c $conf check"
	pw check
	rc=$?
	if [ "$rc" != 0 ]; then
		err "check failed (exit status $rc): fix $conf and run it again:"
		echo "  $bin -c $conf check" >&2
		exit 1
	fi
	checked=1
fi

# ------------------------------------------------------------ next steps
echo
if [ -n "$url" ]; then
	hook_url=$url/podio-webhook.cgi
	echo "The hook URL: $hook_url"
else
	# Only the path is known here: the host name is the site's.
	hook_url=https://YOUR-HOST/PATH/podio-webhook.cgi
	pub=$(abspath "$HOME/public_html")
	case $web_dir/ in
	"$pub"/*)
		rel=${web_dir#"$pub"}
		user=$(id -un 2>/dev/null) || user=USER
		hook_url=https://YOUR-HOST$rel/podio-webhook.cgi
		echo "The hook URL (this script cannot know your host's name: put it"
		echo "in place of YOUR-HOST, or run ./install.sh again with --url):"
		echo "  https://YOUR-HOST$rel/podio-webhook.cgi"
		echo "    when ~/public_html is your site's document root, or"
		echo "  https://YOUR-HOST/~$user$rel/podio-webhook.cgi"
		echo "    when it is served as your user directory (/~$user/)" ;;
	*)
		echo "The hook URL: https://YOUR-HOST/PATH/podio-webhook.cgi, where"
		echo "https://YOUR-HOST/PATH is the address of $web_dir"
		echo "(or run ./install.sh again with --url https://YOUR-HOST/PATH)." ;;
	esac
fi
echo "Try it: curl -i $hook_url (405, Allow: POST)"

echo
[ "$checked" = 1 ] || echo "Once check passes:"
if grep -Eq '^[[:space:]]*hook[[:space:]]' "$conf"; then
	if [ -z "$(value hook_url)" ]; then
		echo "Set hook_url = $hook_url in $conf, then create the hooks"
		echo "that its hook lines declare:"
	else
		echo "Create the hooks that the hook lines of $conf declare:"
	fi
	echo "  $bin -c $conf hooks sync"
else
	app=$(value app_id)
	echo "Create the hook (once per event type; it prints the hook id):"
	echo "  $bin -c $conf hooks create app ${app:-YOUR-APP-ID} $hook_url item.create"
fi

echo
echo "Cron lines (crontab -e, or the host's cron panel): the stored events"
echo "every 5 minutes, old dead letters every night, inactive hooks hourly:"
echo "*/5 * * * * $bin -c $conf spool drain >/dev/null"
echo "30 3 * * * $bin -c $conf spool purge --dead --older-than 30d >/dev/null"
echo "0 * * * * $bin -c $conf hooks heal 2>&1"
exit 0
