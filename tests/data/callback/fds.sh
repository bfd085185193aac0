#!/bin/sh
# Writes the open fds of a program started from here to the file $1, one
# a line: 0, 1, 2 and the directory ls reads (3), when nothing else leaked.
exec /bin/ls /proc/self/fd > "$1"
