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

# cutover's value of a column over a peer's, round by round:
# "lowest–highest | geometric mean (95% CI) | rounds above 1.0 of all",
# the interval from Student's t on the logarithms.
round_ratios() {  # $1 workers $2 conns $3 peer $4 column (1-based)
  awk -F'\t' -v n="$1" -v c="$2" -v p="$3" -v col="$4" \
    '$1 == n && $2 == c && $3 == "cutover" && $col != "-" {cu[$4] = $col}
     $1 == n && $2 == c && $3 == p && $col != "-" {pe[$4] = $col}
     END {
       k = 0
       for (r in cu) if ((r in pe) && cu[r] > 0 && pe[r] > 0) {
         x = cu[r] / pe[r]
         if (!k || x < lo) lo = x
         if (!k || x > hi) hi = x
         above += (x > 1)
         l[++k] = log(x); s += l[k]
       }
       if (!k) { print "- | - | -"; exit }
       m = s / k
       if (k < 2) { printf "%.2f–%.2f | %.3f | %d of %d\n", lo, hi, exp(m), above, k; exit }
       for (i = 1; i <= k; i++) v += (l[i] - m) ^ 2
       split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086 2.080 2.074 2.069 2.064 2.060 2.056 2.052 2.048 2.045 2.042", t, " ")
       q = (k - 1 <= 30) ? t[k - 1] : (k - 1 <= 60 ? 2.000 : (k - 1 <= 120 ? 1.980 : 1.960))
       h = q * sqrt(v / (k - 1) / k)
       printf "%.2f–%.2f | %.3f (%.3f–%.3f) | %d of %d\n", lo, hi, exp(m), exp(m - h), exp(m + h), above, k }' "$results"
}

# A markdown table of cutover's same-round ratios to each peer for one
# column, a row per case.
ratio_table() {  # $1 column (1-based); cases from WORKER_COUNTS and CONN_COUNTS
  echo "| workers | conns | ÷ HAProxy by round | geometric mean (95% CI) | rounds above 1.0 | ÷ nginx by round | geometric mean (95% CI) | rounds above 1.0 |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  local n c
  for n in "${WORKER_COUNTS[@]}"; do
    for c in "${CONN_COUNTS[@]}"; do
      echo "| $n | $c | $(round_ratios "$n" "$c" haproxy "$1") | $(round_ratios "$n" "$c" nginx "$1") |"
    done
  done
}
