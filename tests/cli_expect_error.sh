#!/usr/bin/env bash
# Runs a command that must fail cleanly: non-zero exit, no crash (exit < 128), exactly one line on stderr, and
# stderr matching the regex given first.   cli_expect_error.sh REGEX COMMAND [ARGS...]
regex=$1
shift
err=$("$@" 2>&1 >/dev/null)
rc=$?
lines=$(printf '%s\n' "$err" | grep -c .)
if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then echo "exit code $rc (want 1..127): $err"; exit 1; fi
if [ "$lines" -ne 1 ]; then echo "stderr has $lines lines (want 1): $err"; exit 1; fi
if ! printf '%s\n' "$err" | grep -Eq -- "$regex"; then echo "stderr does not match '$regex': $err"; exit 1; fi
echo "ok (exit $rc): $err"
