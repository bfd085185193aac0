#!/bin/sh
# tests/fuzz/run.sh: builds the libFuzzer harnesses and runs each one,
# printing TAP (two results a harness).  `make fuzz` runs it through
# automake's TAP driver (results in tests/fuzz/run.trs and run.log of the
# build directory); it also runs by hand:
#
#     tests/fuzz/run.sh [BUILDDIR]     # BUILDDIR: a configured build
#
# For each harness tests/fuzz/fuzz-NAME.c it
#   1. builds fuzz-NAME with clang-16 (-fsanitize=fuzzer,address,undefined
#      -g -O1) against the library's sources (lib/*.c and lib/spool/*.c,
#      compiled once into an archive) and the config.h of BUILDDIR;
#   2. runs it once over every file of its seed corpus tests/fuzz/NAME/
#      (the inputs of crashes fixed before are kept there: a regression
#      test), result "NAME: corpus";
#   3. fuzzes for FUZZ_SECONDS seconds (default 60), result "NAME: N s of
#      fuzzing".  New inputs go to a scratch corpus (BUILDDIR/fuzz-out/
#      corpus/NAME/), never into the seed corpus in the source tree; a
#      crash, leak or timeout is kept as BUILDDIR/fuzz-out/crashes/NAME-*
#      and fails the result, with the command that reproduces it.
#
# Environment: FUZZ_SECONDS (the fuzzing time of each harness),
# FUZZ_HARNESSES (names to run, e.g. "params config"; default all),
# FUZZ_CC (default clang-16), FUZZ_JOBS (parallel compiles, default the
# CPUs).  Without clang-16 and libFuzzer's runtime (Debian's packages
# clang-16 and libclang-rt-16-dev, in the test group of
# deploy/packages.txt) it skips everything, saying so.
#
# Adding a harness: write tests/fuzz/fuzz-NAME.c defining
# LLVMFuzzerTestOneInput() (include "fuzz.h"; use FUZZ_CHECK for what the
# code promises; no network, no files left, nothing leaked), and put a
# few small seed inputs in tests/fuzz/NAME/.  Optionally
# tests/fuzz/NAME.dict is given to libFuzzer as its dictionary.  Nothing
# else to change: this script finds fuzz-*.c, and tests/fuzz is
# distributed whole.
set -u

top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${1:-${top_builddir:-$(pwd)}}
seconds=${FUZZ_SECONDS:-60}
cc=${FUZZ_CC:-clang-16}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
out="$build/fuzz-out"

case $seconds in
''|*[!0-9]*)
	echo "Bail out! FUZZ_SECONDS must be a number of seconds: $seconds"
	exit 1 ;;
esac
if [ ! -f "$build/config.h" ]; then
	echo "Bail out! $build/config.h is missing: run configure there first"
	exit 1
fi

names=
for f in "$top"/tests/fuzz/fuzz-*.c; do
	[ -f "$f" ] || continue
	n=${f##*/fuzz-}
	n=${n%.c}
	if [ -n "${FUZZ_HARNESSES:-}" ]; then
		case " $FUZZ_HARNESSES " in *" $n "*) ;; *) continue ;; esac
	fi
	names="$names $n"
done
if [ -z "$names" ]; then
	echo "1..0 # SKIP no harness to run"
	exit 0
fi

# The toolchain: clang-16 that links libFuzzer.
mkdir -p "$out/obj" "$out/bin" "$out/log" "$out/corpus" "$out/crashes" || exit 1
printf '%s\n' 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);' \
	'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)' \
	'{ (void)d; (void)n; return 0; }' >"$out/obj/probe.c"
if ! command -v "$cc" >/dev/null 2>&1 ||
	! "$cc" -fsanitize=fuzzer,address,undefined "$out/obj/probe.c" \
		-o "$out/obj/probe" >"$out/log/probe.log" 2>&1; then
	echo "1..0 # SKIP $cc with libFuzzer is not installed" \
		"(Debian packages clang-16 and libclang-rt-16-dev)"
	exit 0
fi

# What the library needs, from pkg-config as configure found it.
dep_cflags=''
dep_libs=''
deps="libcurl:-lcurl libcjson:-lcjson sqlite3:-lsqlite3"
# The PostgreSQL spool backend when the build has it (config.h).
srcs=$(ls "$top"/lib/*.c "$top"/lib/spool/*.c)
if grep -q '^#define HAVE_POSTGRESQL 1' "$build/config.h" 2>/dev/null; then
	deps="$deps libpq:-lpq"
else
	srcs=$(printf '%s\n' $srcs | grep -v '/lib/spool/pg[^/]*\.c$')
fi
for m in $deps; do
	if pkg-config --exists "${m%%:*}" 2>/dev/null; then
		dep_cflags="$dep_cflags $(pkg-config --cflags "${m%%:*}")"
		dep_libs="$dep_libs $(pkg-config --libs "${m%%:*}")"
	else
		dep_libs="$dep_libs ${m#*:}"
	fi
done
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# Function names and lines in the reports: llvm-symbolizer (the llvm-16
# package) when installed, else binutils' addr2line.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
	for s in llvm-symbolizer-16 llvm-symbolizer addr2line; do
		if command -v "$s" >/dev/null 2>&1; then
			ASAN_SYMBOLIZER_PATH=$(command -v "$s")
			export ASAN_SYMBOLIZER_PATH
			break
		fi
	done
fi
# -iquote: "config.h" is the library's (lib/config.h), <config.h>
# configure's.
cflags="-g -O1 -fno-omit-frame-pointer $san -pthread -iquote $top/lib"
cflags="$cflags -iquote $top/lib/spool"
cflags="$cflags -I$build $dep_cflags"

failed=0
count=0
for n in $names; do count=$((count + 2)); done
echo "1..$count"
t=0

# The library, compiled once for all harnesses (in parallel).  A failure
# here fails every result, with the compiler's words in the log.
lib_ok=1
rm -f "$out/obj/"*.o "$out/obj/libpodio-fuzz.a"
# shellcheck disable=SC2016  # expanded by the inner shell
if ! printf '%s\n' $srcs | xargs -P "$jobs" -I{} sh -c \
	'b=${4##*/}; exec "$1" $2 -fsanitize=fuzzer-no-link -c "$4" \
		-o "$3/obj/${b%.c}.o"' \
	sh "$cc" "$cflags" "$out" {} >"$out/log/lib.log" 2>&1 ||
	! ar rcs "$out/obj/libpodio-fuzz.a" "$out/obj/"*.o \
		>>"$out/log/lib.log" 2>&1; then
	lib_ok=0
fi

# diag LOG: the end of LOG as TAP diagnostics, printable bytes only.
diag() {
	tail -n 25 "$1" | LC_ALL=C tr -c '\n[:print:]' '?' | sed 's/^/# /'
}

# report LOG: what went wrong in LOG and the stack, as diagnostics.
report() {
	awk '/check failed: |ERROR: |runtime error: / { on = 1 }
		on && n < 30 { print; n++ }' "$1" |
		LC_ALL=C tr -c '\n[:print:]' '?' | sed 's/^/# /'
}

# result OK|FAIL TEXT [LOG]: one TAP line, then the end of LOG as
# diagnostics on failure.
result() {
	t=$((t + 1))
	if [ "$1" = OK ]; then
		printf 'ok %d - %s\n' "$t" "$2"
		return
	fi
	printf 'not ok %d - %s\n' "$t" "$2"
	[ -n "${3:-}" ] && [ -f "$3" ] && diag "$3"
	failed=1
}

# figure NAME LOG: a -print_final_stats figure of LOG, or "?".
figure() {
	v=$(sed -n "s/^stat::$1:[[:space:]]*//p" "$2" | tail -n 1)
	echo "${v:-?}"
}

# what LOG: the first line of LOG saying what went wrong (a sanitizer's
# report, a failed check, undefined behaviour), printable bytes only.
what() {
	sed -n 's/^==[0-9]*== *ERROR: //p
		s/^.*check failed: /check failed: /p
		s/^.*runtime error: /runtime error: /p' "$1" |
		head -n 1 | LC_ALL=C tr -c '\n[:print:]' '?'
}

for n in $names; do
	bin="$out/bin/fuzz-$n"
	seeds="$top/tests/fuzz/$n"
	dict=
	[ -f "$top/tests/fuzz/$n.dict" ] && dict="-dict=$top/tests/fuzz/$n.dict"
	if [ $lib_ok != 1 ]; then
		result FAIL "$n: corpus (the library does not build)" \
			"$out/log/lib.log"
		result FAIL "$n: fuzzing (the library does not build)"
		continue
	fi
	# shellcheck disable=SC2086  # the flags are words
	if ! "$cc" $cflags -fsanitize=fuzzer "$top/tests/fuzz/fuzz-$n.c" \
		"$out/obj/libpodio-fuzz.a" $dep_libs -o "$bin" \
		>"$out/log/$n.build.log" 2>&1; then
		result FAIL "$n: corpus (the harness does not build)" \
			"$out/log/$n.build.log"
		result FAIL "$n: fuzzing (the harness does not build)"
		continue
	fi

	# 1. Every seed once.
	files=0
	[ -d "$seeds" ] && files=$(find "$seeds" -type f | wc -l)
	if [ "$files" -eq 0 ]; then
		result FAIL "$n: corpus (no seed inputs in tests/fuzz/$n/)"
	else
		if (cd "$seeds" && find . -type f -exec "$bin" -runs=1 {} + \
			>"$out/log/$n.corpus.log" 2>&1); then
			result OK "$n: corpus ($files inputs)"
		else
			result FAIL "$n: corpus ($files inputs): an input fails"
			report "$out/log/$n.corpus.log"
		fi
	fi

	# 2. Fuzzing from the seeds, new inputs kept apart.
	mkdir -p "$out/corpus/$n"
	log="$out/log/$n.fuzz.log"
	# shellcheck disable=SC2086
	if "$bin" -max_total_time="$seconds" -timeout=10 -max_len=16384 \
		-print_final_stats=1 -artifact_prefix="$out/crashes/$n-" \
		$dict "$out/corpus/$n" "$seeds" >"$log" 2>&1; then
		runs=$(figure number_of_executed_units "$log")
		rate=$(figure average_exec_per_sec "$log")
		new=$(figure new_units_added "$log")
		result OK "$n: $seconds s of fuzzing ($runs runs, $rate/s, $new new inputs)"
		continue
	fi
	crash=$(sed -n 's/^.*Test unit written to //p' "$log" | tail -n 1)
	if [ -z "$crash" ] || [ ! -f "$crash" ]; then
		result FAIL "$n: $seconds s of fuzzing: libFuzzer failed" "$log"
		continue
	fi
	result FAIL "$n: $seconds s of fuzzing: $(what "$log")"
	printf '# reproduce with: %s%s %s\n' \
		"${ASAN_SYMBOLIZER_PATH:+ASAN_SYMBOLIZER_PATH=$ASAN_SYMBOLIZER_PATH }" \
		"$bin" "$crash"
	printf '# then keep the input in tests/fuzz/%s/ once fixed\n' "$n"
	report "$log"
done
exit $failed
