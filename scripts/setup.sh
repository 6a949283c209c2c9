#!/usr/bin/env bash
# Install the Debian packages Forkpoint builds and tests with, when missing.
#
# Why: CI and a fresh machine start with nothing installed by hand; `make run`
# and `make test` call this so that the two README commands are all a user
# types. It is idempotent and quick when everything is present. clang and
# libclang-rt-dev (its sanitizer runtimes and libFuzzer) build the clang test
# flavour and the fuzzers (mk/fuzz.mk).
set -euo pipefail
want=(build-essential cmake pkg-config libcivetweb-dev libcjson-dev libsqlite3-dev libssl-dev openssl
      libpq-dev postgresql nginx
      libcurl4-openssl-dev tmux nodejs npm chromium clang libclang-rt-dev)
[ "${FORKPOINT_NO_BROWSER:-0}" = 1 ] && want=("${want[@]/chromium}")
missing=()
for p in "${want[@]}"; do
  [ -z "$p" ] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from outside Debian (as on the reference image): accept them.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || tmp+=("$p"); done
  missing=("${tmp[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >&2
  # postgresql and nginx are for the tests, which start their own on
  # loopback (tests/deploy): their packages must not leave the machine's
  # services running (nginx on port 80 of every interface). Debian's
  # policy-rc.d says "do not start" for the length of the install.
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ] && printf '%s\n' "${missing[@]}" | grep -qxE 'postgresql|nginx'; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [ -n "$policy" ]; then $SUDO rm -f "$policy"; trap - EXIT; fi
fi
# The page's camera gaze and head pointer use @vladmandic/human (MIT), pinned
# in vendor/package-lock.json; its dist file and face models are embedded
# into forkpoint-serve at build time (mk/server.mk), so the page needs no
# network. Skipped (the page then says camera gaze is not built in) when npm
# cannot reach its registry.
if [ ! -f vendor/node_modules/@vladmandic/human/dist/human.esm.js ] && command -v npm >/dev/null; then
  echo "setup: installing vendor/ (npm ci: @vladmandic/human)" >&2
  (cd vendor && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) ||
    echo "setup: npm ci in vendor/ failed: camera gaze will not be built in" >&2
fi
