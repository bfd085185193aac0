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
	# Installing nginx or apache2 may start the system's server on port
	# 80: nothing here uses it or touches its configuration.
	DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $_missing
}
