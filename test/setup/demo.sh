#!/usr/bin/env bash
# `npm run demo`: installs the npm dependencies if needed, builds, and runs test/demo.ts
# (moto as STS, the proxy on the example pods file, credentials asked from each pod's
# loopback address). Needs moto_server, which comes with the machine image.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d node_modules/typescript ] && [ -x node_modules/.bin/node ] || npm ci --no-audit --no-fund
source test/setup/node.sh
if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c 'import moto' 2>/dev/null; then
  echo "demo: moto_server (Python package moto) is missing; it plays STS in the demo" >&2
  exit 1
fi
npx tsc -p .
# Nothing in the demo may look for this machine's own metadata service.
export AWS_EC2_METADATA_DISABLED=true
exec node dist/test/demo.js
