#!/usr/bin/env bash
# Cold start of `oauth2-host token` with a cached token, as a whole process, measured by hyperfine
# without and with the compiled-component cache (BENCHMARKS.md).
#
#   host-harness/runtime/benches/cold_start.sh            # builds target/release/oauth2-host if needed
#   OAUTH2_HOST=/path/to/oauth2-host host-harness/runtime/benches/cold_start.sh
#
# Needs hyperfine (`apt-get install -y hyperfine`) and python3. A throwaway loopback token
# endpoint issues one token (expires_in 86400) that `oauth2-host token` stores; the endpoint is
# then stopped, so every measured run is served from the store and never reaches the network.
#
# "without cache": OAUTH2_HOST_CACHE_DIR set empty, which turns the cache off: every run compiles.
# "with cache": OAUTH2_HOST_CACHE_DIR names a cache that hyperfine's warm-up runs fill.
set -euo pipefail

workspace="$(cd "$(dirname "$0")/../../.." && pwd)"
bin="${OAUTH2_HOST:-$workspace/target/release/oauth2-host}"
runs="${RUNS:-30}"
if [[ -z "${OAUTH2_HOST:-}" ]]; then
    (cd "$workspace" && cargo build --release -p oauth2-host --bin oauth2-host)
fi
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (apt-get install -y hyperfine)" >&2; exit 1; }

dir="$(mktemp -d)"
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# The token endpoint: any POST gets a fresh bearer token that lives a day.
cat >"$dir/token_endpoint.py" <<'EOF'
import http.server, json, sys
class Token(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "cold-start-token", "token_type": "Bearer",
                           "expires_in": 86400, "scope": "orders:read"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Token)
open(sys.argv[1], "w").write(str(server.server_port))
server.serve_forever()
EOF
python3 "$dir/token_endpoint.py" "$dir/port" &
server_pid=$!
for _ in $(seq 50); do [[ -s "$dir/port" ]] && break; sleep 0.1; done
port="$(cat "$dir/port")"

cat >"$dir/cc.json" <<EOF
{
  "grant_type": "client_credentials",
  "token_url": "http://127.0.0.1:$port/token",
  "client_id": "cold-start",
  "client_secret": "cold-start-secret",
  "scope": "orders:read"
}
EOF
store="$dir/store.json"
cd "$dir"
printf %s 's3cr:t' | "$bin" secret set cold-start-secret --store "$store"
echo "first run (fetches and stores the token):"
"$bin" token --config "$dir/cc.json" --store "$store"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
echo "second run (cached token, endpoint stopped):"
"$bin" token --config "$dir/cc.json" --store "$store"

token_cmd="$bin token --config $dir/cc.json --store $store"
hyperfine -N --warmup 3 --runs "$runs" \
    --export-json "$dir/without.json" \
    -n "token, without compiled-component cache" \
    "env OAUTH2_HOST_CACHE_DIR= $token_cmd"
hyperfine -N --warmup 3 --runs "$runs" \
    --export-json "$dir/with.json" \
    -n "token, with compiled-component cache (OAUTH2_HOST_CACHE_DIR)" \
    "env OAUTH2_HOST_CACHE_DIR=$dir/cache $token_cmd"
for run in without with; do
    python3 - "$dir/$run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("median %.1f ms  (%s)" % (r["median"] * 1000, r["command"]))
PY
done
echo "cache directory after the runs:"
ls -l "$dir/cache"
