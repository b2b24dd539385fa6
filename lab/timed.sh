#!/usr/bin/env bash
# Run a command and print how long it took: lab/timed.sh LABEL COMMAND [ARG...]
set -uo pipefail
label="$1"; shift
start=$(date +%s)
printf '\n>>> %s: started %s\n' "$label" "$(date -u +%H:%M:%S)"
"$@"
rc=$?
printf '<<< %s: %s after %ss\n' "$label" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")" "$(( $(date +%s) - start ))"
exit $rc
