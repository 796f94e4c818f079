# Shell functions the demos and benchmarks share. Sourced, not run.

# Prints a port nothing answers on, below the ephemeral range and outside
# 20000-29999: a port in the ephemeral range may be taken, before the
# listener binds it, by the local end of one of the many client or upstream
# connections of a run, and 20000-29999 is where cutover's process driver
# starts instances by default (another daemon's instance could take it
# meanwhile). Returns 1 when none is found.
free_port() {
  local p low
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "${low:-0}" -gt 11024 ] || low=32768
  local ranges=("10000-$((low < 20000 ? low - 1 : 19999))")
  [ "$low" -le 31000 ] || ranges+=("30000-$((low - 1))")
  for p in $(for r in "${ranges[@]}"; do shuf -i "$r" -n 100; done | shuf); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  return 1
}

# Builds cutover and cutover-testapp in Release mode in $1 (the benchmarks'
# build; CMAKE_ARGS adds configure arguments). Its output goes to stderr.
build_release() {
  {
    # shellcheck disable=SC2086  # CMAKE_ARGS: extra configure arguments, split on spaces
    cmake -S "$(dirname "${BASH_SOURCE[0]}")/.." -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      ${CMAKE_ARGS:-} &&
      cmake --build "$1" --target cutover cutover-testapp -j2
  } >&2
}
