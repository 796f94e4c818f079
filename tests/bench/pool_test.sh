#!/usr/bin/env bash
# bench/pool.sh on small reports whose figures are known: rounds pair only
# within their report, the ratios, geometric means, intervals and counts come
# out as worked out independently (Python, with t quantiles found by
# integrating Student's density), and what it must refuse it refuses.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# A report as bench/peers.sh prints it, cut down to what pool.sh reads.
# $1 its date, then rows "workers conns proxy round rps p99 cpu".
report() {
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
    printf '| %s | %s | %s | %s | %s | 1.000 | %s | %s | 0 | 1000 |\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7"
  done
  printf '\n### Configurations\n\n| 1 | 50 | cutover | 9 | 1.00 | 1.000 | 1.000 | 1.00 | 0 | 1 |\n'
  # shellcheck disable=SC2016
  printf '\n## 10,000 idle keep-alive connections\n\n```\ndate:      not this one\n```\n'
}

# Case 1/50. Report A: cutover 110 and 120 req/s against HAProxy's 100 and
# 100 and nginx's 100 and 150; report B, round 1 again: cutover 90, HAProxy
# 100, nginx 100.
a_rows=(
  "1 50 cutover 1 110 2.0 10" "1 50 haproxy 1 100 2.0 20" "1 50 nginx 1 100 4.0 10"
  "1 50 cutover 2 120 2.0 10" "1 50 haproxy 2 100 4.0 20" "1 50 nginx 2 150 4.0 10"
)
# Case 2/50, five rounds (4 degrees of freedom): cutover 100 110 95 120 105,
# HAProxy 100 each, nginx 90 100 100 100 110; cutover's CPU is "-" in round 5.
rps=(100 110 95 120 105) ngx=(90 100 100 100 110) hcpu=(20 16 10 8 10)
for r in 1 2 3 4 5; do
  ccpu=10
  [ "$r" -eq 5 ] && ccpu=-
  a_rows+=("2 50 cutover $r ${rps[r - 1]} 1.0 $ccpu" "2 50 haproxy $r 100 1.0 ${hcpu[r - 1]}"
    "2 50 nginx $r ${ngx[r - 1]} 1.0 10")
done
# Case 2/256, forty rounds (39 degrees of freedom, past the t table):
# cutover 100 + 3·(r mod 7), HAProxy 100 + 2·(r mod 5), nginx 100.
for r in $(seq 40); do
  a_rows+=("2 256 cutover $r $((100 + 3 * (r % 7))) 1.0 10" "2 256 haproxy $r $((100 + 2 * (r % 5))) 1.0 10"
    "2 256 nginx $r 100 1.0 10")
done
report "2026-01-01 10:00 UTC" "${a_rows[@]}" >"$dir/a.md"
report "2026-01-01 11:00 UTC" \
  "1 50 cutover 1 90 2.0 10" "1 50 haproxy 1 100 1.0 20" "1 50 nginx 1 100 1.0 5" >"$dir/b.md"

out=$(bench/pool.sh "$dir/a.md" "$dir/b.md") || fail "pool.sh exited $?"
expect() {  # $1 what, $2 the exact text expected in the output
  grep -qF -- "$2" <<<"$out" || fail "$1: expected '$2' in:
$out"
}
expect "report A listed" "report:    $dir/a.md: 2026-01-01 10:00 UTC, 2–40 round(s) per case"
expect "report B listed" "report:    $dir/b.md: 2026-01-01 11:00 UTC, 1 round(s) per case"
# Requests/s, 1/50, over HAProxy by round: 1.1, 1.2, 0.9, so the geometric
# mean is (1.1 × 1.2 × 0.9)^(1/3) = 1.059; over nginx 1.1, 0.8, 0.9.
expect "requests/s 1/50" "| 1 | 50 | 0.90–1.20 | 1.059 (0.734–1.528) | 2 of 3 | 0.80–1.10 | 0.925 (0.620–1.380) | 1 of 3 |"
expect "requests/s 2/50" "| 2 | 50 | 0.95–1.20 | 1.057 (0.945–1.181) | 3 of 5 | 0.95–1.20 | 1.059 (0.932–1.202) | 3 of 5 |"
expect "requests/s 2/256" "| 2 | 256 | 0.93–1.18 | 1.047 (1.027–1.067) | 30 of 40 | 1.00–1.18 | 1.088 (1.070–1.107) | 35 of 40 |"
# Requests/s, one figure per report. 1/50 against HAProxy: report A's
# geometric mean √(1.1 × 1.2) and report B's 0.9, with t for 1 degree of
# freedom (12.706); against nginx √(1.1 × 0.8) and 0.9. The other cases are
# in report A alone.
expect "per report 1/50" "| 1 | 50 | 1.017 (0.216–4.797) | 1 of 2 | 0.919 (0.706–1.196) | 0 of 2 |"
expect "per report 2/50" "| 2 | 50 | 1.057 | 1 of 1 | 1.059 | 1 of 1 |"
expect "per report 2/256" "| 2 | 256 | 1.047 | 1 of 1 | 1.088 | 1 of 1 |"
# CPU per request, 1/50: 0.5 in every round against HAProxy; 1, 1, 2
# against nginx. 2/50: round 5 has no CPU figure for cutover.
expect "CPU 1/50" "| 1 | 50 | 0.50–0.50 | 0.500 (0.500–0.500) | 0 of 3 | 1.00–2.00 | 1.260 (0.466–3.405) | 1 of 3 |"
expect "CPU 2/50" "| 2 | 50 | 0.50–1.25 | 0.791 (0.405–1.543) | 1 of 4 | 1.00–1.00 | 1.000 (1.000–1.000) | 0 of 4 |"
# p99, 1/50: 1, 0.5, 2 against HAProxy; 0.5, 0.5, 2 against nginx.
expect "p99 1/50" "| 1 | 50 | 0.50–2.00 | 1.000 (0.179–5.596) | 1 of 3 | 0.50–2.00 | 0.794 (0.109–5.797) | 1 of 3 |"
[ "$(grep -c '^| 1 | 50 |' <<<"$out")" -eq 4 ] || fail "one row per table expected:
$out"

# Refusals, each with exit status 2 and a message saying what is wrong.
printf 'nothing here\n' >"$dir/empty.md"
cat "$dir/a.md" "$dir/b.md" >"$dir/two.md"
sed 's/| CPU µs\/req |/| CPU |/' "$dir/a.md" >"$dir/columns.md"
cp "$dir/a.md" "$dir/copy.md"
refuses() {  # $1 text expected in the message, then the arguments
  local want=$1 err rc
  shift
  set +e
  err=$(bench/pool.sh "$@" 2>&1 >/dev/null)
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "pool.sh $*: exit $rc, expected 2"
  grep -qF -- "$want" <<<"$err" || fail "pool.sh $*: expected '$want' in: $err"
}
refuses 'no "### Every run" table' "$dir/empty.md"
refuses "not a readable file" "$dir/missing.md"
refuses "usage: bench/pool.sh"
refuses 'more than one "### Every run" table' "$dir/two.md"
refuses "columns are not those of bench/peers.sh" "$dir/columns.md"
refuses "the same rounds as $dir/a.md" "$dir/a.md" "$dir/copy.md"
echo "pool.sh: all checks passed"
