# Summary of scripts/bench.sh's results (tab-separated: workload round side rps p50 p99
# cpu rss_start_kb rss_peak_kb rss_end_kb errors) as a Markdown table: ranges
# over rounds, and per round the ratio of graphvcr to its baseline (bare hyper, or the
# upstream direct for record), with what record adds to p50.
function range(lo, hi, fmt) {
  return (sprintf(fmt, lo) == sprintf(fmt, hi)) ? sprintf(fmt, lo) : sprintf(fmt "–" fmt, lo, hi)
}
function keep(name, key, v) {
  if (!((key, name, "n") in S)) { S[key, name, "lo"] = v; S[key, name, "hi"] = v; S[key, name, "n"] = 1 }
  if (v < S[key, name, "lo"]) S[key, name, "lo"] = v
  if (v > S[key, name, "hi"]) S[key, name, "hi"] = v
}
function r(name, key, fmt) { return range(S[key, name, "lo"], S[key, name, "hi"], fmt) }
BEGIN {
  what["a"] = "new call per request"; what["a1"] = "new call per request, 1 connection"
  what["b"] = "one live session"; what["c"] = "new call + 2 notifications to the sink"
  what["cn"] = "new call + 2 unsigned notifications to the sink"
  what["x"] = "new call + 2 notifications, the bot down"
  what["e"] = "large cassette, new call per request"
  what["d"] = "record vs upstream direct"; what["d1"] = "record vs upstream direct, 1 connection"
}
{
  w = $1; rd = $2; side = $3; key = w SUBSEP side
  if (!(w in seen)) { seen[w] = 1; order[++nw] = w }
  if (!(key in sides)) { sides[key] = 1; nside[w]++; side_of[w, nside[w]] = side }
  keep("rps", key, $4); keep("p50", key, $5); keep("p99", key, $6); keep("cpu", key, $7)
  keep("rss0", key, $8 / 1024); keep("hwm", key, $9 / 1024); keep("rss1", key, $10 / 1024)
  errs[key] += $11
  base = (side == "bare hyper" || side == "upstream direct")
  if (base) { brps[w, rd] = $4; bp50[w, rd] = $5 } else { grps[w, rd] = $4; gp50[w, rd] = $5 }
  rounds[w, rd] = 1
}
END {
  print "| workload | server | req/s | p50 ms | p99 ms | CPU µs/req | RSS start / peak / end MiB | errors | ratio |"
  print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for (i = 1; i <= nw; i++) {
    w = order[i]; delete ratio; nr = 0; added = ""
    for (k in rounds) {
      split(k, p, SUBSEP)
      if (p[1] != w || !((w, p[2]) in brps) || !((w, p[2]) in grps) || brps[w, p[2]] == 0) continue
      nr++; ratio[nr] = grps[w, p[2]] / brps[w, p[2]]; add[nr] = gp50[w, p[2]] - bp50[w, p[2]]
    }
    rlo = 1e9; rhi = 0; alo = 1e9; ahi = -1e9
    for (j = 1; j <= nr; j++) {
      if (ratio[j] < rlo) rlo = ratio[j]; if (ratio[j] > rhi) rhi = ratio[j]
      if (add[j] < alo) alo = add[j]; if (add[j] > ahi) ahi = add[j]
    }
    rtext = nr ? range(rlo, rhi, "%.2f") "×" : "—"
    if (nr && (w == "d" || w == "d1")) rtext = rtext ", p50 +" range(alo, ahi, "%.2f") " ms"
    for (j = 1; j <= nside[w]; j++) {
      side = side_of[w, j]; key = w SUBSEP side
      printf "| %s (%s) | %s | %s | %s | %s | %s | %s / %s / %s | %d | %s |\n", what[w], w, side, \
        r("rps", key, "%.0f"), r("p50", key, "%.2f"), r("p99", key, "%.2f"), r("cpu", key, "%.0f"), \
        r("rss0", key, "%.0f"), r("hwm", key, "%.0f"), r("rss1", key, "%.0f"), errs[key], \
        (side == "bare hyper" || side == "upstream direct") ? "1" : rtext
    }
  }
}
