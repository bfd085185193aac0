# tests/packages.sh: sourced by tests/demo and tests/run.  Reads the
# Debian package list deploy/packages.txt (one group a line,
# "GROUP: PACKAGE...") and installs what is missing.
#
# packages_of GROUP...     prints the packages of the groups, each once
# packages_install GROUP...
#                          installs the missing ones with apt-get (as
#                          root on Debian); returns non-zero, saying why
#                          on stderr, when they are missing and cannot
#                          be installed.  PODIO_SKIP_DEPS=1 skips it.
# Needs $top, the top of the source tree.
#
# Services: the tests start what they need themselves, never a system
# service.  When a package that would start one (packages_no_start:
# postgresql, prometheus, whose promtool the tests use) is to be
# installed, the whole install runs with every service start refused (a
# policy-rc.d that exits 101, there only meanwhile, and only when the
# system had none).  PostgreSQL: the tests start private servers of
# their own (tests/pgserver.py); Debian's postgresql package would also
# create a cluster "main" on port 5432, so postgresql-common goes first
# and its createcluster.conf gets create_main_cluster = false.
# $packages_root (empty: /) is where those two files are looked for:
# tests/test-packages.py runs packages_install against a fake apt-get.
packages_no_start="postgresql prometheus"

packages_of() {
	for _g in "$@"; do
		sed -n "s/^$_g:[[:space:]]*//p" "$top/deploy/packages.txt"
	done | tr ' ' '\n' | awk 'NF && !seen[$0]++'
}

packages_install() {
	[ "${PODIO_SKIP_DEPS:-0}" = 1 ] && return 0
	if [ ! -r "$top/deploy/packages.txt" ]; then
		echo "$top/deploy/packages.txt is missing" >&2
		return 1
	fi
	_missing=
	for _p in $(packages_of "$@"); do
		dpkg-query -W -f='${Status}\n' "$_p" 2>/dev/null |
			grep -q 'ok installed' || _missing="$_missing $_p"
	done
	if [ -z "$_missing" ]; then
		echo "   everything is installed"
		return 0
	fi
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "missing packages:$_missing (install them, or run this as root on Debian)" >&2
		return 1
	fi
	echo "   installing:$_missing"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq || return
	for _p in $packages_no_start; do
		case " $_missing " in
		*" $_p "*)
			packages_refusing_starts packages_apt $_missing
			return
			;;
		esac
	done
	# Installing nginx or apache2 may start the system's server on port
	# 80: nothing here uses it or touches its configuration.
	# apache2-suexec-pristine (tests/e2e/test-cgi-bundle-hosts.py) starts
	# nothing: it needs only apache2-bin, and its postinst just makes it
	# the suexec alternative (/usr/lib/apache2/suexec).
	packages_apt $_missing
}

# packages_apt PACKAGE...: installs the packages (postgresql first
# without a cluster of the system's, when it is one of them).
packages_apt() {
	case " $* " in
	*" postgresql "*)
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends postgresql-common &&
			packages_no_main_cluster || return
		;;
	esac
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "$@"
}

# packages_refusing_starts COMMAND...: runs the command with every
# service start refused (see the top).
packages_refusing_starts() {
	_policy="${packages_root:-}/usr/sbin/policy-rc.d"
	_own_policy=0
	if [ ! -e "$_policy" ]; then
		printf '#!/bin/sh\nexit 101\n' > "$_policy" &&
			chmod 755 "$_policy" && _own_policy=1 || return 1
	fi
	"$@"
	_rc=$?
	[ "$_own_policy" = 1 ] && rm -f "$_policy"
	return $_rc
}

# Sets create_main_cluster = false in postgresql-common's
# createcluster.conf: the line edited in place (commented out or not),
# or added when there is none; the rest of the file kept.
packages_no_main_cluster() {
	_conf="${packages_root:-}/etc/postgresql-common/createcluster.conf"
	if [ ! -f "$_conf" ]; then
		echo "$_conf is missing after installing postgresql-common" >&2
		return 1
	fi
	_line='^[#[:space:]]*create_main_cluster[[:space:]]*='
	if grep -Eq "$_line" "$_conf"; then
		sed -i -E "s/$_line.*\$/create_main_cluster = false/" "$_conf"
	else
		echo 'create_main_cluster = false' >> "$_conf"
	fi
}
