#!/bin/sh
# Kills itself with SIGTERM.
kill -TERM $$
sleep 5
exit 0
