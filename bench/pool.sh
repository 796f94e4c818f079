#!/usr/bin/env bash
# Pools the rounds of several bench/peers.sh reports: for every case, cutover's
# requests/s, CPU time per request and p99 latency over HAProxy's and nginx's
# in the same round, over all the rounds of all the reports. One run's medians
# move with the machine; many rounds, each compared within itself, show what
# does not. Reads each report's "Every run" table, so a saved report or a
# document holding one (docs/benchmarks.md) will do.
# Usage: bench/pool.sh REPORT.md...
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

die() { printf 'pool.sh: %s\n' "$*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: bench/pool.sh REPORT.md... (reports printed by bench/peers.sh)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results="$work/results.tsv"
: >"$results"

HEADER='| workers | conns | proxy | round | req/s | p50 ms | p99 ms | CPU µs/req | errors | requests |'
i=0
listing=()
declare -A SEEN  # the rows of each report read so far, by checksum: its file
for f in "$@"; do
  if [ ! -f "$f" ] || [ ! -r "$f" ]; then die "$f: not a readable file"; fi
  i=$((i + 1))
  # Rows of the "Every run" table, whose header must be peers.sh's.
  # Exit 3: more than one such table; 4: another header.
  status=0
  awk -F' *[|] *' -v header="$HEADER" '
    /^### Every run/ {tables++; on = 1; head = 1; next}
    on && /^#/ {on = 0}
    on && head && /^\|/ {head = 0; if ($0 != header) bad = 1; next}
    on && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $4 ~ /^(cutover|haproxy|nginx)$/ && $5 ~ /^[0-9]+$/ {
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
    }
    END { if (tables > 1) exit 3; if (bad) exit 4 }' "$f" >"$work/one.tsv" || status=$?
  case $status in
    0) ;;
    3) die "$f: more than one \"### Every run\" table; give each report its own file" ;;
    4) die "$f: the \"### Every run\" table's columns are not those of bench/peers.sh ($HEADER)" ;;
    *) die "$f: could not be read (awk exit $status)" ;;
  esac
  rows=$(wc -l <"$work/one.tsv")
  [ "$rows" -gt 0 ] || die "$f: no \"### Every run\" table of bench/peers.sh in it"
  # The same run given twice (a saved report and a document holding it)
  # would count its rounds twice.
  sum=$(md5sum <"$work/one.tsv" | cut -d' ' -f1)
  [ -z "${SEEN[$sum]:-}" ] || die "$f: the same rounds as ${SEEN[$sum]}; give each run once"
  SEEN[$sum]=$f
  # A round becomes "report.round", so that rounds pair only within their report.
  awk -F'\t' -v OFS='\t' -v run="$i" '{$4 = run "." $4; print}' "$work/one.tsv" >>"$results"
  when=$(awk '/^command: .*bench\/peers\.sh/ {on = 1; next} on && /^date:/ {sub(/^date: */, ""); print; exit}' "$f")
  # Rounds per case: "5", or "2–40" when the cases differ.
  rounds=$(awk -F'\t' '!seen[$1 FS $2 FS $4]++ {n[$1 FS $2]++}
    END { for (c in n) { if (!k++ || n[c] < lo) lo = n[c]; if (n[c] > hi) hi = n[c] }
          if (lo == hi) print lo; else print lo "–" hi }' "$work/one.tsv")
  listing+=("$f: ${when:-no date}, $rounds round(s) per case")
done

mapfile -t WORKER_COUNTS < <(cut -f1 "$results" | sort -nu)
mapfile -t CONN_COUNTS < <(cut -f2 "$results" | sort -nu)
# shellcheck source=bench/rounds.sh
. "$HERE/rounds.sh"  # ratio_table, report_table

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
echo "### Requests/s, one figure per report"
echo
echo "Each report's rounds follow each other, so they are not quite independent; here each report"
echo "counts once, by the geometric mean of its same-round ratios."
echo
report_table 5
echo
echo "### Proxy CPU time per request (below 1.0: cutover spent less)"
echo
ratio_table 8
echo
echo "### p99 latency (below 1.0: cutover's was lower)"
echo
ratio_table 7
