#!/usr/bin/env bash
# The load benchmark (issue 11): graphvcr against a bare hyper 1.x server returning
# the same bytes, in ONE interleaved session (A/B alternated, ABBA order, every run on
# a fresh process), on 127.0.0.1 only. Workloads:
#   a   a new call per request (every request a new replay session), -c CONNS; no
#       --bot-url, so its notifications are built, queued and reported undeliverable
#   a1  the same at one connection (latency)
#   b   one live session: the same ids every time, x-graphvcr-session fixed
#   c   a new call per request with its 2 notifications delivered to a fast Rust sink
#       (examples/sink.rs): notifications/s, and that none were lost or reordered;
#       each notification signed (RS256), as replay does by default
#   cn  the same with --notify-auth none (delivery without the signing)
#   x   the same traffic with the bot down (nothing listens at --bot-url): what a bot
#       that is down costs per request, against c
#   d   record in front of a fast local upstream (examples/bare_hyper.rs answering
#       like Graph) against the upstream direct, -c CONNS
#   d1  the same at one connection (what record adds to p50)
#   f   fan-out: 1,000 new calls sent at once (examples/fire.rs), each with 3
#       notifications (a generated cassette), to the sink: the wall time from the
#       first request to the last notification, none lost, order per call
#   f1  one session alone: one call whose invite triggers 20,000 notifications:
#       notifications/s
#   e   a large cassette (--big N exchanges, default 10000, each invite with its 2
#       notifications; examples/gen_cassette.rs): start-up time to `listening` on a
#       fresh store (JSON import + load + prepare) and again (load + prepare), then a
#       new call per request against it, with its RSS
# Each run prints req/s, p50, p99, CPU us per request (utime+stime from /proc/PID/stat
# over the run / requests; c, cn: until the sink stopped receiving), RSS at start,
# peak (VmHWM) and end, and the ratio to bare hyper (d: record / direct), then a
# Markdown table of the ranges over rounds. Installs wrk (apt) when missing, else oha
# (cargo). --quick: 3 s runs; --log: graphvcr's log level (default error: the
# per-request lines off); --replay-args: extra flags for every graphvcr replay.
#
# Usage: scripts/bench.sh [--quick] [--seconds N] [--rounds N] [--connections N]
#          [--only a,a1,b,c,cn,x,f,f1,d,d1,e] [--big N] [--log LEVEL] [--replay-args "ARGS"] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

secs=10 rounds=2 conns=32 only="a a1 b c cn x f f1 d d1 e" big=10000 log=error replay_args="" build=1
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) secs=3 ;;
    --seconds) secs=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --connections) conns=$2; shift ;;
    --only) only=${2//,/ }; shift ;;
    --big) big=$2; shift ;;
    --log) log=$2; shift ;;
    --replay-args) replay_args=$2; shift ;;
    --no-build) build=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[ "$rounds" -ge 2 ] || echo "note: fewer than 2 rounds: A/B is not alternated twice" >&2

# ---- tools -------------------------------------------------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
install_tools() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "installing rust (rustup, minimal profile)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  local missing=()
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (apt-get)"
    if as_root apt-get update -qq; then as_root apt-get install -y -qq "${missing[@]}" >/dev/null || true; fi
  fi
  for t in curl python3; do command -v $t >/dev/null 2>&1 || { echo "bench.sh needs $t" >&2; exit 1; }; done
  if command -v wrk >/dev/null 2>&1; then
    loadgen=wrk
  else
    command -v oha >/dev/null 2>&1 || { echo "no wrk and no apt-get: installing oha (cargo)"; cargo install oha --locked; }
    loadgen=oha
    echo "note: oha cannot mint body ids per request: new-call workloads send fresh call ids in the" >&2
    echo "      path and a body without clientContext/replacesCallId (approximate; wrk is the reference)" >&2
  fi
}
install_tools

target=${CARGO_TARGET_DIR:-target}
if [ "$build" = 1 ]; then
  echo "building release (graphvcr, examples bare_hyper, sink, gen_cassette, fire)"
  cargo build --release --quiet --bin graphvcr --example bare_hyper --example sink --example gen_cassette --example fire
fi
vcr=$target/release/graphvcr hyper=$target/release/examples/bare_hyper sink=$target/release/examples/sink
gen=$target/release/examples/gen_cassette fire=$target/release/examples/fire
for b in "$vcr" "$hyper" "$sink" "$gen" "$fire"; do [ -x "$b" ] || { echo "missing $b (run without --no-build)" >&2; exit 1; }; done

# ---- processes ---------------------------------------------------------------------
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start OUT CMD...: runs CMD in the background (stdout OUT, stderr OUT.err); sets $pid, $url
start() {
  local out=$1; shift
  : >"$out" # emptied here, not by the child: no stale `listening on` line is read
  "$@" >"$out" 2>"$out.err" &
  pid=$!
  pids+=("$pid")
  url=""
  for _ in $(seq 1 6000); do
    url=$(sed -n 's/^listening on \(http:[^ ]*\).*$/\1/p' "$out" | head -1)
    [ -n "$url" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  echo "bench.sh: $* did not start:" >&2; cat "$out.err" >&2; exit 1
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
fresh() { printf '%08x-%04x-4000-8000-%04x%08x' "$1" $RANDOM $RANDOM $((RANDOM * 32768 + RANDOM)); }
invite_path() { echo "/beta/communications/calls/$(fresh 0xca11)/participants/invite"; }
invite_body() {
  printf '{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","replacesCallId":"%s","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"%s","identityProvider":"AAD"}}}],"clientContext":"%s"}' \
    "$(fresh 0x9292)" "$(fresh 0x05e7)" "$(fresh 0xc0c0)"
}
# check URL: one fresh invite must answer 200 (a wrong set-up is not measured)
check() {
  local code
  code=$(curl -s -o "$tmp/check.body" -w '%{http_code}' -X POST "$1$(invite_path)" \
    -H 'content-type: application/json' --data "$(invite_body)")
  [ "$code" = 200 ] || { echo "bench.sh: $1 answered $code to the invite: $(head -c 300 "$tmp/check.body")" >&2; exit 1; }
}

replay() { # [--cassette NAME --cassettes DIR --store DIR] extra flags...
  local picked=(--cassette invite-one-participant --store memory)
  [ "${1:-}" = --cassette ] && { picked=("$1" "$2" "$3" "$4" "$5" "$6"); shift 6; }
  # shellcheck disable=SC2086
  start "$tmp/vcr.out" "$vcr" replay "${picked[@]}" --ca-dir "$tmp/ca" \
    --listen 127.0.0.1:0 --timing fast --log "$log" "$@" $replay_args
}

# ---- one measured run --------------------------------------------------------------
# load URL MODE CONNS: runs the load generator; sets requests, rps, p50, p99 (ms), errs
load() {
  local url=$1 mode=$2 c=$3 line
  if [ "$loadgen" = wrk ]; then
    BENCH_MODE=$mode BENCH_RUN=$RANDOM wrk -t1 -c"$c" -d"${secs}s" -s scripts/bench.lua "$url" >"$tmp/load.out" 2>&1
    line=$(grep '^BENCH ' "$tmp/load.out") || { cat "$tmp/load.out" >&2; exit 1; }
    # BENCH requests=N duration_us=N p50_us=N ... -> w_requests=N ...
    eval "$(echo "${line#BENCH }" | tr ' ' '\n' | sed 's/^/w_/')"
    # shellcheck disable=SC2154
    requests=$w_requests errs=$((w_errors + w_status_errors))
    # shellcheck disable=SC2154
    read -r rps p50 p99 < <(awk -v r="$requests" -v d="$w_duration_us" -v a="$w_p50_us" -v b="$w_p99_us" \
      'BEGIN {printf "%.0f %.3f %.3f\n", r / (d / 1e6), a / 1000, b / 1000}')
  else
    oha_load "$url" "$mode" "$c"
  fi
}
oha_load() {
  local url=$1 mode=$2 c=$3
  local args=(-z "${secs}s" -w -c "$c" --no-tui --output-format json -m POST -H 'content-type: application/json')
  if [ "$mode" = live ]; then
    args+=(-H 'x-graphvcr-session: bench-live' -d "$(invite_body)" "$url$(invite_path)")
  else
    args+=(-d '{"participants":[{"identity":{"user":{"id":"278405a3-f568-4b3e-b684-009193463064","identityProvider":"AAD"}}}]}'
      --rand-regex-url "$url/beta/communications/calls/[0-9a-f]{8}-0000-4000-8000-[0-9a-f]{12}/participants/invite")
  fi
  oha "${args[@]}" >"$tmp/load.out"
  read -r requests rps p50 p99 errs < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1])); s = r["summary"]; p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {}); ok = int(codes.get("200", 0))
total = sum(int(v) for v in codes.values()) + sum(int(v) for v in r.get("errorDistribution", {}).values())
print(total, round(s["requestsPerSec"]), "%.3f" % (p["p50"] * 1000), "%.3f" % (p["p99"] * 1000), total - ok)' "$tmp/load.out")
}

# measure WORKLOAD ROUND SIDE PID URL MODE CONNS: one run, appended to results
measure() {
  local w=$1 r=$2 side=$3 p=$4 u=$5 mode=$6 c=$7 t0 t1 rss0
  t0=$(cpu_ticks "$p"); rss0=$(status_kb "$p" VmRSS)
  load "$u" "$mode" "$c"
  case $w in c*) drain_sink ;; esac
  t1=$(cpu_ticks "$p")
  local cpu
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.1f", n ? d * 1e6 / hz / n : 0}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$r" "$side" "$rps" "$p50" "$p99" "$cpu" \
    "$rss0" "$(status_kb "$p" VmHWM)" "$(status_kb "$p" VmRSS)" "$errs" >>"$tmp/results.tsv"
  printf '  %-3s round %s %-22s %8s req/s  p50 %7s ms  p99 %7s ms  %7s us CPU/req  RSS %s/%s/%s kB  errors %s  load %s\n' \
    "$w" "$r" "$side" "$rps" "$p50" "$p99" "$cpu" "$rss0" "$(status_kb "$p" VmHWM)" "$(status_kb "$p" VmRSS)" \
    "$errs" "$(cut -d' ' -f1 /proc/loadavg)"
}

# after a notification run: wait until the sink has stopped receiving (graphvcr's
# queues drained), at most 30 s
drain_sink() {
  local last=-1 now stable=0
  for _ in $(seq 1 150); do
    now=$(curl -s "$sink_url/" | sed -n 's/.*"notifications":\([0-9]*\).*/\1/p')
    if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
    [ "$stable" -ge 5 ] && return 0
    last=$now
    sleep 0.2
  done
}

# ---- workloads ---------------------------------------------------------------------
run_bare() { # WORKLOAD ROUND MODE CONNS
  start "$tmp/hyper.out" "$hyper" --response "$tmp/invite.http"
  check "$url"; measure "$1" "$2" "bare hyper" "$pid" "$url" "$3" "$4"; stop "$pid"
}
run_replay() { # WORKLOAD ROUND MODE CONNS
  replay; check "$url"; measure "$1" "$2" "graphvcr replay" "$pid" "$url" "$3" "$4"; stop "$pid"
}
run_notify() { # WORKLOAD ROUND LABEL [REPLAY FLAGS...]
  local w=$1 rd=$2 label=$3
  shift 3
  start "$tmp/sink.out" "$sink"; local sinkpid=$pid; sink_url=$url
  replay --bot-url "$sink_url" "$@"; local vcrpid=$pid vcrurl=$url
  check "$vcrurl"
  measure "$w" "$rd" "$label" "$vcrpid" "$vcrurl" new "$conns"
  stop "$vcrpid"; stop "$sinkpid"
  local summary counts
  summary=$(grep -h 'replay stopped' "$tmp/vcr.out" "$tmp/vcr.out.err" | tail -1)
  counts=$(tail -1 "$tmp/sink.out")
  python3 - "$summary" "$counts" "$w" "$rd" >>"$tmp/notes.txt" <<'EOF'
import json, re, sys
summary, counts, w, rnd = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
num = lambda what: int((re.search(r"(\d+) " + what, summary) or [0, 0])[1])
served, delivered, failed = num("served"), num("notifications delivered"), num("notifications failed")
got = counts["notifications"]
seqs = counts["sequences"]
lost = 2 * served - got
print(f"  {w:<3} round {rnd} notifications: {counts['rate_per_s']:.0f}/s delivered to the sink over {counts['span_s']} s; "
      f"{served} invites served, {delivered} delivered, {failed} failed, sink got {got} "
      f"({'none lost' if lost == 0 and failed == 0 else f'LOST {lost}'}); per-call order {seqs}")
EOF
  tail -1 "$tmp/notes.txt"
}
run_down() { # ROUND: workload c's traffic, nothing listening at the bot URL
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  replay --bot-url "http://127.0.0.1:$port"
  check "$url"; measure x "$1" "graphvcr, bot down" "$pid" "$url" new "$conns"; stop "$pid"
}
run_fanout() { # WORKLOAD ROUND CALLS PER_CALL: CALLS new calls at once, each with
  # PER_CALL notifications, to the sink; wall time, CPU per notification, order
  local w=$1 rd=$2 calls=$3 per=$4 name=bench-burst-$4
  [ -f "$tmp/burst/$name.json" ] || { mkdir -p "$tmp/burst"; "$gen" burst "$per" "$tmp/burst/$name.json" >/dev/null; }
  start "$tmp/sink.out" "$sink"; local sinkpid=$pid sinkurl=$url
  replay --cassette "$name" --cassettes "$tmp/burst" --store memory --bot-url "$sinkurl"
  local vcrpid=$pid t0 t1
  t0=$(cpu_ticks "$vcrpid")
  "$fire" "$url" "$calls" "$sinkurl/" $((calls * per)) >"$tmp/fire.out"
  t1=$(cpu_ticks "$vcrpid")
  stop "$vcrpid"; stop "$sinkpid"
  python3 - "$tmp/fire.out" "$w" "$rd" $((t1 - t0)) "$hz" >>"$tmp/notes.txt" <<'EOF'
import json, re, sys
r, w, rnd, ticks, hz = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
got, want = r["sink"]["notifications"], r["expected"]
# a long sequence, shortened: "deleted,updated x19999"
short = lambda seq: re.sub(r"((?:^|,)([a-z]+))(?:,\2)+", lambda m: f"{m[1]} x{m[0].count(',') + (0 if m[0].startswith(',') else 1)}", seq)
r["sink"]["sequences"] = {short(k): v for k, v in r["sink"]["sequences"].items()}
print(f"  {w:<3} round {rnd} {r['calls']} call(s) at once, {want // r['calls']} notifications each: "
      f"{r['ok']} answered 200 in {r['answered_s']:.3f} s, {got} of {want} delivered in {r['wall_s']:.3f} s wall "
      f"({r['sink']['rate_per_s']:.0f}/s at the sink, {ticks * 1e6 / hz / max(got, 1):.1f} us CPU per notification); "
      f"{'none lost' if got == want else f'LOST {want - got}'}; per-call order {r['sink']['sequences']}")
EOF
  tail -1 "$tmp/notes.txt"
}
run_big() { # ROUND: start-up with a large cassette (first: import + load + prepare;
  # again: load + prepare), then new calls against it
  local name=bench-invites-$big t0 first again
  [ -f "$tmp/big/$name.json" ] || { mkdir -p "$tmp/big"; "$gen" invites "$big" "$tmp/big/$name.json" >/dev/null; }
  rm -rf "$tmp/big-store"
  t0=$(date +%s%N); replay --cassette "$name" --cassettes "$tmp/big" --store "$tmp/big-store"
  first=$((($(date +%s%N) - t0) / 1000000)); stop "$pid"
  t0=$(date +%s%N); replay --cassette "$name" --cassettes "$tmp/big" --store "$tmp/big-store"
  again=$((($(date +%s%N) - t0) / 1000000))
  check "$url"; measure e "$1" "graphvcr replay, $big exch." "$pid" "$url" new "$conns"; stop "$pid"
  echo "  e   round $1 start-up with a $big-exchange cassette: ${first} ms first (import + load + prepare), ${again} ms again (load + prepare), to 'listening'" |
    tee -a "$tmp/notes.txt"
}
run_upstream() { # WORKLOAD ROUND CONNS
  start "$tmp/up.out" "$hyper"
  check "$url"; measure "$1" "$2" "upstream direct" "$pid" "$url" new "$3"; stop "$pid"
}
run_record() { # WORKLOAD ROUND CONNS
  start "$tmp/up.out" "$hyper"; local uppid=$pid upurl=$url
  start "$tmp/rec.out" "$vcr" record --cassette bench --store memory --ca-dir "$tmp/ca" --listen 127.0.0.1:0 \
    --upstream "$upurl" --log "$log"
  check "$url"; measure "$1" "$2" "graphvcr record" "$pid" "$url" new "$3"; stop "$pid"; stop "$uppid"
}

# ab ROUND A B ARGS...: A then B in odd rounds, B then A in even ones (ABBA)
ab() {
  local r=$1 a=$2 b=$3
  shift 3
  if [ $((r % 2)) = 1 ]; then "$a" "$@"; "$b" "$@"; else "$b" "$@"; "$a" "$@"; fi
}

# graphvcr's own answer to the invite: what bare hyper sends back
replay
curl -si -X POST "$url$(invite_path)" -H 'content-type: application/json' --data "$(invite_body)" >"$tmp/invite.http"
stop "$pid"
head -1 "$tmp/invite.http" | grep -q ' 200' || { echo "bench.sh: replay did not answer the invite:" >&2; cat "$tmp/invite.http" >&2; exit 1; }

echo "== graphvcr load benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "   $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   $loadgen -t1, ${secs}s per run, $rounds rounds, $conns connections (a1/d1: 1), graphvcr --log $log, response $(wc -c <"$tmp/invite.http") bytes"
for r in $(seq 1 "$rounds"); do
  for w in $only; do
    case $w in
      a | a1 | b)
        mode=new; c=$conns
        [ "$w" = b ] && mode=live
        [ "$w" = a1 ] && c=1
        ab "$r" run_bare run_replay "$w" "$r" "$mode" "$c" ;;
      e) run_big "$r" ;;
      c) run_notify c "$r" "graphvcr + sink" ;;
      cn) run_notify cn "$r" "graphvcr + sink, unsigned" --notify-auth none ;;
      x) run_down "$r" ;;
      f) run_fanout f "$r" 1000 3 ;;
      f1) run_fanout f1 "$r" 1 20000 ;;
      d | d1)
        c=$conns; [ "$w" = d1 ] && c=1
        ab "$r" run_upstream run_record "$w" "$r" "$c" ;;
      *) echo "bench.sh: unknown workload $w" >&2; exit 2 ;;
    esac
  done
done

echo
echo "== summary (ranges over rounds; ratio = graphvcr / bare hyper in the same round, d: record / direct)"
[ -f "$tmp/results.tsv" ] && awk -F'\t' -f scripts/bench-summary.awk "$tmp/results.tsv"
[ -f "$tmp/notes.txt" ] && cat "$tmp/notes.txt"
echo "   load at end $(cut -d' ' -f1-3 /proc/loadavg)"
