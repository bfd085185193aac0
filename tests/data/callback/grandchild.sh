#!/bin/sh
# Leaves a sleeping grandchild holding stdin, stdout and stderr, writes
# its pid to the file $1, and exits 0.
sleep 300 &
echo "$!" > "$1"
echo "grandchild: left $!" >&2
exit 0
