#!/usr/bin/env bash
# Builds the HTTP parser's libFuzzer target with clang (ASan + UBSan) and runs
# it for SECONDS (default 20) from the seed corpus in tests/fuzz/corpus.
# Usage: tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-20}
OUT=${2:-build/fuzz}
CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX is missing; run scripts/setup" >&2; exit 2; }
mkdir -p "$OUT/corpus"
cp -n tests/fuzz/corpus/* "$OUT/corpus/" 2>/dev/null || true
"$CXX" -std=c++2b -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Isrc tests/fuzz/http_parser_fuzz.cc src/router/http_parser.cc -o "$OUT/http_parser_fuzz"
"$OUT/http_parser_fuzz" -max_total_time="$SECONDS_TO_RUN" -max_len=2048 -print_final_stats=1 \
  "$OUT/corpus"
