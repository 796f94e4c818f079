#!/usr/bin/env bash
# Pools the rounds of several bench/peers.sh reports: for every case, cutover's
# requests/s, CPU time per request and p99 latency over HAProxy's and nginx's
# in the same round, over all the rounds of all the reports. One run's medians
# move with the machine; many rounds, each compared within itself, show what
# does not. Reads each report's "Every run" table, so a saved report or a
# document holding one (docs/benchmarks.md) will do.
# Usage: bench/pool.sh REPORT.md...
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
cd - >/dev/null

die() { printf 'pool.sh: %s\n' "$*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: bench/pool.sh REPORT.md... (reports printed by bench/peers.sh)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results="$work/results.tsv"
: >"$results"

i=0
listing=()
for f in "$@"; do
  if [ ! -f "$f" ] || [ ! -r "$f" ]; then die "$f: not a readable file"; fi
  i=$((i + 1))
  # Rows of the "Every run" table: | workers | conns | proxy | round | req/s |
  # p50 | p99 | CPU | errors | requests |; a round becomes "report.round" so
  # that rounds pair only within their report.
  awk -F' *[|] *' -v run="$i" '
    /^### Every run/ {on = 1; next}
    on && /^#/ {on = 0}
    on && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $4 ~ /^(cutover|haproxy|nginx)$/ && $5 ~ /^[0-9]+$/ {
      printf "%s\t%s\t%s\t%s.%s\t%s\t%s\t%s\t%s\t%s\t%s\n", $2, $3, $4, run, $5, $6, $7, $8, $9, $10, $11
    }' "$f" >"$work/one.tsv"
  rows=$(wc -l <"$work/one.tsv")
  [ "$rows" -gt 0 ] || die "$f: no \"### Every run\" table of bench/peers.sh in it"
  cat "$work/one.tsv" >>"$results"
  when=$(awk '/^command: .*bench\/peers\.sh/ {on = 1; next} on && /^date:/ {sub(/^date: */, ""); print; exit}' "$f")
  rounds=$(awk -F'\t' '{split($4, r, "."); print r[2]}' "$work/one.tsv" | sort -u | wc -l)
  listing+=("$f: ${when:-no date}, $rounds round(s) per case")
done

mapfile -t WORKER_COUNTS < <(cut -f1 "$results" | sort -nu)
mapfile -t CONN_COUNTS < <(cut -f2 "$results" | sort -nu)
# shellcheck source=bench/rounds.sh
. "$HERE/rounds.sh"  # ratio_table

echo "## cutover against HAProxy and nginx, round by round (bench/pool.sh)"
echo
echo '```'
echo "command:   bench/pool.sh $*"
for l in "${listing[@]}"; do echo "report:    $l"; done
echo '```'
echo
echo "Each figure is cutover's over the peer's in the same round of the same report: the lowest"
echo "and highest over all rounds, their geometric mean with a 95% confidence interval (Student's t"
echo "on the logarithms) and the rounds in which the ratio was above 1.0."
echo
echo "### Requests/s (above 1.0: cutover served more)"
echo
ratio_table 5
echo
echo "### Proxy CPU time per request (below 1.0: cutover spent less)"
echo
ratio_table 8
echo
echo "### p99 latency (below 1.0: cutover's was lower)"
echo
ratio_table 7
