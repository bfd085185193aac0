#!/bin/sh
# Builds the self-contained CGI bundle (make cgi-bundle runs this from
# the top of the build directory):
#
#   podio-webhook-cgi-VERSION-ARCH.tar.gz, unpacking to
#   podio-webhook-cgi-VERSION-ARCH/
#     bin/podio-webhook       run path (DT_RPATH) $ORIGIN/../lib
#     lib/                    the shared libraries it needs, but glibc's
#     share/cacert.pem        CA certificates, for hosts that keep theirs
#                             elsewhere (ca_file in the sample points here)
#     web/podio-webhook.cgi   the CGI wrapper (install.sh fills it in)
#     web/htaccess            saved as .htaccess by install.sh
#     etc/podio-webhook.conf  the sample configuration
#     install.sh, INSTALL
#
# The program is built by a configure of its own in cgi-bundle-build/
# (from a copy of the distributed sources, so that a source tree that
# was configured in place works too), without PostgreSQL, with SQLite
# linked statically.  libcurl and its dependencies, and cJSON, have no
# usable static archives on Debian: they are carried in lib/ and found
# through the run path.  libcurl is not linked but loaded at the first
# API call (--enable-lazy-libcurl): a CGI run that only stores an event
# starts with cJSON and glibc alone, not libcurl's thirty libraries.
# (libfcgi is not linked at all: the program speaks FastCGI itself.)  The result is checked before it is packed:
# no library needed outside lib/ but glibc's, no glibc symbol version
# above 2.34; any failure fails the build.
#
# Environment: srcdir, builddir (absolute), VERSION, MAKE, CC, and
# optionally CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt).

set -eu

: "${srcdir:?}" "${builddir:?}" "${VERSION:?}"
MAKE=${MAKE:-make}
CC=${CC:-cc}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
GLIBC_MAX=2.34

arch=$(uname -m)
name=podio-webhook-cgi-$VERSION-$arch
work=$builddir/cgi-bundle-build
stage=$work/stage/$name
tarball=$builddir/$name.tar.gz

say() { printf 'cgi-bundle: %s\n' "$*"; }
die() { printf 'cgi-bundle: error: %s\n' "$*" >&2; exit 1; }

# glibc's own libraries, which every host has and which must not be
# carried (they go with the host's ld.so).
is_glibc() {
	case $1 in
	libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|libdl.so.*|\
	librt.so.*|libresolv.so.*|libutil.so.*|libanl.so.*|libnsl.so.1|\
	ld-linux*.so.*|linux-vdso.so.*|linux-gate.so.*)
		return 0 ;;
	esac
	return 1
}

# One build at a time in a build directory: tests that need the bundle
# may run make cgi-bundle at once, and would otherwise share
# cgi-bundle-build/.  The lock goes with the process (flock(1), from
# util-linux; without it, runs are not serialized).
mkdir -p "$work"
if [ -z "${PODIO_CGI_BUNDLE_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
	PODIO_CGI_BUNDLE_LOCKED=1 exec flock "$work.lock" /bin/sh "$0" "$@"
fi

for tool in readelf objdump strip ldd tar; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool is missing (binutils, libc-bin, tar)"
done
[ -r "$CA_BUNDLE" ] ||
	die "no CA bundle at $CA_BUNDLE (install ca-certificates, or set CA_BUNDLE)"

# SQLite's static archive, named by its path: -lsqlite3 would take the
# shared library.
sqlite_a=$($CC -print-file-name=libsqlite3.a)
case $sqlite_a in
/*) [ -f "$sqlite_a" ] || sqlite_a= ;;
*) sqlite_a= ;;
esac
[ -n "$sqlite_a" ] ||
	die "libsqlite3.a not found by $CC (install libsqlite3-dev)"

# ------------------------------------------------------------ build
# A tarball of an earlier run must not outlive a failed one: removed
# when this run fails from here on.  Until then it stays, and a new one
# replaces it in one rename (below): a test that runs make cgi-bundle
# while another copies the tarball must not take it away meanwhile.
trap 'rc=$?; [ "$rc" = 0 ] || rm -f "$tarball" "$tarball.tmp"' EXIT
mkdir -p "$work"
say "copying the sources to $work/src"
(cd "$builddir" && $MAKE distdir distdir="$work/src" \
	top_distdir="$work/src" >/dev/null) ||
	die "make distdir failed"

if [ ! -f "$work/obj/config.status" ] ||
   [ -n "$(find "$work/src/configure" "$0" -newer "$work/obj/config.status")" ]; then
	# From scratch: what an earlier configure wrote into the objects
	# and libtool's files (their libraries) would stay otherwise.
	rm -rf "$work/obj"
	mkdir -p "$work/obj"
	say "configuring in $work/obj (log: $work/obj/config.log)"
	# \$$ORIGIN: configure writes LDFLAGS into the Makefile, where
	# make turns $$ into $ and the shell \$ into $: the linker gets
	# $ORIGIN.  --disable-new-dtags: DT_RPATH, which (unlike
	# DT_RUNPATH) also applies to the libraries' own dependencies.
	(cd "$work/obj" && "$work/src/configure" --quiet \
		--without-postgresql --disable-shared --enable-lazy-libcurl \
		CC="$CC" CFLAGS='-O2' \
		LDFLAGS='-Wl,--disable-new-dtags,-rpath,\$$ORIGIN/../lib' \
		SQLITE_LIBS="$sqlite_a -lm") >/dev/null ||
		die "configure failed (see $work/obj/config.log)"
fi
say "building the program"
(cd "$work/obj" && $MAKE handler/podio-webhook >/dev/null) ||
	die "building the program failed (run make in $work/obj to see why)"
prog=$work/obj/handler/podio-webhook

# ------------------------------------------------------------ assemble
rm -rf "$work/stage"
mkdir -p "$stage/bin" "$stage/lib" "$stage/share" "$stage/web" \
	"$stage/etc"
cp "$prog" "$stage/bin/podio-webhook"
strip "$stage/bin/podio-webhook"
chmod 0755 "$stage/bin/podio-webhook"

# Every shared library the program loads, but glibc's, under its
# SONAME (the name the loader looks for), as a real file: those it
# links, and libcurl with its own, which it loads (dlopen) at its first
# API call only, so that a CGI run that makes none starts without them.
curl_so=$(ldconfig -p 2>/dev/null | awk '$1 == "libcurl.so.4" && /x86-64/ { print $NF; exit }')
[ -n "$curl_so" ] || curl_so=$(pkg-config --variable=libdir libcurl 2>/dev/null)/libcurl.so.4
[ -f "$curl_so" ] || die "libcurl.so.4 not found (install libcurl4-openssl-dev)"
{ ldd "$prog" && echo "	libcurl.so.4 => $curl_so (0)" && ldd "$curl_so"; } \
	> "$work/ldd.txt" || die "ldd $prog or $curl_so failed"
if grep -q 'not found' "$work/ldd.txt"; then
	cat "$work/ldd.txt" >&2
	die "the program needs a library that is not installed"
fi
awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' "$work/ldd.txt" |
while read -r needed path; do
	is_glibc "$needed" && continue
	real=$(readlink -f "$path")
	soname=$(readelf -d "$real" |
		sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
	[ -n "$soname" ] || soname=$needed
	cp "$real" "$stage/lib/$soname"
	strip --strip-unneeded "$stage/lib/$soname"
	chmod 0644 "$stage/lib/$soname"
done

cp "$CA_BUNDLE" "$stage/share/cacert.pem"
cp "$srcdir/deploy/podio-webhook.cgi" "$stage/web/podio-webhook.cgi"
cp "$srcdir/deploy/htaccess" "$stage/web/htaccess"
# The CGI sample, with ca_file (filled in by install.sh) before its
# state section.
awk '/^# Save it as e\.g\./ {
	print "# install.sh of the CGI bundle wrote this file and never replaces it:"
	print "# fill in the credentials and the secret below, then run install.sh"
	print "# again (it runs check)."
	print "#"
	skip = 1
}
/^# Check it from a shell/ { skip = 0 }
skip { next }
/^# -+ state$/ && !done {
	print "# -------------------------------------------------------------------- TLS"
	print "# The CA certificates the API'"'"'s certificate is checked against: the"
	print "# copy that came with the bundle, for hosts that keep theirs elsewhere."
	print "ca_file = @CA_FILE@"
	print ""
	done = 1
}
{ print }' "$srcdir/deploy/podio-webhook-cgi.conf" > "$stage/etc/podio-webhook.conf"
grep -q '^ca_file = @CA_FILE@$' "$stage/etc/podio-webhook.conf" &&
	grep -q '^# install.sh of the CGI bundle' "$stage/etc/podio-webhook.conf" ||
	die "deploy/podio-webhook-cgi.conf changed: adapt the sample's edits in $0"
cp "$srcdir/deploy/cgi-bundle/install.sh" "$stage/install.sh"
cp "$srcdir/deploy/cgi-bundle/INSTALL" "$stage/INSTALL"
chmod 0755 "$stage/install.sh"
chmod 0644 "$stage/share/cacert.pem" "$stage/web/podio-webhook.cgi" \
	"$stage/web/htaccess" "$stage/etc/podio-webhook.conf" "$stage/INSTALL"

# ------------------------------------------------------------ check
fail=0
bad() { printf 'cgi-bundle: check: %s\n' "$*" >&2; fail=1; }

rpath=$(readelf -d "$stage/bin/podio-webhook" |
	sed -n 's/.*(RPATH).*\[\(.*\)\].*/\1/p')
[ "$rpath" = '$ORIGIN/../lib' ] ||
	bad "bin/podio-webhook: RPATH is '$rpath', not '\$ORIGIN/../lib'"
for f in "$stage/bin/podio-webhook" "$stage"/lib/*; do
	[ -f "$f" ] || continue
	rel=${f#"$stage"/}
	readelf -d "$f" | grep -q '(RUNPATH)' &&
		bad "$rel: has a RUNPATH, which hides the program's RPATH"
	for n in $(readelf -d "$f" |
			sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'); do
		is_glibc "$n" || [ -f "$stage/lib/$n" ] ||
			bad "$rel: needs $n, which is neither in lib/ nor glibc's"
	done
	max=$(objdump -T "$f" | grep -o 'GLIBC_[0-9][0-9.]*' |
		sed 's/^GLIBC_//' | sort -u -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
	if [ -n "$max" ]; then
		top=$(printf '%s\n%s\n' "$max" "$GLIBC_MAX" |
			sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
		[ "$top" = "$GLIBC_MAX" ] ||
			bad "$rel: needs GLIBC_$max (above $GLIBC_MAX):" \
			    "$(objdump -T "$f" | grep -E "GLIBC_$max[^0-9.]" |
			       awk '{ print $NF }' | tr '\n' ' ')"
	fi
	objdump -T "$f" | grep -q 'GLIBC_PRIVATE' &&
		bad "$rel: uses GLIBC_PRIVATE symbols"
done
# What the loader takes, with the bundle in place: every library but
# glibc's from lib/.
stage_real=$(readlink -f "$stage")
LD_LIBRARY_PATH= ldd "$stage/bin/podio-webhook" > "$work/ldd-bundle.txt" ||
	bad "ldd of bin/podio-webhook failed"
while read -r needed arrow path rest; do
	[ "$arrow" = "=>" ] || continue
	is_glibc "$needed" && continue
	case $(readlink -f "$path") in
	"$stage_real/lib/"*) ;;
	*) bad "bin/podio-webhook loads $needed from $path, not from lib/" ;;
	esac
done < "$work/ldd-bundle.txt"
LD_LIBRARY_PATH= "$stage/bin/podio-webhook" --version >/dev/null 2>&1 ||
	bad "bin/podio-webhook --version fails"
[ -f "$stage/lib/libcurl.so.4" ] ||
	bad "lib/libcurl.so.4 is missing (the program loads it at its first API call)"
if [ "$fail" != 0 ]; then
	cat "$work/ldd-bundle.txt" >&2
	die "the bundle failed its check (see above); nothing was packed"
fi

# ------------------------------------------------------------ pack
rm -f "$tarball.tmp"
tar -C "$work/stage" --owner=0 --group=0 --numeric-owner \
	-czf "$tarball.tmp" "$name"
mv -f "$tarball.tmp" "$tarball"
nlibs=$(ls "$stage/lib" | wc -l)
size=$(wc -c < "$tarball")
say "$name.tar.gz: $size bytes, $nlibs libraries in lib/, glibc $GLIBC_MAX or later"
