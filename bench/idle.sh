#!/usr/bin/env bash
# Idle-connection benchmark: cutover (Release) in front of cutover-testapp;
# CONNS (default 10000) keep-alive client connections each send one GET /,
# read the response and then stay open and idle. Reports cutover's memory
# (VmRSS, VmHWM) before and with those connections, the number cutover itself
# counts as open (cutover_open_connections from /metrics on the control
# socket), and that they are all released once the clients close.
# Usage: [CONNS=10000] [WORKERS=2] bench/idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CONNS=${CONNS:-10000}
WORKERS=${WORKERS:-2}
BUILD_DIR="$ROOT/build-release"
CUTOVER="$BUILD_DIR/cutover"
TESTAPP="$BUILD_DIR/cutover-testapp"

for v in CONNS WORKERS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "idle.sh: $v must be a positive integer" >&2; exit 2; }
done

log() { printf 'idle: %s\n' "$*" >&2; }
die() { printf 'idle.sh: %s\n' "$*" >&2; exit 1; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in build-essential cmake ninja-build curl procps; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2
fi

# Both the client and cutover (a child of this shell) hold one descriptor per
# connection, plus cutover's upstream and listening sockets.
need_fds=$((CONNS + 1024))
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need_fds" ] ||
  die "the open-file limit is $(ulimit -n) (hard $(ulimit -Hn)); $need_fds are needed"

. "$ROOT/scripts/lib.sh"  # free_port, build_release
log "building cutover (Release) in $BUILD_DIR"
build_release "$BUILD_DIR" || die "Release build failed"

work=$(mktemp -d /tmp/cutover-idle.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The client: opens N connections with at most 256 connects/requests in
# flight, sends one GET / on each, reads the whole response, then keeps the
# connection open without sending anything. It writes its counts to a status
# file once every connection has its response (or failed), and again whenever
# the server closes one, and exits on SIGTERM.
cat >"$work/idleconns.c" <<'C'
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kConnecting, kWaiting, kIdle, kFailed, kClosed };
struct conn { int fd, state, len; char* buf; };
static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  if (argc != 5) { fprintf(stderr, "usage: idleconns HOST PORT COUNT STATUSFILE\n"); return 2; }
  const char* status_path = argv[4];
  int total = atoi(argv[3]);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) { fprintf(stderr, "bad host\n"); return 2; }
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  struct conn* c = calloc(total, sizeof *c);
  int ep = epoll_create1(0);
  const char req[] = "GET / HTTP/1.1\r\nHost: idle.test\r\nUser-Agent: idleconns\r\n\r\n";
  const int max_inflight = 256;
  int started = 0, inflight = 0, ok = 0, failed = 0, closed = 0, non200 = 0, reported = 0;
  int written_closed = -1;
  double t0 = now_ms(), t_done = 0;
  struct epoll_event evs[512];
  char scratch[4096];
  while (!stop) {
    while (started < total && inflight < max_inflight) {
      struct conn* k = &c[started];
      k->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (k->fd < 0) { perror("socket"); k->state = kFailed; failed++; started++; continue; }
      struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (unsigned)started};
      if (connect(k->fd, (struct sockaddr*)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        perror("connect"); close(k->fd); k->state = kFailed; failed++; started++; continue;
      }
      k->state = kConnecting;
      epoll_ctl(ep, EPOLL_CTL_ADD, k->fd, &e);
      started++;
      inflight++;
    }
    if (!reported && ok + failed == total) {
      t_done = now_ms();
      reported = 1;
    }
    if (reported && closed != written_closed) {
      written_closed = closed;
      char tmp[4096];
      snprintf(tmp, sizeof tmp, "%s.tmp", status_path);
      FILE* f = fopen(tmp, "w");
      if (f) {
        fprintf(f, "done=1 total=%d ok=%d failed=%d non200=%d closed_by_server=%d open_ms=%.0f\n",
                total, ok, failed, non200, closed, t_done - t0);
        fclose(f);
        rename(tmp, status_path);
      }
    }
    int n = epoll_wait(ep, evs, 512, reported ? 1000 : 100);
    for (int i = 0; i < n; i++) {
      struct conn* k = &c[evs[i].data.u32];
      if (k->state == kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || write(k->fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
          close(k->fd); k->state = kFailed; failed++; inflight--; continue;
        }
        k->state = kWaiting;
        k->buf = malloc(8192);
        struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[i].data.u32};
        epoll_ctl(ep, EPOLL_CTL_MOD, k->fd, &e);
      } else if (k->state == kWaiting) {
        ssize_t r = read(k->fd, k->buf + k->len, 8191 - k->len);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          close(k->fd); free(k->buf); k->buf = NULL; k->state = kFailed; failed++; inflight--;
          continue;
        }
        k->len += r;
        k->buf[k->len] = 0;
        char* end = strstr(k->buf, "\r\n\r\n");
        if (!end) {
          if (k->len >= 8191) { close(k->fd); k->state = kFailed; failed++; inflight--; }
          continue;
        }
        long body = 0;
        for (char* h = strstr(k->buf, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n")) {
          if (strncasecmp(h + 2, "content-length:", 15) == 0) body = strtol(h + 17, NULL, 10);
        }
        if ((end + 4 - k->buf) + body > k->len) continue;
        if (strncmp(k->buf, "HTTP/1.1 200", 12) != 0) non200++;
        free(k->buf);
        k->buf = NULL;
        k->state = kIdle;
        ok++;
        inflight--;
      } else if (k->state == kIdle) {
        ssize_t r = read(k->fd, scratch, sizeof scratch);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          epoll_ctl(ep, EPOLL_CTL_DEL, k->fd, NULL);
          close(k->fd);
          k->state = kClosed;
          closed++;
        }
      }
    }
  }
  return 0;
}
C
cc -O2 -Wall -o "$work/idleconns" "$work/idleconns.c" || die "cannot compile the client"

"$TESTAPP" --name backend --port 0 --port-file "$work/backend.port" --quiet >"$work/backend.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/backend.port" ] && break; sleep 0.05; done
[ -s "$work/backend.port" ] || die "cutover-testapp did not start"

PORT=$(free_port)
SOCK="$work/cutover.sock"
cat >"$work/cutover.yaml" <<YAML
listen: 127.0.0.1:$PORT
preview: off
control: ./cutover.sock
store: ./state/cutover.db
access_log: off
timeouts: {client_idle: 600s}
services:
  web:
    hosts: ["*"]
    driver:
      type: static
      blue: [127.0.0.1:$(cat "$work/backend.port")]
YAML
"$CUTOVER" serve --config "$work/cutover.yaml" --workers "$WORKERS" >"$work/cutover.log" 2>&1 &
CUTOVER_PID=$!
pids+=("$CUTOVER_PID")
ready=0
for _ in $(seq 200); do
  if [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" 2>/dev/null)" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.05
done
[ "$ready" = 1 ] || die "cutover does not answer 200 on 127.0.0.1:$PORT; log: $(cat "$work/cutover.log")"

open_connections() {
  curl -s -m 5 --unix-socket "$SOCK" http://cutover/metrics |
    awk '$1 == "cutover_open_connections" {print $2; found = 1} END {if (!found) print "?"}'
}
kb() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$CUTOVER_PID/status"; }
mib() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1024 }'; }

base_rss=$(kb VmRSS)
base_hwm=$(kb VmHWM)
base_open=$(open_connections)

log "opening $CONNS idle keep-alive connections to cutover on 127.0.0.1:$PORT"
"$work/idleconns" 127.0.0.1 "$PORT" "$CONNS" "$work/client.status" 2>"$work/client.err" &
CLIENT_PID=$!
pids+=("$CLIENT_PID")
for _ in $(seq 1200); do
  [ -s "$work/client.status" ] && break
  kill -0 "$CLIENT_PID" 2>/dev/null || die "the client exited: $(cat "$work/client.err")"
  sleep 0.1
done
[ -s "$work/client.status" ] || die "the client did not finish opening connections in 120 s"

# cutover counts a connection from its accept; poll until its count matches
# the client's successful connections (or 10 s pass), then read memory.
client_ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' "$work/client.status")
open_now=$(open_connections)
for _ in $(seq 100); do
  [ "$open_now" = "$client_ok" ] && break
  sleep 0.1
  open_now=$(open_connections)
done
rss=$(kb VmRSS)
hwm=$(kb VmHWM)
threads=$(kb Threads)
status=$(cat "$work/client.status")

kill -TERM "$CLIENT_PID" 2>/dev/null || true
wait "$CLIENT_PID" 2>/dev/null || true
open_after=$(open_connections)
for _ in $(seq 100); do
  [ "$open_after" = 0 ] && break
  sleep 0.1
  open_after=$(open_connections)
done
rss_after=$(kb VmRSS)

field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$status"; }
per_conn=$(awk -v a="$rss" -v b="$base_rss" -v n="$open_now" \
  'BEGIN { if (n + 0 > 0) printf "%.2f", (a - b) / n; else print "-" }')

echo "## cutover with $CONNS idle keep-alive connections (bench/idle.sh)"
echo
echo '```'
echo "command:   CONNS=$CONNS WORKERS=$WORKERS bench/idle.sh"
echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine:   $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)"
echo "cutover:   $("$CUTOVER" --version 2>&1 | head -n1) (Release build), --workers $WORKERS, $threads threads"
echo "backend:   cutover-testapp on 127.0.0.1"
echo "client:    $CONNS connections; each sends GET / once, reads the response, then stays open idle"
echo "           ($(field ok) complete responses, $(field non200) of them not 200; $(field failed) failed;"
echo "            $(field closed_by_server) closed by cutover while idle; all opened in $(field open_ms) ms)"
echo '```'
echo
echo "| | open connections (cutover_open_connections) | VmRSS MiB | VmHWM MiB |"
echo "| --- | ---: | ---: | ---: |"
echo "| before the clients | $base_open | $(mib "$base_rss") | $(mib "$base_hwm") |"
echo "| with $CONNS idle clients | $open_now | $(mib "$rss") | $(mib "$hwm") |"
echo "| after the clients closed | $open_after | $(mib "$rss_after") | $(mib "$(kb VmHWM)") |"
echo
echo "Memory per idle connection: $per_conn KiB (VmRSS growth / open connections)."
echo
echo "cutover.yaml:"
echo '```yaml'
cat "$work/cutover.yaml"
echo '```'

ok=1
[ "$open_now" = "$CONNS" ] || { log "expected $CONNS open connections, cutover reports $open_now"; ok=0; }
[ "$open_after" = 0 ] || { log "cutover still reports $open_after open connections after the clients closed"; ok=0; }
[ "$ok" = 1 ]
