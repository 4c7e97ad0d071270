-- wrk script for scripts/bench.sh: the documented invite of the bundled
-- `invite-one-participant` cassette, in one of two forms (BENCH_MODE):
--   new   every request is a call of its own: fresh call id, clientContext,
--         replacesCallId and invitee per request, so each one starts a replay
--         session (match, bind, mint, rewrite, schedule notifications);
--   live  the same ids every time under a fixed `x-graphvcr-session`
--         (BENCH_SESSION, default bench-live): repeats in one live session.
-- done() prints one machine-readable `BENCH ...` line that bench.sh parses.
local mode = os.getenv("BENCH_MODE") or "new"
local session = os.getenv("BENCH_SESSION") or "bench-live"
-- differs between runs, so two runs never send the same ids
local run = tonumber(os.getenv("BENCH_RUN") or "") or (os.time() % 65536)
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end

local function guid(prefix, n)
  return string.format("%08x-%04x-4000-8000-%012x", prefix, run % 65536, n)
end

local function invite(n)
  local body = string.format(
    '{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","replacesCallId":"%s","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"%s","identityProvider":"AAD"}}}],"clientContext":"%s"}',
    guid(0x9292, n), guid(0x05e7, n), guid(0xc0c0, n))
  local path = "/beta/communications/calls/" .. guid(0xca11, n) .. "/participants/invite"
  return path, body
end

local live_request = nil

function init(args)
  if mode == "live" then
    local path, body = invite(0)
    live_request = wrk.format("POST", path,
      {["Content-Type"] = "application/json", ["x-graphvcr-session"] = session}, body)
  end
end

function request()
  if live_request then
    return live_request
  end
  counter = counter + 1
  local path, body = invite((tid or 0) * 100000000 + counter)
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d errors=%d status_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status, e.timeout))
end
