# Sourced by the test, benchmark and demo scripts (from the repository's root): Node 24
# LTS, which the project brings itself as the `node` devDependency (a real Node binary
# from the npm registry at node_modules/.bin/node), first on PATH for the script and
# everything it starts, whatever Node the machine has (Node 20 here). Stops rather than
# fall back to the machine's Node.
export PATH="$PWD/node_modules/.bin:$PATH"
NODE_VERSION=$(node --version 2>/dev/null || true)
case "$NODE_VERSION" in
  v24.*) ;;
  *) echo "Node 24 is not in node_modules/.bin (node --version: ${NODE_VERSION:-none}); run npm ci" >&2; return 1 ;;
esac
