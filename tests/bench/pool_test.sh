#!/usr/bin/env bash
# bench/pool.sh on two small reports whose figures are known: rounds pair
# only within their report, the ratios, geometric mean, interval and counts
# come out as computed by hand, and a file without a report is refused.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# One case (1 worker, 50 connections). Report A: cutover 110 and 120 req/s
# against HAProxy's 100 and 100 and nginx's 100 and 150; report B, round 1
# again: cutover 90, HAProxy 100, nginx 100. The backend row is not a proxy.
report() {  # $1 date, then rows "proxy round rps p99 cpu"
  local when=$1
  shift
  # shellcheck disable=SC2016  # backquotes of markdown, not commands
  printf '## cutover vs HAProxy vs nginx (bench/peers.sh)\n\n```\ncommand:   DURATION=10 ROUNDS=2 bench/peers.sh\ndate:      %s\n```\n\n' "$when"
  printf '### Every run\n\n| workers | conns | proxy | round | req/s | p50 ms | p99 ms | CPU µs/req | errors | requests |\n| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
  printf '| - | 50 | backend | 1 | 500.00 | 0.100 | 0.200 | - | 0 | 5000 |\n'
  local row
  for row in "$@"; do
    # shellcheck disable=SC2086
    set -- $row
    printf '| 1 | 50 | %s | %s | %s | 1.000 | %s | %s | 0 | 1000 |\n' "$1" "$2" "$3" "$4" "$5"
  done
  printf '\n### Configurations\n\n| 1 | 50 | cutover | 9 | 1.00 | 1.000 | 1.000 | 1.00 | 0 | 1 |\n'
  # shellcheck disable=SC2016
  printf '\n## 10,000 idle keep-alive connections\n\n```\ndate:      not this one\n```\n'
}
report "2026-01-01 10:00 UTC" \
  "cutover 1 110 2.0 10" "haproxy 1 100 2.0 20" "nginx 1 100 4.0 10" \
  "cutover 2 120 2.0 10" "haproxy 2 100 4.0 20" "nginx 2 150 4.0 10" >"$dir/a.md"
report "2026-01-01 11:00 UTC" \
  "cutover 1 90 2.0 10" "haproxy 1 100 1.0 20" "nginx 1 100 1.0 5" >"$dir/b.md"

out=$(bench/pool.sh "$dir/a.md" "$dir/b.md") || fail "pool.sh exited $?"
expect() {  # $1 what, $2 the exact text expected in the output
  grep -qF -- "$2" <<<"$out" || fail "$1: expected '$2' in:
$out"
}
expect "report A listed" "report:    $dir/a.md: 2026-01-01 10:00 UTC, 2 round(s) per case"
expect "report B listed" "report:    $dir/b.md: 2026-01-01 11:00 UTC, 1 round(s) per case"
# Requests/s over HAProxy by round: 1.1, 1.2, 0.9; geometric mean
# (1.1 × 1.2 × 0.9)^(1/3) = 1.059, the interval from Student's t with 2
# degrees of freedom (4.303) on the logarithms. Over nginx: 1.1, 0.8, 0.9.
expect "requests/s" "| 1 | 50 | 0.90–1.20 | 1.059 (0.734–1.528) | 2 of 3 | 0.80–1.10 | 0.925 (0.620–1.380) | 1 of 3 |"
# CPU per request: 0.5 in every round against HAProxy; 1, 1, 2 against nginx.
expect "CPU" "| 1 | 50 | 0.50–0.50 | 0.500 (0.500–0.500) | 0 of 3 | 1.00–2.00 | 1.260 (0.466–3.405) | 1 of 3 |"
# p99: 1, 0.5, 2 against HAProxy; 0.5, 0.5, 2 against nginx.
expect "p99" "| 1 | 50 | 0.50–2.00 | 1.000 (0.179–5.596) | 1 of 3 | 0.50–2.00 | 0.794 (0.109–5.797) | 1 of 3 |"
[ "$(grep -c '^| 1 | 50 |' <<<"$out")" -eq 3 ] || fail "one row per table expected:
$out"

# Refusals: no report in the file, no such file, no argument.
printf 'nothing here\n' >"$dir/empty.md"
for args in "$dir/empty.md" "$dir/missing.md" ""; do
  set +e
  # shellcheck disable=SC2086
  err=$(bench/pool.sh $args 2>&1 >/dev/null)
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "pool.sh $args: exit $rc, expected 2"
  [ -n "$err" ] || fail "pool.sh $args: no message"
done
grep -qF 'no "### Every run" table' <<<"$(bench/pool.sh "$dir/empty.md" 2>&1 || true)" ||
  fail "the message for a file without a report does not say what is missing"
echo "pool.sh: all checks passed"
