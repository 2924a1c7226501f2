#!/usr/bin/env bash
# The test command (`npm test`): installs the real components, type-checks, then runs
# every test inside a network namespace that has only a loopback interface, so nothing
# in the suite can reach 169.254.169.254 or any other address of the machine's own
# network. Tests build their own namespaces (pods, node, DNAT) from inside it.
# Runs on Node 24 from node_modules (test/setup/node.sh), whatever the machine's Node is.
# Ends with one line: `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/../.."

summary() { echo "$1 passed, $2 failed"; }

if [ ! -d node_modules/tap ] || [ ! -x node_modules/.bin/node ]; then
  npm ci --no-audit --no-fund || { summary 0 1; exit 1; }
fi
source test/setup/node.sh || { summary 0 1; exit 1; }
CACHE=$(bash test/setup/install.sh) || { echo "test setup failed" >&2; summary 0 1; exit 1; }
npx tsc -p . || { echo "type check or build failed" >&2; summary 0 1; exit 1; }  # type-checks everything, builds dist/ for the CLI tests
npx biome check || { echo "lint or format check failed (npm run lint; npm run format fixes formatting)" >&2; summary 0 1; exit 1; }

RUN=k2i$$
cleanup() {
  # Anything a crashed test left running inside the sandbox goes with it.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$RUN" || true); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
}
trap cleanup EXIT
ip netns add "$RUN" || { echo "cannot create the test network namespace (root needed)" >&2; summary 0 1; exit 1; }
ip -n "$RUN" link set lo up

OUT=$(mktemp)
# Loopback-only settings for every AWS SDK the tests start; a test that needs IMDS sets
# the endpoint to its own server.
ip netns exec "$RUN" env \
  KUBE2IAM_TEST_CACHE="$CACHE" KUBE2IAM_TEST_RUN="$RUN" CI=true \
  AWS_EC2_METADATA_DISABLED=true AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9 \
  npx tap "$@" 2>&1 | tee "$OUT"
rc=${PIPESTATUS[0]}
echo "runtime: Node $(node --version) ($(command -v node)), for tap and every process the tests start"
node -e '
  const s = require("fs").readFileSync(process.argv[1], "utf8");
  const m = [...s.matchAll(/^# (\{ total: .*\})$/gm)].pop();
  if (!m) { console.log("0 passed, 1 failed"); process.exit(0); }
  const o = Function("return " + m[1])();
  // A non-zero exit with no failed assertion (a crashed file, say) still counts as a failure.
  const failed = (o.fail ?? 0) || (process.argv[2] === "0" ? 0 : 1);
  console.log(`${o.pass ?? 0} passed, ${failed} failed`);
' "$OUT" "$rc"
rm -f "$OUT"
exit "$rc"
