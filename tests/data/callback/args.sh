#!/bin/sh
# Writes every argument after $1 to the file $1, each followed by a NUL.
out=$1
shift
printf '%s\0' "$@" > "$out"
