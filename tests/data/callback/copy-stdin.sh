#!/bin/sh
# Copies the event on stdin to the file $1.
exec cat > "$1"
