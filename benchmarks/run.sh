#!/usr/bin/env bash
# `npm run bench`: installs what the benchmarks use (wrk, and the test components the
# later scenarios need), builds, and runs every scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/typescript ] || npm ci --no-audit --no-fund
bash test/setup/install.sh >/dev/null
npx tsc -p .
exec node dist/benchmarks/run.js "$@"
