#!/bin/sh
# Writes "SHELL_PID SLEEPER_PID" to the file $1 and runs far beyond any
# timeout of the tests.
sleep 300 &
echo "$$ $!" > "$1"
echo "slow: started, now sleeping" >&2
sleep 300
exit 0
