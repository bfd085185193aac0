#!/bin/sh
# Writes the environment this command was started with (NUL-separated,
# exactly as given to execve, without what a shell adds) to the file $1.
# Not "exec cat": cat would see what the shell exports, PWD included.
cat /proc/$$/environ > "$1"
