#!/usr/bin/env bash
# cutover's demo (`make demo`, `make demo-services`): the shop deployed
# blue-green in four releases under steady shopper traffic, each showing one
# outcome (README.md):
#   v1  first release; shoppers start, one puts a gadget in its cart
#   v2  expand migration (orders.gift_message), checks on green (the cart made
#       on v1 is read on v2), switch; the cart still holds the gadget
#       then by hand: rollback to v1 (at once, it still runs) and forward to v2
#       once v1 is stopped at the end of the rollback window, v2's contract
#       drops orders.note; a rollback to v1 is then refused
#   v3  fails its checks: halted, live traffic never sees it
#   v4  passes its checks, fails real traffic: observe switches back
# and a summary: deployments, switch times, requests per color, errors.
# Every step checks what it expects and the demo exits 1 when one is wrong,
# so it is also a test of cutover (examples/shop/demo_test.cc runs it).
#
# Usage: examples/shop/demo.sh [--services] [--keep] [--artifacts DIR]
#   --services       carts in Redis and orders in PostgreSQL (cutover-services.yaml):
#                    starts redis-server and a PostgreSQL 15 on free ports; without
#                    it, one SQLite file holds everything (cutover.yaml)
#   --keep           leave the daemon, the servers and the folder running, and
#                    print how to look at them
#   --artifacts DIR  copy what the demo saw into DIR: history.json (every
#                    deployment), shopper.log (every request of the traffic),
#                    shopper-summary.json, metrics.txt, phases (when each part
#                    began), daemon.log, instance-logs/ (each shop instance's log)
# BUILD (default: build) is the build folder holding cutover, cutover-shop and
# cutover-shopper.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SERVICES=0
KEEP=0
ARTIFACTS=""
usage() { echo "usage: $0 [--services] [--keep] [--artifacts DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --services) SERVICES=1 ;;
    --keep) KEEP=1 ;;
    --artifacts) [ $# -ge 2 ] || usage; ARTIFACTS=$2; shift ;;
    *) usage ;;
  esac
  shift
done
for bin in cutover cutover-shop cutover-shopper; do
  [ -x "$BUILD/$bin" ] || { echo "demo: $BUILD/$bin is missing; run 'make' first" >&2; exit 2; }
done
tools=(curl jq column)
if [ "$SERVICES" = 1 ]; then tools+=(redis-server redis-cli /usr/lib/postgresql/15/bin/initdb); fi
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is missing; run 'scripts/setup'" >&2; exit 2; }
done
CUTOVER=$(realpath "$BUILD/cutover")
SHOP=$(realpath "$BUILD/cutover-shop")
SHOPPER=$(realpath "$BUILD/cutover-shopper")

# The migrations v1 ships with: every file up to this version. The folder in
# the repository holds v2's too; each release's files go in before it is
# deployed, or cutover would run v2's contract right after v1's first deployment.
V1_LAST=20261101090000
PG_BIN=/usr/lib/postgresql/15/bin
WINDOW_S=20  # rollback_window in both configuration files

work=$(mktemp -d /tmp/cutover-demo.XXXXXX)
chmod 755 "$work"  # PostgreSQL runs as its own user below
daemon_pid="" shopper_pid="" redis_pid="" pg_data=""
START_S=$(date +%s)

as_postgres() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_shoppers() {
  if [ -n "$shopper_pid" ]; then
    kill "$shopper_pid" 2>/dev/null || true
    wait "$shopper_pid" 2>/dev/null || true
    shopper_pid=""
  fi
}

save_artifacts() {
  [ -n "$ARTIFACTS" ] || return 0
  mkdir -p "$ARTIFACTS"
  local f
  for f in history.json shopper.log shopper-summary.json metrics.txt phases daemon.log; do
    if [ -f "$work/$f" ]; then cp "$work/$f" "$ARTIFACTS/"; fi
  done
  if [ -d "$work/state/logs/shop" ]; then cp -r "$work/state/logs/shop" "$ARTIFACTS/instance-logs"; fi
}

cleanup() {
  local status=$?
  if [ "$KEEP" = 1 ] && [ "$status" = 0 ]; then
    stop_shoppers
    save_artifacts
    local pg_stop="$PG_BIN/pg_ctl -D $pg_data stop"
    if [ "$(id -u)" -eq 0 ]; then pg_stop="runuser -u postgres -- $pg_stop"; fi
    cat <<EOF

kept running (stop with: kill $daemon_pid${redis_pid:+ $redis_pid}${pg_data:+; $pg_stop}):
  the shop            $LIVE/  (open it in a browser, or curl $LIVE/products)
  the preview         http://127.0.0.1:$PREVIEW/ (the idle color)
  status and history  $CUTOVER status --config $work/cutover.yaml
                      $CUTOVER history shop --config $work/cutover.yaml
  a deployment        $CUTOVER deploy shop --release v2 --config $work/cutover.yaml
  the daemon's log    $work/daemon.log
EOF
    return
  fi
  stop_shoppers
  if [ "$status" != 0 ] && [ -f "$work/daemon.log" ]; then
    echo "demo: the daemon's last lines ($work/daemon.log):" >&2
    tail -n 20 "$work/daemon.log" >&2
  fi
  save_artifacts
  # SIGTERM: the daemon stops every instance it started before it exits.
  local pid
  for pid in "$daemon_pid" "$redis_pid"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "$pg_data" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

elapsed() { local s=$(($(date +%s) - START_S)); printf '%d:%02d' $((s / 60)) $((s % 60)); }
say() { printf '\n\033[1m[%s] %s\033[0m\n' "$(elapsed)" "$*"; }
note() { printf '    %s\n' "$*"; }
fail() { printf '\033[31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }

. scripts/lib.sh  # free_port

cutover() { "$CUTOVER" "$@" --config "$work/cutover.yaml"; }

# Parts of the story, for the summary: NAME START_MS per line; a part lasts
# until the next one starts, the last one until the traffic stops.
begin_phase() { echo "$1 $(now_ms)" >>"$work/phases"; }

# What the shopper traffic saw between two times: "REQUESTS ERRORS".
traffic_between() {
  awk -v from="$1" -v to="$2" '$1 >= from && $1 <= to { n++; if ($6 != "ok") e++ }
    END { printf "%d %d\n", n, e }' "$work/shopper.log"
}
traffic_errors_since() {
  local counts
  counts=$(traffic_between "$1" 99999999999999)
  echo "${counts#* }"
}
show_traffic_since() {  # show_traffic_since MS LABEL
  local counts
  counts=$(traffic_between "$1" 99999999999999)
  note "shopper traffic $2: ${counts% *} requests, ${counts#* } errors"
}
expect_no_errors_yet() {
  show_traffic_since "$traffic_start" "since v1"
  [ "$(traffic_errors_since "$traffic_start")" = 0 ] || fail "the shopper traffic saw errors"
}

# Lay out the copy: the configuration, the smoke test, v1's migrations.
if [ "$SERVICES" = 1 ]; then db=postgres; else db=sqlite; fi
cp examples/shop/smoke.sh "$work/"
mkdir -p "$work/migrations/$db" "$work/v2-migrations"
for f in "examples/shop/migrations/$db"/*.sql; do
  version=$(basename "$f" | cut -c1-14)
  if [ "$version" -le "$V1_LAST" ]; then cp "$f" "$work/migrations/$db/"; else cp "$f" "$work/v2-migrations/"; fi
done
LISTEN=$(free_port) || fail "no free port on 127.0.0.1"
PREVIEW=$(free_port) || fail "no free port on 127.0.0.1"
LIVE=http://127.0.0.1:$LISTEN
if [ "$SERVICES" = 1 ]; then config=cutover-services.yaml; else config=cutover.yaml; fi
sed -e "s/127.0.0.1:8080/127.0.0.1:$LISTEN/" -e "s/127.0.0.1:8081/127.0.0.1:$PREVIEW/" \
  "examples/shop/$config" >"$work/cutover.yaml"
grep -q "rollback_window: ${WINDOW_S}s" "$work/cutover.yaml" ||
  fail "examples/shop/$config: expected rollback_window: ${WINDOW_S}s"

if [ "$SERVICES" = 1 ]; then
  say "starting Redis and PostgreSQL 15 on free ports"
  REDIS_PORT=$(free_port) || fail "no free port on 127.0.0.1"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$work/redis.log" 2>&1 &
  redis_pid=$!
  PG_PORT=$(free_port) || fail "no free port on 127.0.0.1"
  pg_data="$work/pg/data"
  mkdir -p "$work/pg"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$work/pg"; fi
  as_postgres "$PG_BIN/initdb" -D "$pg_data" -A trust -U postgres --no-sync --no-instructions \
    --locale=C -E UTF8 >"$work/pg/initdb.log" 2>&1 || fail "initdb failed: $(cat "$work/pg/initdb.log")"
  as_postgres "$PG_BIN/pg_ctl" -D "$pg_data" -l "$work/pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $work/pg -c fsync=off" start >/dev/null ||
    fail "PostgreSQL did not start: $(cat "$work/pg/server.log")"
  as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres shop ||
    fail "could not create the database shop: $(tail -n 5 "$work/pg/server.log")"
  sed -i -e "s#postgres://postgres@127.0.0.1:5432/shop#postgres://postgres@127.0.0.1:$PG_PORT/shop#" \
    -e "s#redis://127.0.0.1:6379#redis://127.0.0.1:$REDIS_PORT#" "$work/cutover.yaml"
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 ||
    fail "redis-server did not start: $(cat "$work/redis.log")"
  note "Redis on 127.0.0.1:$REDIS_PORT, PostgreSQL on 127.0.0.1:$PG_PORT (database shop)"
fi

say "starting cutover: the shop on $LIVE, the preview on 127.0.0.1:$PREVIEW"
note "folder $work; configuration examples/shop/$config"
CUTOVER_SHOP="$SHOP" "$CUTOVER" serve --config "$work/cutover.yaml" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  [ -S "$work/cutover.sock" ] && break
  sleep 0.05
done
[ -S "$work/cutover.sock" ] || fail "the daemon did not start: $(cat "$work/daemon.log")"

jar="$work/cookies"
shopper() {  # shopper METHOD PATH: one request of the demo's own shopper
  curl -sS --max-time 5 -b "$jar" -c "$jar" -X "$1" "$LIVE$2"
}
live_release() { curl -sS --max-time 5 "$LIVE/version"; }
# expect_ended_at STEP OUTCOME: the newest deployment (or rollback) ended
# with OUTCOME at STEP, not for another reason.
expect_ended_at() {
  local got
  got=$(cutover history shop --json |
    jq -r '.deployments[0] | "\(.outcome) \(.failed_step // "-")"')
  [ "$got" = "$2 $1" ] || fail "expected the deployment to end $2 at its $1 step; it ended: $got"
}
expect_live() {  # expect_live RELEASE PROBLEM
  [ "$(live_release)" = "$1" ] || fail "$2"
  note "live: $1"
}

# ---------------------------------------------------------------------------
say "v1: the first release (its expand migrations create the tables)"
cutover deploy shop --release v1 || fail "v1 did not go live"

"$SHOPPER" --url "$LIVE" --shoppers 4 --pause-ms 40 --log "$work/shopper.log" \
  --summary "$work/shopper-summary.json" 2>"$work/shopper.err" &
shopper_pid=$!
traffic_start=$(now_ms)
begin_phase "v1-live"
note "4 shoppers browse, fill carts and check out on $LIVE from now on, until the end"
cart=$(shopper POST '/cart/add?item=gadget')
case "$cart" in *gadget*) ;; *) fail "the gadget did not go into the cart: $cart" ;; esac
note "a shopper put a gadget in its cart on v1: $cart"
sleep 2

# ---------------------------------------------------------------------------
say "v2: expand migration, checks on the idle color, switch under traffic"
cp "$work/v2-migrations/"*.sql "$work/migrations/$db/"
cutover migrate plan --service shop
begin_phase "deploy-v2"
cutover deploy shop --release v2 || fail "v2 did not go live"
expect_live v2 "v2 is not live"
cart=$(shopper GET /cart)
case "$cart" in *gadget*) ;; *) fail "the cart lost the gadget in the switch: $cart" ;; esac
note "the same shopper's cart, now served by v2: $cart"
order=$(shopper POST '/checkout?gift_message=Happy%20birthday')
id=$(jq -er .order_id <<<"$order" 2>/dev/null) || fail "the checkout on v2 failed: $order"
placed=$(shopper GET "/orders/$id")
[ "$(jq -r .gift_message <<<"$placed" 2>/dev/null)" = "Happy birthday" ] ||
  fail "order $id lost its gift message: $placed"
note "its checkout on v2, with a gift message: order $id: $placed"
sleep 1
expect_no_errors_yet

# ---------------------------------------------------------------------------
say "by hand: roll back to v1 (it still runs inside the rollback window), then forward to v2"
begin_phase "rollback-to-v1"
cutover rollback shop || fail "the rollback to v1 failed"
expect_live v1 "v1 is not live after the rollback"
note "the cart: $(shopper GET /cart)"
sleep 2
begin_phase "forward-to-v2"
cutover rollback shop || fail "the roll forward to v2 failed"
forward_ms=$(now_ms)
expect_live v2 "v2 is not live after rolling forward"
expect_no_errors_yet

# ---------------------------------------------------------------------------
say "contract: once the ${WINDOW_S}s rollback window ends, v1 stops and v2's contract drops orders.note"
begin_phase "window-contract"
contract_state() {
  cutover migrate status --service shop --json |
    jq -r '.files[] | select(.name == "drop_order_note") | .state'
}
[ "$(contract_state)" = pending ] || fail "the contract ran inside the rollback window"
note "$(elapsed): the contract waits; a rollback to v1 is still possible"
for _ in $(seq $((WINDOW_S + 40))); do
  [ "$(contract_state)" = applied ] && break
  sleep 1
done
[ "$(contract_state)" = applied ] || fail "the contract did not run"
note "applied $(( ($(now_ms) - forward_ms) / 1000 ))s after the roll forward:"
cutover migrate status --service shop
note "cutover rollback shop (to v1, which still writes orders.note):"
if cutover rollback shop; then fail "the rollback to v1 was not refused"; fi
expect_ended_at schema failed

# ---------------------------------------------------------------------------
say "v3: its catalog answers without the products field; the check step halts it"
begin_phase "deploy-v3"
if cutover deploy shop --release v3; then fail "v3 went live"; fi
expect_ended_at check failed
expect_live v2 "live traffic moved off v2"
expect_no_errors_yet

# ---------------------------------------------------------------------------
say "v4: passes its checks, then fails every 5th request of real traffic; observe rolls it back"
begin_phase "deploy-v4"
v4_start=$(now_ms)
if cutover deploy shop --release v4; then fail "v4 was kept"; fi
expect_ended_at observe rolled_back
expect_live v2 "live is not back on v2"
show_traffic_since "$v4_start" "during v4"
sleep 2

# ---------------------------------------------------------------------------
stop_shoppers
traffic_end=$(now_ms)
cutover history shop --json >"$work/history.json"
curl -sS --max-time 5 --unix-socket "$work/cutover.sock" http://cutover/metrics >"$work/metrics.txt"
bad=$(awk -v from="$v4_start" '$6 != "ok" && !($1 >= from && $5 == "v4" && $4 == 500)' "$work/shopper.log")
[ -z "$bad" ] || fail "the shopper traffic saw errors that v4 does not explain:
$bad"

say "summary"
echo
echo "deployments (newest last):"
jq -r '
  def dur: if . < 1000 then "\(.)ms" else "\(. / 100 | floor / 10)s" end;
  ["ID", "RELEASE", "COLOR", "KIND", "OUTCOME", "DURATION", "SWITCH", "FAILED STEP"],
  (.deployments | sort_by(.id)[] |
    [ (.id | tostring), .release, .color,
      .kind, .outcome,
      (.finished_unix_ms - .started_unix_ms | dur),
      (if .switch_ms == null then "-" else (.switch_ms | dur) end),
      (.failed_step // "-") ])
  | @tsv' "$work/history.json" | column -t -s $'\t' | sed 's/^/    /'
echo
echo "requests served per color and release (the router's counters, checks through the preview included):"
{
  printf 'COLOR\tRELEASE\tREQUESTS\t5XX\n'
  awk '/^cutover_color_requests_total\{/ && /service="shop"/ {
      match($0, /color="[a-z]+"/); c = substr($0, RSTART + 7, RLENGTH - 8)
      match($0, /release="[^"]*"/); r = substr($0, RSTART + 9, RLENGTH - 10)
      k = c "\t" (r == "" ? "-" : r)
      if (!(k in n)) order[++rows] = k
      n[k] += $NF; if ($0 ~ /class="5xx"/) e[k] += $NF }
    END { for (i = 1; i <= rows; i++) printf "%s\t%d\t%d\n", order[i], n[order[i]], e[order[i]] }' \
    "$work/metrics.txt" | sort -s -k1,1
} | column -t -s $'\t' | sed 's/^/    /'
echo
echo "what the shopper traffic saw, part by part (RELEASE:REQUESTS served):"
{
  printf 'PART\tREQUESTS\tERRORS\tSERVED BY\n'
  awk -v end="$traffic_end" '{ name[NR] = $1; from[NR] = $2 }
    END { for (i = 1; i <= NR; i++) printf "%s %s %.0f\n", name[i], from[i], (i < NR ? from[i + 1] - 1 : end) }' \
    "$work/phases" >"$work/parts"
  while read -r name from to; do
    counts=$(traffic_between "$from" "$to")
    served=$(awk -v from="$from" -v to="$to" '$1 >= from && $1 <= to { n[$5]++ }
      END { for (r in n) { printf "%s%s:%d", sep, r, n[r]; sep = " " } }' "$work/shopper.log")
    printf '%s\t%s\t%s\t%s\n' "$name" "${counts% *}" "${counts#* }" "${served:--}"
  done <"$work/parts"
  total=$(traffic_between 0 99999999999999)
  printf 'whole run\t%s\t%s\t\n' "${total% *}" "${total#* }"
} | column -t -s $'\t' | sed 's/^/    /'
v4_errors=$(traffic_errors_since "$v4_start")
echo
say "done in $(elapsed): v2 is live; the cart survived every switch; the traffic's only errors ($v4_errors) came from v4 before observe rolled it back; v3 never served"
