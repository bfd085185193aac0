#!/bin/sh
# Writes two lines to stderr and exits with status $1.
echo "fail: first line" >&2
echo "fail: exiting with $1" >&2
exit "$1"
