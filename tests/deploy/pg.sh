# tests/deploy/pg.sh — sourced by the suites that need a real PostgreSQL:
# pg_start DIR starts a throw-away cluster in DIR (initdb, a free loopback
# port, password authentication) and sets PG_ADMIN (a URL to its
# "postgres" database) and PG_PORT; pg_db NAME makes a database and prints
# its URL; pg_stop stops the cluster (pg_kill: at once, as a crash would;
# pg_restart starts it again on the same port).
#
# Why a user: PostgreSQL refuses to run as root. As root the cluster runs
# as the "postgres" user Debian's package makes (or a dedicated
# "fp-postgres" user made here when there is none); otherwise as yourself.
# Nothing is started outside DIR, and nothing of the machine's own
# PostgreSQL (if any) is touched.

pg_free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

pg_start() {
  PG_DIR=$1
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL server installed (scripts/setup.sh installs it)" >&2; return 1; }
  PG_AS=()
  if [ "$(id -u)" -eq 0 ]; then
    local u=postgres
    id -u "$u" >/dev/null 2>&1 || { u=fp-postgres; id -u "$u" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$u"; }
    PG_AS=(runuser -u "$u" --)
  fi
  mkdir -p "$PG_DIR/sock"
  PG_PASS=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n' "$PG_PASS" >"$PG_DIR/pw"
  [ ${#PG_AS[@]} -gt 0 ] && chown -R "${PG_AS[2]}" "$PG_DIR"
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U fp --auth=scram-sha-256 --pwfile="$PG_DIR/pw" -E UTF8 \
      --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  rm -f "$PG_DIR/pw"
  PG_PORT=$(pg_free_port)
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-p $PG_PORT -k $PG_DIR/sock -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null ||
      { cat "$PG_DIR/server.log" >&2; return 1; }
  PG_ADMIN="postgresql://fp:$PG_PASS@127.0.0.1:$PG_PORT/postgres"
}

pg_db() {
  psql -q -X "$PG_ADMIN" -c "CREATE DATABASE $1" >/dev/null || return 1
  echo "postgresql://fp:$PG_PASS@127.0.0.1:$PG_PORT/$1"
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ] && "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
  return 0
}

# the server stopped as a crash would (immediate: no checkpoint, clients cut off)
pg_kill() {
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
  return 0
}

pg_restart() {
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-p $PG_PORT -k $PG_DIR/sock -c listen_addresses=127.0.0.1" start >/dev/null
}
