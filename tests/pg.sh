#!/bin/sh
# A throwaway PostgreSQL for the tests, from Debian's own binaries.
#
#   tests/pg.sh start DIR   creates a cluster in DIR (made if missing),
#                           starts it and prints its connection URL
#   tests/pg.sh pause DIR   stops its server (fast: sessions are ended, as
#                           in a restart), keeping the cluster
#   tests/pg.sh resume DIR  starts it again, waiting until it accepts
#                           connections
#   tests/pg.sh stop DIR    stops it and removes DIR, whatever state it is in
#
# The server listens on a Unix socket in DIR only (no TCP port, so two runs
# never race for one); its URL names the socket directory as the host and
# the `postgres` superuser, who may connect without a password (trust):
# nothing but this machine's own users reach the socket. fsync is off: a
# test's database is thrown away, and syncing it would only slow the tests.
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` user (the Debian package creates it) and its commands run
# through runuser; DIR is then handed to that user. Nothing reads stdin.
set -eu

usage() {
    echo "usage: tests/pg.sh start DIR | pause DIR | resume DIR | stop DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# The newest installed major version's binaries (pg_ctl, initdb, postgres).
bindir() {
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    echo "tests/pg.sh: no PostgreSQL server under /usr/lib/postgresql (make deps installs it)" >&2
    return 1
}

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@" </dev/null
    else
        "$@" </dev/null
    fi
}

case $cmd in
start)
    bin=$(bindir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    chmod 0700 "$dir"
    if ! as_owner test -w "$dir"; then
        echo "tests/pg.sh: the postgres user cannot reach $dir" \
            "(is a folder above it closed to that user?)" >&2
        exit 1
    fi
    if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        exit 1
    fi
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
fsync = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 200
EOF
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -s start; then
        cat "$dir/server.log" >&2 2>/dev/null || true
        exit 1
    fi
    echo "postgresql:///postgres?host=$dir&user=postgres"
    ;;
pause)
    bin=$(bindir)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 300 -s stop
    ;;
resume)
    bin=$(bindir)
    # -w: until it accepts connections (a busy machine may take long).
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 300 -s start; then
        cat "$dir/server.log" >&2 2>/dev/null || true
        exit 1
    fi
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        bin=$(bindir)
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -s stop || true
    fi
    rm -rf "$dir"
    ;;
*)
    usage
    ;;
esac
