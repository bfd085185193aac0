#!/bin/sh
# Appends the word $2 and a newline to the file $1.
printf '%s\n' "$2" >> "$1"
