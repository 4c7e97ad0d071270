#!/usr/bin/env bash
# Load check for replay: new-session invites per second and the proxy's memory.
# Usage: scripts/load.sh [seconds] [connections]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# a bot that takes every notification
python3 -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(202); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 39781), H).serve_forever()' &
botpid=$!
trap 'kill "$pid" "$botpid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
./target/release/graphvcr replay --cassette invite-one-participant --store "$tmp/store" \
  --listen 127.0.0.1:0 --timing fast --bot-url http://127.0.0.1:39781 --max-sessions 1000000 \
  --log warn > "$tmp/out" 2> "$tmp/err" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$tmp/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http:[^ ]*\) (graph)$/\1/p' "$tmp/out")
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$pid/status"; }
echo "graphvcr replay at $url, RSS at start: $(rss)"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s scripts/load.lua "$url"
sleep 2
sessions=$(curl -s "$url/_graphvcr/sessions" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(1 for x in r if x["active"]))')
echo "live sessions after the run: $sessions, RSS: $(rss)"
