# shellcheck shell=bash disable=SC2154  # results: set by the sourcing script
# Same-round comparisons of cutover with HAProxy and nginx, shared by
# peers.sh (one run) and pool.sh (the rounds of several runs). Sourced, not
# run. Both read the rounds from the file named by $results, one per line,
# tab-separated: workers, conns, proxy, round, req/s, p50 ms, p99 ms,
# CPU µs per request, errors, requests. Rows of one round of one case ran
# within seconds of each other, so a ratio taken inside a round is spared
# most of the machine's drift between rounds.

# "lowest–highest" of a column over the rows matching workers/conns/proxy.
spread() {  # $1 workers $2 conns $3 proxy $4 column (1-based)
  awk -F'\t' -v n="$1" -v c="$2" -v p="$3" -v k="$4" \
    '$1 == n && $2 == c && $3 == p && $k != "-" {
       if (!seen++ || $k + 0 < lo) lo = $k + 0
       if ($k + 0 > hi) hi = $k + 0 }
     END { if (!seen) print "-"; else printf "%.0f–%.0f", lo, hi }' "$results"
}

# The start of the awk programs below (given -v n, c, p and col): rules that
# pair cutover's value of column col with peer p's, round by round, in cu[]
# and pe[] by round; the 95% two-sided quantile of Student's t (a table for
# 1..30 degrees of freedom; beyond, the Cornish-Fisher expansion about the
# normal quantile, within 0.0001 of the table); and "geometric mean (95% CI)"
# of the k logarithms in l[1..k].
# shellcheck disable=SC2016  # awk's $1, not the shell's
PAIRS_AWK='
$1 == n && $2 == c && $3 == "cutover" && $col != "-" {cu[$4] = $col}
$1 == n && $2 == c && $3 == p && $col != "-" {pe[$4] = $col}
function t95(df,    t, z) {
  split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086 2.080 2.074 2.069 2.064 2.060 2.056 2.052 2.048 2.045 2.042", t, " ")
  if (df <= 30) return t[df]
  z = 1.959964
  return z + (z ^ 3 + z) / (4 * df) + (5 * z ^ 5 + 16 * z ^ 3 + 3 * z) / (96 * df ^ 2)
}
function gm_ci(l, k,    i, s, m, v, h) {
  for (i = 1; i <= k; i++) s += l[i]
  m = s / k
  if (k < 2) return sprintf("%.3f", exp(m))
  for (i = 1; i <= k; i++) v += (l[i] - m) ^ 2
  h = t95(k - 1) * sqrt(v / (k - 1) / k)
  return sprintf("%.3f (%.3f–%.3f)", exp(m), exp(m - h), exp(m + h))
}'

# cutover's value of a column over a peer's, round by round:
# "lowest–highest | geometric mean (95% CI) | rounds above 1.0 of all",
# the interval from Student's t on the logarithms.
round_ratios() {  # $1 workers $2 conns $3 peer $4 column (1-based)
  awk -F'\t' -v n="$1" -v c="$2" -v p="$3" -v col="$4" "$PAIRS_AWK"'
     END {
       k = 0
       for (r in cu) if ((r in pe) && cu[r] > 0 && pe[r] > 0) {
         x = cu[r] / pe[r]
         if (!k || x < lo) lo = x
         if (!k || x > hi) hi = x
         above += (x > 1)
         l[++k] = log(x)
       }
       if (!k) { print "- | - | -"; exit }
       printf "%.2f–%.2f | %s | %d of %d\n", lo, hi, gm_ci(l, k), above, k }' "$results"
}

# The same ratios with one figure per report (rounds "report.round"): the
# geometric mean of each report's same-round ratios, then "geometric mean
# (95% CI) | reports above 1.0 of all" over the reports. Rounds of one run
# follow each other; this counts each run once.
report_ratios() {  # $1 workers $2 conns $3 peer $4 column (1-based)
  awk -F'\t' -v n="$1" -v c="$2" -v p="$3" -v col="$4" "$PAIRS_AWK"'
     END {
       for (r in cu) if ((r in pe) && cu[r] > 0 && pe[r] > 0) {
         split(r, id, ".")
         s[id[1]] += log(cu[r] / pe[r]); cnt[id[1]]++
       }
       k = 0
       for (run in s) { l[++k] = s[run] / cnt[run]; above += (l[k] > 0) }
       if (!k) { print "- | -"; exit }
       printf "%s | %d of %d\n", gm_ci(l, k), above, k }' "$results"
}

# A markdown table, a row per case (from WORKER_COUNTS and CONN_COUNTS):
# the cells a function gives for HAProxy, then for nginx.
case_table() {  # $1 function (round_ratios, report_ratios) $2 column $3 one peer's header cells, "{peer}" for its name
  local cells=$1 col=$2 head=$3 n c i
  local count
  count=$(($(tr -cd '|' <<<"$head" | wc -c) + 1))
  echo "| workers | conns | ${head//\{peer\}/HAProxy} | ${head//\{peer\}/nginx} |"
  printf '| ---: | ---: |'
  for ((i = 0; i < 2 * count; i++)); do printf ' ---: |'; done
  echo
  for n in "${WORKER_COUNTS[@]}"; do
    for c in "${CONN_COUNTS[@]}"; do
      echo "| $n | $c | $("$cells" "$n" "$c" haproxy "$col") | $("$cells" "$n" "$c" nginx "$col") |"
    done
  done
}

# cutover's same-round ratios to each peer for one column, a row per case.
ratio_table() {  # $1 column (1-based)
  case_table round_ratios "$1" "÷ {peer} by round | geometric mean (95% CI) | rounds above 1.0"
}

# The same, one figure per report.
report_table() {  # $1 column (1-based)
  case_table report_ratios "$1" "÷ {peer}, geometric mean of the reports (95% CI) | reports above 1.0"
}
