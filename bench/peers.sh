#!/usr/bin/env bash
# Peer benchmark: cutover, HAProxy and nginx as reverse proxies in front of one
# nginx backend, on this machine, with identical settings. For 1 and 2 proxy
# workers/threads and 50 and 256 connections, wrk runs against each proxy in
# alternating rounds; prints median requests/s, p50/p99 latency, proxy CPU
# time per request and proxy peak RSS as markdown, plus the machine, versions
# and configs, so the whole output can be pasted into a document.
# Usage: [DURATION=10] [ROUNDS=5] bench/peers.sh
# Progress goes to stderr; the report goes to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
WORKER_COUNTS=(1 2)
CONN_COUNTS=(50 256)
WRK_THREADS=2
PROXIES=(cutover haproxy nginx)
BUILD_DIR="$ROOT/build-release"
CUTOVER="$BUILD_DIR/cutover"
BODY="Hello, World!"
PINNING="none: wrk, the backend and the proxy are scheduled by the kernel on all $(nproc) cores, the same for every proxy"

for v in DURATION ROUNDS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "peers.sh: $v must be a positive integer" >&2; exit 2; }
done

log() { printf 'peers: %s\n' "$*" >&2; }
die() { printf 'peers.sh: %s\n' "$*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# --- Dependencies -----------------------------------------------------------

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# The packages' init scripts start a distro nginx/haproxy on install; nothing
# of theirs may keep running, or it would share the cores with the benchmark.
stop_distro_services() {
  $SUDO systemctl disable --now nginx haproxy 2>/dev/null || true
  local f pid comm
  for f in /run/nginx.pid /run/haproxy.pid /var/run/nginx.pid /var/run/haproxy.pid; do
    [ -r "$f" ] || continue
    pid=$(head -n1 "$f" 2>/dev/null | tr -dc '0-9')
    [ -n "$pid" ] || continue
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    case "$comm" in
      nginx | haproxy)
        log "stopping the distro's $comm (pid $pid) started by its package"
        $SUDO kill -TERM "$pid" 2>/dev/null || true
        ;;
    esac
  done
}

install_missing() {
  local missing=() p
  for p in wrk haproxy nginx curl procps cmake ninja-build build-essential; do
    installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # policy-rc.d answering 101 tells the packages' maintainer scripts not to
  # start their services; it is only put in place when none exists.
  local policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
  fi
  local rc=0
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
  [ "$policy_created" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
  stop_distro_services
  [ "$rc" -eq 0 ] || die "apt-get failed (exit $rc)"
}

install_missing
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$HAPROXY" ] || die "haproxy not found"
[ -x "$NGINX" ] || die "nginx not found"

. "$ROOT/scripts/lib.sh"  # free_port, build_release
# shellcheck source=bench/rounds.sh
. "$ROOT/bench/rounds.sh"  # spread, ratio_table
log "building cutover (Release) in $BUILD_DIR"
build_release "$BUILD_DIR" || die "Release build failed"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
[ "$FD_LIMIT" = unlimited ] && FD_LIMIT=65536
# The connection limit of HAProxy (maxconn) and nginx (worker_connections):
# far above the 256 connections of the test, and within the descriptor limit
# (HAProxy needs two descriptors per connection and refuses to start beyond).
MAX_CONNS=4096
[ "$FD_LIMIT" -ge $((2 * MAX_CONNS + 1024)) ] ||
  die "the open-file limit is $FD_LIMIT (hard $(ulimit -Hn)); $((2 * MAX_CONNS + 1024)) are needed"

# --- Processes --------------------------------------------------------------

work=$(mktemp -d /tmp/cutover-peers.XXXXXX)
started=()  # pids of everything started here, nginx workers included

kill_started() {
  local p
  for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${started[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${started[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  started=()
}
cleanup() {
  kill_started
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until GET / through 127.0.0.1:$1 answers 200 with the backend's body.
wait_ready() {  # $3: the log to show when it never answers
  local port=$1 name=$2 log_file=${3:-} out
  for _ in $(seq 200); do
    out=$(curl -s -m 1 -w '|%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null || true)
    [ "$out" = "$BODY|200" ] && return 0
    sleep 0.05
  done
  [ -n "$log_file" ] && tail -n 20 "$log_file" >&2
  die "$name on 127.0.0.1:$port does not answer 200 '$BODY' (last: '$out')"
}

# Prints the pids of nginx's master and its workers, once all $2 workers
# are forked (the master writes its pid file before forking them).
nginx_pids() {
  local master kids
  master=$(tr -dc '0-9' <"$1")
  for _ in $(seq 200); do
    kids=$(pgrep -P "$master" || true)
    [ "$(echo "$kids" | grep -c .)" -ge "$2" ] && break
    sleep 0.05
  done
  echo "$master"
  echo "$kids"
}

nginx_common() {  # $1: directory holding temp dirs and pid file
  cat <<EOF
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile $FD_LIMIT;
events { worker_connections $MAX_CONNS; }
EOF
}
nginx_temp_paths() {
  local d
  for d in client_body proxy fastcgi uwsgi scgi; do echo "  ${d}_temp_path $1/tmp/$d;"; done
}

start_nginx() {  # $1: directory holding $1/nginx.conf
  local dir=$1
  mkdir -p "$dir/tmp"
  "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >&2 || die "bad nginx config $dir/nginx.conf"
  "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
  started+=($!)
  for _ in $(seq 400); do [ -s "$dir/nginx.pid" ] && break; sleep 0.05; done
  if [ ! -s "$dir/nginx.pid" ]; then
    tail -n 20 "$dir/error.log" "$dir/stdout.log" >&2 2>/dev/null || true
    die "nginx in $dir did not start"
  fi
}

# --- Backend ----------------------------------------------------------------

BACKEND_PORT=$(free_port)
bdir="$work/backend"
mkdir -p "$bdir"
{
  echo "worker_processes 1;"
  nginx_common "$bdir"
  cat <<EOF
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
$(nginx_temp_paths "$bdir")
  server {
    listen 127.0.0.1:$BACKEND_PORT backlog=4096;
    location / { return 200 "$BODY"; }
  }
}
EOF
} >"$bdir/nginx.conf"
start_nginx "$bdir"
read -r -a backend_pids <<<"$(nginx_pids "$bdir/nginx.pid" 1 | tr '\n' ' ')"
started+=("${backend_pids[@]:1}")  # its master is there already
wait_ready "$BACKEND_PORT" "backend nginx" "$bdir/error.log"

# --- Proxy configs ----------------------------------------------------------

declare -A PORT
for p in "${PROXIES[@]}"; do PORT[$p]=$(free_port); done
while [ "${PORT[haproxy]}" = "${PORT[cutover]}" ] || [ "${PORT[nginx]}" = "${PORT[cutover]}" ] ||
  [ "${PORT[nginx]}" = "${PORT[haproxy]}" ] || [ "${PORT[cutover]}" = "$BACKEND_PORT" ] ||
  [ "${PORT[haproxy]}" = "$BACKEND_PORT" ] || [ "${PORT[nginx]}" = "$BACKEND_PORT" ]; do
  for p in "${PROXIES[@]}"; do PORT[$p]=$(free_port); done
done

write_configs() {  # $1: workers/threads
  local n=$1
  mkdir -p "$work/cutover" "$work/haproxy" "$work/nginx"
  cat >"$work/cutover/cutover.yaml" <<EOF
listen: 127.0.0.1:${PORT[cutover]}
preview: off
control: ./cutover.sock
store: ./state/cutover.db
access_log: off
services:
  web:
    hosts: ["*"]
    driver:
      type: static
      blue: [127.0.0.1:$BACKEND_PORT]
    health: {path: /, interval: 1s, timeout: 500ms}
EOF
  cat >"$work/haproxy/haproxy.cfg" <<EOF
global
  nbthread $n
  maxconn $MAX_CONNS

defaults
  mode http
  option http-keep-alive
  http-reuse always
  maxconn $MAX_CONNS
  timeout connect 3s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout http-keep-alive 60s

frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend be

backend be
  option httpchk GET /
  server s1 127.0.0.1:$BACKEND_PORT check inter 1s
EOF
  {
    echo "worker_processes $n;"
    nginx_common "$work/nginx"
    cat <<EOF
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
$(nginx_temp_paths "$work/nginx")
  upstream backend {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  } >"$work/nginx/nginx.conf"
}

declare -A PIDS  # proxy -> space-separated pids of all its processes

start_proxies() {  # $1: workers/threads
  local n=$1
  write_configs "$n"
  rm -rf "$work/cutover/state" "$work/cutover/cutover.sock"
  "$CUTOVER" serve --config "$work/cutover/cutover.yaml" --workers "$n" >"$work/cutover/log" 2>&1 &
  PIDS[cutover]=$!
  started+=($!)
  "$HAPROXY" -c -q -f "$work/haproxy/haproxy.cfg" >&2 || die "bad haproxy config"
  "$HAPROXY" -db -f "$work/haproxy/haproxy.cfg" >"$work/haproxy/log" 2>&1 &
  PIDS[haproxy]=$!
  started+=($!)
  start_nginx "$work/nginx"
  PIDS[nginx]=$(nginx_pids "$work/nginx/nginx.pid" "$n" | tr '\n' ' ')
  local nginx_all
  read -r -a nginx_all <<<"${PIDS[nginx]}"
  started+=("${nginx_all[@]:1}")  # its master is there already
  wait_ready "${PORT[cutover]}" cutover "$work/cutover/log"
  wait_ready "${PORT[haproxy]}" haproxy "$work/haproxy/log"
  wait_ready "${PORT[nginx]}" nginx "$work/nginx/error.log"
}

stop_proxies() {
  local keep=() p q drop
  for p in "${PROXIES[@]}"; do
    for q in ${PIDS[$p]}; do kill -TERM "$q" 2>/dev/null || true; done
  done
  for p in "${PROXIES[@]}"; do
    for q in ${PIDS[$p]}; do
      for _ in $(seq 100); do kill -0 "$q" 2>/dev/null || break; sleep 0.05; done
      kill -KILL "$q" 2>/dev/null || true
    done
  done
  for q in "${started[@]}"; do
    drop=0
    for p in "${PROXIES[@]}"; do [[ " ${PIDS[$p]} " == *" $q "* ]] && drop=1; done
    [ "$drop" = 0 ] && keep+=("$q")
  done
  started=("${keep[@]}")
  wait "${PIDS[cutover]}" "${PIDS[haproxy]}" 2>/dev/null || true
}

# Sum of utime+stime, in clock ticks, of the given pids.
cpu_ticks() {
  local t=0 p s f
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }  # the fields after "pid (comm) "; comm may hold spaces
    read -r -a f <<<"$s"
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}

# Sum of a /proc/PID/status field (kB) over the given pids.
status_kb() {
  local field=$1 t=0 p v
  shift
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# Latency in ms from a wrk value such as 812.00us, 1.52ms, 2.01s or 1.00m.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    else if (u == "h") n *= 3600000
    printf "%.3f", n }'
}

CLK_TCK=$(getconf CLK_TCK)
results="$work/results.tsv"  # workers conns proxy round rps p50 p99 cpu_us errors requests
: >"$results"

# Runs wrk against port $1; appends one row to $results. $2.. : the row's
# leading fields (workers conns proxy round); the rest: pids to charge CPU to.
run_wrk() {
  local port=$1 n=$2 c=$3 name=$4 round=$5
  shift 5
  local out="$work/wrk-$name-$n-$c-$round.txt" before after
  before=$(cpu_ticks "$@")
  wrk -t"$WRK_THREADS" -c"$c" -d"${DURATION}s" --latency "http://127.0.0.1:$port/" >"$out" 2>&1 ||
    die "wrk failed: $(cat "$out")"
  after=$(cpu_ticks "$@")
  local rps requests p50 p99 non2xx sockerr cpu_us
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  requests=$(awk '/requests in/ {print $1}' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
  sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$out")
  if [ -z "$rps" ] || [ -z "$requests" ]; then die "cannot parse wrk output: $(cat "$out")"; fi
  if [ $# -gt 0 ] && [ "$requests" -gt 0 ]; then
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v r="$requests" \
      'BEGIN { printf "%.2f", t / hz * 1e6 / r }')
  else
    cpu_us="-"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$c" "$name" "$round" "$rps" "$p50" "$p99" \
    "$cpu_us" "$(( ${non2xx:-0} + ${sockerr:-0} ))" "$requests" >>"$results"
  log "$(printf '%-8s workers=%s conns=%-3s round=%s  %10s req/s  p50 %8s ms  p99 %8s ms  cpu %6s us/req' \
    "$name" "$n" "$c" "$round" "$rps" "$p50" "$p99" "$cpu_us")"
}

# --- Runs -------------------------------------------------------------------

total_runs=$(( ${#CONN_COUNTS[@]} * ROUNDS * (1 + ${#WORKER_COUNTS[@]} * ${#PROXIES[@]}) ))
log "$total_runs runs of ${DURATION}s; work dir $work"

declare -A RSS_HWM
for c in "${CONN_COUNTS[@]}"; do
  for r in $(seq "$ROUNDS"); do run_wrk "$BACKEND_PORT" - "$c" backend "$r"; done
done

for n in "${WORKER_COUNTS[@]}"; do
  start_proxies "$n"
  # Warm-up: fills each proxy's upstream pool and faults in its memory.
  for p in "${PROXIES[@]}"; do
    wrk -t"$WRK_THREADS" -c"${CONN_COUNTS[-1]}" -d1s "http://127.0.0.1:${PORT[$p]}/" >/dev/null 2>&1 || true
  done
  for c in "${CONN_COUNTS[@]}"; do
    for r in $(seq "$ROUNDS"); do
      # Round r starts with proxy r-1 (mod 3): each proxy takes each slot of
      # the rotation in turn, so drift of the machine hits all of them alike.
      for i in $(seq 0 $((${#PROXIES[@]} - 1))); do
        p=${PROXIES[$(((r - 1 + i) % ${#PROXIES[@]}))]}
        # shellcheck disable=SC2086
        run_wrk "${PORT[$p]}" "$n" "$c" "$p" "$r" ${PIDS[$p]}
      done
    done
  done
  for p in "${PROXIES[@]}"; do
    # shellcheck disable=SC2086
    RSS_HWM[$p,$n]=$(status_kb VmHWM ${PIDS[$p]})
    # shellcheck disable=SC2086
    RSS_HWM[$p,$n,rss]=$(status_kb VmRSS ${PIDS[$p]})
    RSS_HWM[$p,$n,procs]=$(wc -w <<<"${PIDS[$p]}")
  done
  stop_proxies
done

# --- Report -----------------------------------------------------------------

# Median of a column over the rows matching workers/conns/proxy.
median() {  # $1 workers $2 conns $3 proxy $4 column (1-based)
  awk -F'\t' -v n="$1" -v c="$2" -v p="$3" -v k="$4" \
    '$1 == n && $2 == c && $3 == p && $k != "-" {print $k}' "$results" | sort -g |
    awk '{v[NR] = $1} END {
      if (NR == 0) { print "-"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      print m }'
}
sum_col() {
  awk -F'\t' -v n="$1" -v c="$2" -v p="$3" -v k="$4" \
    '$1 == n && $2 == c && $3 == p {s += $k} END {print s + 0}' "$results"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
fmt_int() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.0f", v }'; }
fmt_ms() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.2f", v }'; }
mib() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1024 }'; }

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
# wrk -v prints its version with the usage and exits 1.
wrk_version=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 {print $1, $2}')

echo "## cutover vs HAProxy vs nginx (bench/peers.sh)"
echo
echo '```'
echo "command:   DURATION=$DURATION ROUNDS=$ROUNDS bench/peers.sh"
echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine:   $(nproc) cores, ${cpu_model:-unknown CPU}, $mem_total RAM, Linux $(uname -r)"
cxx_flags=$(sed -n 's/^CMAKE_CXX_FLAGS:STRING=//p; s/^CMAKE_CXX_FLAGS_RELEASE:STRING=//p' \
  "$BUILD_DIR/CMakeCache.txt" 2>/dev/null | tr '\n' ' ' | sed 's/  */ /g; s/^ //; s/ $//')
echo "cutover:   $("$CUTOVER" --version 2>&1 | head -n1) (Release build, $BUILD_DIR, flags: $cxx_flags)"
echo "haproxy:   $("$HAPROXY" -v 2>&1 | head -n1)"
echo "nginx:     $("$NGINX" -v 2>&1 | head -n1 | sed 's/^nginx version: //') (proxy and backend)"
echo "wrk:       $wrk_version, -t$WRK_THREADS -c{${CONN_COUNTS[*]}} -d${DURATION}s --latency, GET / (13-byte body)"
echo "backend:   nginx, 1 worker, returns 200 \"$BODY\" from memory, on the same machine"
echo "rounds:    $ROUNDS per case; in each round every proxy runs once, order rotated each round"
echo "           (round 1: cutover, haproxy, nginx; round 2: haproxy, nginx, cutover; ...)"
echo "pinning:   $PINNING"
echo "CPU:       utime+stime of all the proxy's processes (/proc/PID/stat) over the run / requests"
echo "RSS:       VmHWM summed over the proxy's processes after all runs of a worker count"
echo '```'
echo
echo "### Throughput and latency (median of $ROUNDS round(s))"
echo
echo "| workers | conns | backend direct req/s | cutover req/s | HAProxy req/s | nginx req/s | cutover/HAProxy | cutover/nginx | cutover p50 / p99 ms | HAProxy p50 / p99 ms | nginx p50 / p99 ms | p99 cutover/HAProxy | errors c/h/n |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in "${WORKER_COUNTS[@]}"; do
  for c in "${CONN_COUNTS[@]}"; do
    declare -A M=()
    for p in "${PROXIES[@]}"; do
      M[$p,rps]=$(median "$n" "$c" "$p" 5)
      M[$p,p50]=$(median "$n" "$c" "$p" 6)
      M[$p,p99]=$(median "$n" "$c" "$p" 7)
      M[$p,err]=$(sum_col "$n" "$c" "$p" 9)
    done
    ceiling=$(median - "$c" backend 5)
    echo "| $n | $c | $(fmt_int "$ceiling") | $(fmt_int "${M[cutover,rps]}") | $(fmt_int "${M[haproxy,rps]}") | $(fmt_int "${M[nginx,rps]}") | $(ratio "${M[cutover,rps]}" "${M[haproxy,rps]}") | $(ratio "${M[cutover,rps]}" "${M[nginx,rps]}") | $(fmt_ms "${M[cutover,p50]}") / $(fmt_ms "${M[cutover,p99]}") | $(fmt_ms "${M[haproxy,p50]}") / $(fmt_ms "${M[haproxy,p99]}") | $(fmt_ms "${M[nginx,p50]}") / $(fmt_ms "${M[nginx,p99]}") | $(ratio "${M[cutover,p99]}" "${M[haproxy,p99]}") | ${M[cutover,err]}/${M[haproxy,err]}/${M[nginx,err]} |"
  done
done
echo
echo "Backend direct: wrk against the backend without a proxy (median of $ROUNDS), the ceiling for each connection count."
echo "Errors: non-2xx responses plus socket errors, summed over the rounds."
echo
echo "### Spread of the rounds (requests/s, lowest–highest of $ROUNDS)"
echo
echo "| workers | conns | cutover | HAProxy | nginx |"
echo "| ---: | ---: | ---: | ---: | ---: |"
for n in "${WORKER_COUNTS[@]}"; do
  for c in "${CONN_COUNTS[@]}"; do
    echo "| $n | $c | $(spread "$n" "$c" cutover 5) | $(spread "$n" "$c" haproxy 5) | $(spread "$n" "$c" nginx 5) |"
  done
done
echo
echo "### cutover's requests/s over each peer's in the same round"
echo
ratio_table 5
echo
echo "The lowest and highest over the rounds, their geometric mean with a 95% confidence interval"
echo "(Student's t on the logarithms), and the rounds in which cutover served more."
echo
echo "### Proxy CPU time per request (median of $ROUNDS round(s), µs)"
echo
echo "| workers | conns | cutover | HAProxy | nginx | cutover/HAProxy | cutover/nginx |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in "${WORKER_COUNTS[@]}"; do
  for c in "${CONN_COUNTS[@]}"; do
    cu=$(median "$n" "$c" cutover 8)
    ha=$(median "$n" "$c" haproxy 8)
    ng=$(median "$n" "$c" nginx 8)
    echo "| $n | $c | $cu | $ha | $ng | $(ratio "$cu" "$ha") | $(ratio "$cu" "$ng") |"
  done
done
echo
echo "### Proxy peak memory (VmHWM, MiB, summed over processes)"
echo
echo "| workers | cutover | HAProxy | nginx (master + workers) |"
echo "| ---: | ---: | ---: | ---: |"
for n in "${WORKER_COUNTS[@]}"; do
  echo "| $n | $(mib "${RSS_HWM[cutover,$n]}") | $(mib "${RSS_HWM[haproxy,$n]}") | $(mib "${RSS_HWM[nginx,$n]}") (${RSS_HWM[nginx,$n,procs]} processes) |"
done
echo
echo "### Every run"
echo
echo "| workers | conns | proxy | round | req/s | p50 ms | p99 ms | CPU µs/req | errors | requests |"
echo "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$results"
echo
echo "### Configurations"
echo
echo "Ports are chosen at random per run. cutover: \`cutover serve --config cutover.yaml --workers N\`;"
echo "HAProxy: \`haproxy -db -f haproxy.cfg\` (one process, N threads); nginx: \`nginx -p DIR -c nginx.conf -g 'daemon off;'\`."
echo "Shown for N = ${WORKER_COUNTS[-1]}; N = ${WORKER_COUNTS[0]} differs only in --workers / nbthread / worker_processes."
echo
echo "cutover.yaml:"
echo '```yaml'
cat "$work/cutover/cutover.yaml"
echo '```'
echo "haproxy.cfg:"
echo '```'
cat "$work/haproxy/haproxy.cfg"
echo '```'
echo "nginx.conf (proxy):"
echo '```nginx'
cat "$work/nginx/nginx.conf"
echo '```'
echo "nginx.conf (backend):"
echo '```nginx'
cat "$bdir/nginx.conf"
echo '```'
