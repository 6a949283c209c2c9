#!/usr/bin/env bash
# tests/install/run.sh — `make install` into a temporary prefix (and through
# DESTDIR), then examples/simple.c built against the installed library with
# `pkg-config --cflags --libs forkpoint`, shared and static, and run on the
# real model. Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
MODELS=${FP_TEST_MODELS:-$(realpath -m ../shared/models)}
T=$(mktemp -d /tmp/fp-install.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok - $1"; }
bad() { fail=$((fail+1)); echo "not ok - $1"; }

P="$T/prefix"
if make --no-print-directory install PREFIX="$P" > "$T/install.log" 2>&1; then ok "make install PREFIX=$P"; else bad "make install"; tail -20 "$T/install.log"; fi
for f in bin/forkpoint bin/forkpoint-serve lib/libforkpoint.so lib/libforkpoint.so.0 lib/libforkpoint.so.0.1.0 lib/libforkpoint.a \
         lib/libforkpoint_store.a lib/libforkpoint_fetch.a include/forkpoint.h include/forkpoint_learn.h \
         include/forkpoint_store.h include/forkpoint_fetch.h lib/pkgconfig/forkpoint.pc \
         share/man/man1/forkpoint.1 share/man/man1/forkpoint-write.1 share/man/man1/forkpoint-serve.1 share/man/man1/forkpoint-learn.1; do
  [ -e "$P/$f" ] && ok "installed $f" || bad "missing $f"
done
soname=$(objdump -p "$P/lib/libforkpoint.so.0.1.0" 2>/dev/null | awk '/SONAME/ {print $2}')
[ "$soname" = libforkpoint.so.0 ] && ok "soname libforkpoint.so.0" || bad "soname is '$soname'"
# the shared library exports the public API only
if nm -D --defined-only "$P/lib/libforkpoint.so" | awk '{print $3}' | grep -qE '^(fpi_|llama_|ggml_)'; then
  bad "internal or llama.cpp symbols exported"; else ok "exports fp_* only"; fi
nm -D --defined-only "$P/lib/libforkpoint.so" | grep -q ' fp_session_new$' && ok "exports fp_session_new" || bad "fp_session_new not exported"
for m in forkpoint forkpoint-write forkpoint-serve forkpoint-learn; do
  out=$(MANWIDTH=80 man -l "$P/share/man/man1/$m.1" 2>&1 | col -b)
  grep -q "NAME" <<<"$out" && grep -q "SYNOPSIS" <<<"$out" && ok "man $m renders" || bad "man $m: $out"
done

export PKG_CONFIG_PATH="$P/lib/pkgconfig"
[ "$(pkg-config --modversion forkpoint)" = 0.1.0 ] && ok "pkg-config version" || bad "pkg-config --modversion: $(pkg-config --modversion forkpoint 2>&1)"
if cc -std=c11 examples/simple.c $(pkg-config --cflags --libs forkpoint) -o "$T/simple" 2> "$T/cc.log"; then ok "examples/simple.c builds with pkg-config (shared)"; else bad "shared build: $(cat "$T/cc.log")"; fi
out=$(LD_LIBRARY_PATH="$P/lib" "$T/simple" "$MODELS/stories260K.gguf" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q '^Once upon a time' <<<"$out" && grep -q 'forks, ended' <<<"$out" && ok "the shared build writes a story" || bad "shared run (rc $rc): $out"
ldd "$T/simple" | grep -q "$P/lib/libforkpoint.so.0" || LD_LIBRARY_PATH="$P/lib" ldd "$T/simple" | grep -q "libforkpoint.so.0" && ok "linked against libforkpoint.so.0" || bad "not linked to the installed .so"
if cc -std=c11 examples/simple.c -static-libgcc $(pkg-config --cflags forkpoint) "$P/lib/libforkpoint.a" $(pkg-config --static --libs-only-l forkpoint | sed 's/-lforkpoint//') -o "$T/simple-static" 2> "$T/cc2.log"; then
  ok "examples/simple.c builds against libforkpoint.a (pkg-config --static)"; else bad "static build: $(tail -5 "$T/cc2.log")"; fi
out=$("$T/simple-static" "$MODELS/stories260K.gguf" "The cat" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q '^The cat' <<<"$out" && ok "the static build writes a story" || bad "static run (rc $rc): $out"
LD_LIBRARY_PATH="$P/lib" "$T/simple" /nonexistent.gguf > /dev/null 2>&1; [ $? -eq 2 ] && ok "bad model: exit 2" || bad "bad model exit"
"$P/bin/forkpoint" version | grep -q 'forkpoint 0.1.0' && ok "installed forkpoint runs" || bad "installed forkpoint"

# a packager's staged install: DESTDIR prefixes every path, the .pc names the real prefix
S="$T/stage"
make --no-print-directory install PREFIX=/usr DESTDIR="$S" > "$T/stage.log" 2>&1 && [ -e "$S/usr/lib/libforkpoint.so.0.1.0" ] && [ -e "$S/usr/bin/forkpoint" ] \
  && ok "DESTDIR staging" || bad "DESTDIR staging"
grep -q '^prefix=/usr$' "$S/usr/lib/pkgconfig/forkpoint.pc" 2>/dev/null && ok "staged .pc names /usr" || bad "staged .pc prefix"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
