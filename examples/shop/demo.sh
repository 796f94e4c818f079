#!/usr/bin/env bash
# The shop's walk-through: cutover deploys four releases of the shop in turn
# and each shows one outcome of a blue-green deployment (README.md):
#   v1  first release; a shopper fills a cart
#   v2  expand migration, checks (the cart made on v1 is read on v2), switch;
#       the cart survives; the contract runs once v1 is gone, and a rollback
#       to v1 is then refused
#   v3  fails its checks: live traffic never sees it
#   v4  passes its checks, fails real traffic: observe switches back
# Every step checks what it expects, so the script also tests the example.
#
# Usage: examples/shop/demo.sh [--services] [--keep]
#   --services  carts in Redis and orders in PostgreSQL (cutover-services.yaml):
#               starts redis-server and a PostgreSQL 15 on free ports and puts
#               their URLs in its copy of the file; without it, one SQLite file
#   --keep      leave the daemon, the servers and the folder in place
# BUILD (default: build) is the build folder holding cutover and cutover-shop.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
CUTOVER=$(realpath "$BUILD/cutover")
SHOP=$(realpath "$BUILD/cutover-shop")
SERVICES=0
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --services) SERVICES=1 ;;
    --keep) KEEP=1 ;;
    *) echo "usage: $0 [--services] [--keep]" >&2; exit 2 ;;
  esac
done
for bin in "$CUTOVER" "$SHOP"; do
  [ -x "$bin" ] || { echo "demo: $bin is missing; build the targets cutover and cutover-shop" >&2; exit 2; }
done

# The migrations v1 ships with: every file up to this version. The folder in
# the repository holds v2's too; each release's files go in before it is
# deployed, or cutover would run v2's contract right after v1's first deployment.
V1_LAST=20261101090000
PG_BIN=/usr/lib/postgresql/15/bin

work=$(mktemp -d /tmp/cutover-shop-demo.XXXXXX)
chmod 755 "$work"  # PostgreSQL runs as its own user below
daemon_pid="" traffic_pid="" redis_pid="" pg_data=""

as_postgres() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  if [ -n "$traffic_pid" ]; then kill "$traffic_pid" 2>/dev/null || true; fi
  if [ "$KEEP" = 1 ]; then
    echo "kept: $work (daemon pid ${daemon_pid:-none}; cutover status --config $work/cutover.yaml)"
    return
  fi
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

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\033[31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cutover() { "$CUTOVER" "$@" --config "$work/cutover.yaml"; }

# Lay out the copy: the configuration, the smoke test, v1's migrations.
if [ "$SERVICES" = 1 ]; then db=postgres; else db=sqlite; fi
cp examples/shop/smoke.sh "$work/"
mkdir -p "$work/migrations/$db" "$work/v2-migrations"
for f in "examples/shop/migrations/$db"/*.sql; do
  version=$(basename "$f" | cut -c1-14)
  if [ "$version" -le "$V1_LAST" ]; then cp "$f" "$work/migrations/$db/"; else cp "$f" "$work/v2-migrations/"; fi
done
LISTEN=$(free_port)
PREVIEW=$(free_port)
if [ "$SERVICES" = 1 ]; then config=cutover-services.yaml; else config=cutover.yaml; fi
sed -e "s/127.0.0.1:8080/127.0.0.1:$LISTEN/" -e "s/127.0.0.1:8081/127.0.0.1:$PREVIEW/" \
  "examples/shop/$config" >"$work/cutover.yaml"

if [ "$SERVICES" = 1 ]; then
  say "starting Redis and PostgreSQL on free ports"
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$work/redis.log" 2>&1 &
  redis_pid=$!
  PG_PORT=$(free_port)
  pg_data="$work/pg/data"
  mkdir -p "$work/pg"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$work/pg"; fi
  as_postgres "$PG_BIN/initdb" -D "$pg_data" -A trust -U postgres --no-sync --no-instructions \
    --locale=C -E UTF8 >"$work/pg/initdb.log" 2>&1 || fail "initdb failed: $(cat "$work/pg/initdb.log")"
  as_postgres "$PG_BIN/pg_ctl" -D "$pg_data" -l "$work/pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $work/pg -c fsync=off" start >/dev/null ||
    fail "PostgreSQL did not start: $(cat "$work/pg/server.log")"
  as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres shop
  sed -i -e "s#postgres://postgres@127.0.0.1:5432/shop#postgres://postgres@127.0.0.1:$PG_PORT/shop#" \
    -e "s#redis://127.0.0.1:6379#redis://127.0.0.1:$REDIS_PORT#" "$work/cutover.yaml"
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  echo "Redis on 127.0.0.1:$REDIS_PORT, PostgreSQL on 127.0.0.1:$PG_PORT (database shop)"
fi

say "starting cutover: traffic on 127.0.0.1:$LISTEN, preview on 127.0.0.1:$PREVIEW ($work)"
CUTOVER_SHOP="$SHOP" "$CUTOVER" serve --config "$work/cutover.yaml" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  [ -S "$work/cutover.sock" ] && break
  sleep 0.05
done
[ -S "$work/cutover.sock" ] || fail "the daemon did not start: $(cat "$work/daemon.log")"

LIVE=http://127.0.0.1:$LISTEN
jar="$work/cookies"
shopper() {  # shopper METHOD PATH: one request of a shopper with a cookie jar
  curl -sS --max-time 5 -b "$jar" -c "$jar" -X "$1" "$LIVE$2"
}

say "v1: the first release (its migrations create the tables)"
cutover deploy shop --release v1 || fail "v1 did not go live"
shopper POST '/cart/add?item=gadget' >/dev/null
cart=$(shopper POST '/cart/add?item=widget')
echo "a shopper's cart on v1: $cart"

say "v2: expand (orders.gift_message), checks on green, switch"
cp "$work/v2-migrations/"*.sql "$work/migrations/$db/"
cutover migrate plan --service shop
cutover deploy shop --release v2 || fail "v2 did not go live"
[ "$(shopper GET /version)" = v2 ] || fail "v2 is not live"
cart=$(shopper GET /cart)
echo "the same shopper's cart, now served by v2: $cart"
case "$cart" in *gadget*widget*) ;; *) fail "the cart did not survive the switch: $cart" ;; esac
order=$(shopper POST '/checkout?gift_message=Happy%20birthday')
id=$(printf '%s' "$order" | jq -r .order_id)
echo "checkout: $order"
echo "order $id: $(shopper GET "/orders/$id")"

say "v2: once v1 is stopped (rollback window 20s) its contract drops orders.note"
contract_state() {
  cutover migrate status --service shop --json |
    jq -r '.files[] | select(.name == "drop_order_note") | .state'
}
for _ in $(seq 60); do
  [ "$(contract_state)" = applied ] && break
  sleep 1
done
[ "$(contract_state)" = applied ] || fail "the contract did not run"
cutover migrate status --service shop
echo "cutover rollback shop (to v1, which still writes orders.note):"
if cutover rollback shop; then fail "the rollback to v1 was not refused"; fi

say "v3: its catalog answers without the products field; the check step stops it"
if cutover deploy shop --release v3; then fail "v3 went live"; fi
[ "$(shopper GET /version)" = v2 ] || fail "live traffic moved off v2"
echo "live is still $(shopper GET /version)"

say "v4: passes its checks, then fails every 5th request under traffic; observe rolls back"
(
  while :; do
    for path in / /products /cart; do
      curl -s -o /dev/null --max-time 5 -w '%{http_code}\n' "$LIVE$path"
    done
    sleep 0.05
  done
) >"$work/traffic.out" 2>&1 &
traffic_pid=$!
sleep 2
if cutover deploy shop --release v4; then fail "v4 was kept"; fi
sleep 1
kill "$traffic_pid"
wait "$traffic_pid" 2>/dev/null || true
traffic_pid=""
[ "$(shopper GET /version)" = v2 ] || fail "live is not back on v2"
echo "answers the traffic got during the v4 deployment (count, status):"
sort "$work/traffic.out" | uniq -c
cutover status shop
cutover history shop

say "done: v2 is live; v1 stopped and contracted away; v3 never served; v4 rolled back"
