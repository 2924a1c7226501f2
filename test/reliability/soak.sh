#!/usr/bin/env bash
# `npm run soak`: the reliability suite in its long form (each fault held 30 s, each
# attack run for 2 minutes, 60 pod generations per reused address, a 10-minute soak),
# inside the same loopback-only sandbox as `npm test`, then test/reliability/RESULTS.md
# from the figures it printed. About 30 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
LOG=$(mktemp)
RELIABILITY_LONG=1 SOAK_SECONDS=${SOAK_SECONDS:-600} HOSTILE_SECONDS=${HOSTILE_SECONDS:-120} \
  bash test/setup/run.sh --timeout 3600 test/reliability/*.test.ts | tee "$LOG"
rc=${PIPESTATUS[0]}
node dist/test/reliability/results.js "$LOG" "npm run soak"
rm -f "$LOG"
exit "$rc"
