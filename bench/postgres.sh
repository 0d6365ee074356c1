# A private PostgreSQL for the benchmarks (METADATA=postgres), sourced by
# bench/run.sh and bench/gc-scale.sh: Debian's server (installed when
# missing), run as the postgres user (initdb refuses root) on a free
# loopback port, with its default durability settings. Needs log and die.
PG_BIN= PG_DIR= PG_PORT=

# start_postgres WORKDIR: initdb under WORKDIR/pg and start the server.
start_postgres() {
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [[ -z $PG_BIN ]]; then
        log "installing postgresql"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    chmod o+x "$1"
    PG_DIR="$1/pg"
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$PG_DIR" && chown postgres "$PG_DIR"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null ||
        die "PostgreSQL did not start: $(tail -5 "$PG_DIR/log")"
    log "PostgreSQL on 127.0.0.1:$PG_PORT"
}

# stop_postgres: stop it, if it was started.
stop_postgres() {
    if [[ -n $PG_DIR ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
}

# create_database NAME
create_database() {
    runuser -u postgres -- "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc \
        "create database $1" >/dev/null
}

# postgres_url NAME
postgres_url() {
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}
