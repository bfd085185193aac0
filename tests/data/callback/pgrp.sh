#!/bin/sh
# Writes /proc/PID/stat of this command (pid, state, ppid, process group...)
# to the file $1.
cat /proc/$$/stat > "$1"
