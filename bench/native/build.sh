#!/bin/sh
# Builds the standalone GEMM harness from the project's own CPU and core sources (no N-API).
# Usage: sh bench/native/build.sh [out]   (default: bench/out/gemm_check)
set -e
cd "$(dirname "$0")/../.."
out="${1:-bench/out/gemm_check}"
mkdir -p "$(dirname "$out")"
g++ -std=c++17 -O3 -pthread -Wall -Wextra -Wno-unused-parameter -o "$out" \
  bench/native/gemm_check.cpp native/cpu/*.cpp native/core/*.cpp
echo "built $out"
