#!/usr/bin/env bash
# `npm run bench`: installs what the benchmarks use (wrk, and the test components the
# later scenarios need), builds, and runs every scenario on Node 24 (test/setup/node.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/typescript ] && [ -x node_modules/.bin/node ] || npm ci --no-audit --no-fund
source test/setup/node.sh
bash test/setup/install.sh >/dev/null
npx tsc -p .
# Loopback only: no AWS SDK may look for the machine's metadata service.
export AWS_EC2_METADATA_DISABLED=true
exec node dist/benchmarks/run.js "$@"
