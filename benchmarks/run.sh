#!/usr/bin/env bash
# `npm run bench`: installs what the benchmarks use (wrk, and the test components the
# later scenarios need), builds, and runs every scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/typescript ] || npm ci --no-audit --no-fund
bash test/setup/install.sh >/dev/null
npx tsc -p .
# Loopback only: no AWS SDK may look for the machine's metadata service.
export AWS_EC2_METADATA_DISABLED=true AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
exec node dist/benchmarks/run.js "$@"
