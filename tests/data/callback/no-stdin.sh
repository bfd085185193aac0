#!/bin/sh
# Never reads its stdin.
echo "no-stdin: did not read" >&2
exit 0
