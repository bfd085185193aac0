#!/bin/sh
# Never reads its stdin, and takes a moment before it exits.
sleep 0.3
exit 0
