#!/bin/sh
# Writes 300000 bytes to stdout and 200000 to stderr, then a last line to
# stderr, and exits 1.
head -c 300000 /dev/zero
head -c 200000 /dev/zero | tr '\0' x >&2
echo >&2
echo "noisy: THE END" >&2
exit 1
