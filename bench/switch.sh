#!/usr/bin/env bash
# Switch benchmark: wrk at 256 connections for 30 s through cutover while 1000
# switches (blue <-> green) happen. Prints requests, non-2xx responses and
# socket errors; the goal is 0 errors. Everything stays on 127.0.0.1.
# Builds cutover in Release mode in build-release/, as the other benchmarks do.
# Usage: bench/switch.sh [SECONDS] [SWITCHES] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-30}
SWITCHES=${2:-1000}
CONNS=${3:-256}
for v in DURATION SWITCHES CONNS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] ||
    { echo "switch.sh: $v must be a positive integer, got '${!v}'" >&2; exit 2; }
done
BUILD_DIR="$(pwd)/build-release"
CUTOVER="$BUILD_DIR/cutover"
TESTAPP="$BUILD_DIR/cutover-testapp"
command -v wrk >/dev/null || { echo "switch.sh: wrk is missing; run 'scripts/setup'" >&2; exit 2; }
. scripts/lib.sh  # free_port, build_release
echo "switch.sh: building cutover (Release) in $BUILD_DIR" >&2
build_release "$BUILD_DIR" || { echo "switch.sh: the Release build failed" >&2; exit 1; }

work=$(mktemp -d /tmp/cutover-switch.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for c in blue green; do
  "$TESTAPP" --name "$c" --port 0 --port-file "$work/$c.port" --quiet >"$work/$c.log" 2>&1 &
  pids+=($!)
done
for c in blue green; do
  for _ in $(seq 100); do [ -s "$work/$c.port" ] && break; sleep 0.05; done
done
PORT=$(free_port)
cat >"$work/cutover.yaml" <<YAML
listen: 127.0.0.1:$PORT
preview: off
control: ./cutover.sock
store: ./state/cutover.db
services:
  web:
    hosts: ["*"]
    driver:
      type: static
      blue: [127.0.0.1:$(cat "$work/blue.port")]
      green: [127.0.0.1:$(cat "$work/green.port")]
YAML
"$CUTOVER" serve --config "$work/cutover.yaml" >"$work/cutover.log" 2>&1 &
pids+=($!)
export CUTOVER_CONTROL="$work/cutover.sock"
for _ in $(seq 100); do "$CUTOVER" status >/dev/null 2>&1 && break; sleep 0.05; done

wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" >"$work/wrk.txt" 2>&1 &
wrk_pid=$!
sleep 0.3
start=$(date +%s%N)
failed=0
# Spread the switches over the run, ending a second before it: switch i
# is due at start + i * interval, and the loop sleeps only when ahead.
interval_ns=$(( (DURATION - 1) * 1000000000 / SWITCHES ))
during=0
for i in $(seq "$SWITCHES"); do
  to=green; [ $((i % 2)) -eq 0 ] && to=blue
  "$CUTOVER" switch web --to "$to" >/dev/null || failed=$((failed + 1))
  now=$(date +%s%N)
  kill -0 "$wrk_pid" 2>/dev/null && during=$((during + 1))
  ahead=$(( start + i * interval_ns - now ))
  if [ "$ahead" -gt 0 ]; then sleep "$(awk -v n="$ahead" 'BEGIN { printf "%.3f", n / 1e9 }')"; fi
done
end=$(date +%s%N)
wait "$wrk_pid"

requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt")
sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' "$work/wrk.txt")
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
echo "bench/switch.sh: ${DURATION}s, ${CONNS} connections, ${SWITCHES} switches in $(( (end - start) / 1000000 )) ms (${during} while wrk ran)"
printf '%-20s %s\n' "requests:" "${requests:-0}" "requests/s:" "${rps:-0}" \
  "non-2xx:" "${non2xx:-0}" "socket errors:" "${sockerr:-0}" "failed switches:" "$failed"
cat "$work/wrk.txt" | sed 's/^/  wrk| /'
[ "${non2xx:-0}" -eq 0 ] && [ "${sockerr:-0}" -eq 0 ] && [ "$failed" -eq 0 ]
