#!/usr/bin/env bash
# mayfly's benchmark suite: `make bench` (after `make deps all`), as root on
# Debian 12. Never part of `make test`.
#
# Every figure is measured on this machine in one run, on 127.0.0.1, with
# the server under test pinned to one CPU and the load generator to
# another, each figure several times, medians reported:
#
#   nginx        the ceiling: nginx (1 worker) answering a fixed 200 `{}`
#   fcgiwrap     the classic peer: nginx + fcgiwrap forking a tiny CGI program
#   warm-RT      mayfly's no-op functions (C, python3, nodejs; java17's hello), warm
#                (warm-c, warm-python, warm-node, warm-java: one runtime alone);
#                warm-c also measures the C no-op at 1,769 MB at 1 connection
#   ofw-node     the peers (issue 19), built from their source archives in
#   ofw-python   BENCH_PEERS (build_peers below): OpenFaaS's of-watchdog in http
#   ofw-fork     mode with a Node.js upstream (bench/ofw_node.js) and with a Python
#   rie-c        one (Flask behind waitress, bench/ofw_python.py), of-watchdog forking
#                a C no-op per request (bench/fork_noop.c), and the AWS Lambda Runtime
#                Interface Emulator running examples/noop-c as its bootstrap (1
#                connection only: it fails under concurrent calls, upstream issue #97)
#   conc-RT      mayfly's nodejs and python3 no-ops deployed with
#                --instance-concurrency 32 (conc-node, conc-python), warm
#   async        asynchronous invocations of the C no-op (202 once the event
#                is fsync'd in a group commit), side by side with the same
#                function called synchronously on the same server, and what
#                one group commit costs
#   cold         mayfly cold starts per runtime, and the posix_spawn baselines
#   sandbox-rate sandbox creations per second (src/sandbox, no server)
#   density-RT   memory per idle instance with 200 idle instances
#   responsive   how promptly the server answers while it has something
#                else to do (bench/responsive.py: /healthz during a large
#                deploy, sync calls behind an async backlog, a 1 s timeout,
#                SIGTERM with an event running): the figures the end-to-end
#                tests check by order and by the server's own clocks instead
#   egress       what the egress gateway costs a function (bench/egress.py: keep-alive
#                request throughput inside a function against the same client code on
#                the host, per-call throughput, added connect latency, cold starts of
#                a function without rules with the gateway and with --disable-egress)
#   payloads     what keeping each call's event and result costs (bench/payloads.py:
#                warm C and python3 echo functions with record.payloads full and off,
#                a 1 KiB event and result, alternated)
#   kv           the key-value store (bench/kv.py: a get from inside a warm function
#                against the same function's no-op invoke, and reads and durable
#                writes from 32 connections against warm no-op invokes)
#   triggers     function URLs and topics (bench/triggers.py: the C no-op behind its
#                URL against /v1/functions/{name}/invoke, and publishes to a topic
#                with 3 subscribers against async enqueues)
#   cluster      several nodes on one PostgreSQL (bench/cluster.py: one node on
#                PostgreSQL against one on SQLite, warm invokes and async enqueues;
#                three nodes at half a CPU each against one, the same figures summed)
#   propagation  two nodes on a throwaway PostgreSQL (tests/pg.sh; bench/propagation.py):
#                the median time from an update's 200 on one node to the other node
#                serving the new version, over BENCH_UPDATES (20) updates, against 1 s
#   metering     tenants, metering and a budget (bench/metering.py: the C no-op on a
#                server with keys, prices and a block budget covering it, its calls
#                signed by a tenant's key, against the same on a server in
#                development mode, alternated)
#   keepalive    keep-alive policies on a replayed trace (bench/keepalive.py: a seeded
#                trace shaped like the Azure Functions 2019 trace, one trace minute a
#                second, replayed against a fresh server per policy, fixed 1, 5 and 10
#                minutes and adaptive; cold starts and idle instance memory from the
#                server's counters; about 25 minutes)
#   noisy-MODE   a victim (the C no-op) at 1 connection, its neighbour idle
#                and then misbehaving (bench/neighbour.c: spin the CPU,
#                fork-bomb, flood its Runtime API, flood its output), runs
#                alternating on a fresh server per MODE
#
# Raw outputs go to bench/out/ (git-ignored); bench/report.py turns them
# into bench/RESULTS.md and bench/latency.png.
#
# Knobs (environment): BENCH_RUNS (3), BENCH_DURATION (10, seconds per wrk
# run), BENCH_COLD_STARTS (50), BENCH_DENSITY (200 instances),
# BENCH_DENSITY_RUNS (3), BENCH_SERVER_CPU (0), BENCH_LOAD_CPU (1),
# BENCH_ASYNC_LOW (1: the async row also measures enqueues to a copy of the
# function with max_concurrency 1; 0: not), BENCH_ASYNC_DRAIN_TIMEOUT (900,
# seconds a backlog of events may take to run), BENCH_NOISY_MODES (spin fork
# api log: the noisy row's neighbours),
# BENCH_UPDATES (20: the propagation row's updates),
# BENCH_PEERS (../shared/peers from the repository's root: the peers' source
# archives; without them the peer rows say so and the rest runs),
# BENCH_ROWS (all: space-separated subset of the row names above, with
# warm, density and noisy meaning every runtime or neighbour). A subset writes its report to
# bench/out/RESULTS.md and bench/out/latency.png, leaving bench/RESULTS.md
# (the whole suite's) alone; e.g. BENCH_ROWS=async bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=${BENCH_RUNS:-3}
DUR=${BENCH_DURATION:-10}
WARMUP=3
COLD_STARTS=${BENCH_COLD_STARTS:-50}
DENSITY=${BENCH_DENSITY:-200}
DENSITY_RUNS=${BENCH_DENSITY_RUNS:-3}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
ASYNC_LOW=${BENCH_ASYNC_LOW:-1}
DRAIN_TIMEOUT=${BENCH_ASYNC_DRAIN_TIMEOUT:-900}
NOISY_MODES=${BENCH_NOISY_MODES:-spin fork api log}
ALL_ROWS="nginx fcgiwrap warm ofw-node ofw-python ofw-fork rie-c conc-node conc-python async cold sandbox-rate density responsive noisy egress payloads kv triggers cluster propagation metering keepalive"
ROWS=${BENCH_ROWS:-$ALL_ROWS}
# The warm row's runtimes, each of which can also be chosen alone.
WARM_RTS="c python node java"
PEERS_DIR=${BENCH_PEERS:-$ROOT/../shared/peers}
# As the report shows it (no path of this machine for the default).
PEERS_SHOWN=${BENCH_PEERS:-../shared/peers}
PY=/usr/bin/python3
OUT=bench/out
MAYFLY=$ROOT/bin/mayfly
# The same settings for every HTTP row.
WRK_THROUGHPUT=(-t1 -c32)
WRK_LATENCY=(-t1 -c1)

say() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sandboxes, cgroups and apt-get need it)"
[ -x "$MAYFLY" ] || die "bin/mayfly is missing: run \`make bench\` (it builds first)"
[ -x "$PY" ] || die "$PY is missing"

# ---- Debian packages -----------------------------------------------------

install_deps() {
    local missing=() p
    # golang-go builds the peers; python3-flask and python3-waitress are
    # of-watchdog's Python upstream (OpenFaaS's python3-http template).
    for p in wrk nginx-light fcgiwrap taskset:util-linux timeout:coreutils gcc pkg-config \
        libseccomp-dev libcap-dev libjansson-dev libuv1-dev libssl-dev golang-go \
        python3-flask python3-waitress; do
        local cmd=${p%%:*} pkg=${p##*:}
        if [ "$cmd" != "$pkg" ]; then
            command -v "$cmd" >/dev/null || missing+=("$pkg")
        elif ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed'; then
            missing+=("$pkg")
        fi
    done
    # Any gnuplot will do (gnuplot-nox, -qt or -x11 all provide the binary).
    command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}
install_deps

# ---- temp dir, processes, clean-up ----------------------------------------

# Everything but the peers' built binaries (bench/out/peers, kept by their
# archives' sha256 so that a second run does not build them again).
mkdir -p "$OUT"
find "$OUT" -mindepth 1 -maxdepth 1 ! -name peers -exec rm -rf {} +
mkdir -p "$OUT/status"
TMP=$(mktemp -d /tmp/mayfly-bench.XXXXXX)

PIDS=$TMP/pids
: >"$PIDS"

# Background processes are recorded with their start time, so clean-up
# never signals a process that merely reused a pid.
start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }
track() { echo "$1 $(start_time "$1")" >>"$PIDS"; }
ours() { [ -n "$2" ] && [ "$(start_time "$1")" = "$2" ]; }

# Stops the processes listed in $PIDS that still run: SIGTERM, then
# SIGKILL after 15 s.
stop_tracked() {
    local pid st left
    while read -r pid st; do
        if ours "$pid" "$st"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done <"$PIDS"
    for _ in $(seq 150); do
        left=0
        while read -r pid st; do ours "$pid" "$st" && left=1; done <"$PIDS"
        [ $left -eq 0 ] && return 0
        sleep 0.1
    done
    while read -r pid st; do
        if ours "$pid" "$st"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done <"$PIDS"
}

# Every row's processes, then the suite's own, then the temp dir.
cleanup() {
    local rc=$? f
    trap - EXIT INT TERM
    if [ -f "$TMP/pidlists" ]; then
        while read -r f; do PIDS=$f stop_tracked; done <"$TMP/pidlists"
    fi
    PIDS=$TMP/pids stop_tracked
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
: >"$TMP/pidlists"

free_port() {
    $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs the load generator on its own CPU, bounded in time.
load() { taskset -c "$LOAD_CPU" timeout "${LOAD_TIMEOUT:-$((DUR + 60))}" "$@"; }

# An HTTP POST of `{}`; fails unless the answer is 200.
check_post() {
    $PY - "$1" <<'EOF'
import sys, http.client, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
c.request("POST", u.path, body=b"{}", headers={"Content-Type": "application/json"})
r = c.getresponse()
body = r.read()
print("POST %s: %d %r" % (u.path, r.status, body[:200]))
sys.exit(0 if r.status == 200 else 1)
EOF
}

# wrk rows: a short warm-up, then RUNS throughput runs (32 connections) and
# RUNS latency runs (1 connection), every one with the same settings.
http_runs() {
    local name=$1 url=$2 i
    load wrk "${WRK_THROUGHPUT[@]}" -d"${WARMUP}s" -s bench/post.lua "$url" >"$OUT/wrk-$name-warmup.txt" 2>&1
    throughput_runs "$name" "$url"
    latency_runs "$name" "$url"
}

throughput_runs() {
    local name=$1 url=$2 i
    for i in $(seq "$RUNS"); do
        load wrk "${WRK_THROUGHPUT[@]}" -d"${DUR}s" --latency -s bench/post.lua "$url" \
            >"$OUT/wrk-$name-c32-$i.txt" 2>&1
        say "$name: $(grep -h 'Requests/sec' "$OUT/wrk-$name-c32-$i.txt" || echo 'no result')"
    done
}

# RUNS latency runs alone (the RIE's row: after a warm-up at 1 connection).
latency_runs() {
    local name=$1 url=$2 i
    for i in $(seq "$RUNS"); do
        load wrk "${WRK_LATENCY[@]}" -d"${DUR}s" --latency -s bench/post.lua "$url" \
            >"$OUT/wrk-$name-c1-$i.txt" 2>&1
        say "$name: 1 connection: $(awk '/ 50%/{print "p50 " $2} / 99%/{print "p99 " $2}' \
            "$OUT/wrk-$name-c1-$i.txt" | paste -sd' ')"
    done
}

# Marks a row failed with a reason and leaves the row's subshell.
fail() {
    echo "failed: $*" >"$OUT/status/$ROW"
    say "$ROW failed: $*" >&2
    exit 1
}

# Runs one row in a subshell of its own, with errexit on (a failing row
# ends there, not the suite), and records ok or failed.
row() {
    local name=$1 rc
    shift
    say "== $name"
    # What else used the CPUs meanwhile, for the report.
    $PY bench/machine.py snapshot "$TMP/snapshot-$name.json" || true
    set +e
    (
        set -e
        ROW=$name
        PIDS=$TMP/pids.$name
        : >"$PIDS"
        echo "$PIDS" >>"$TMP/pidlists"
        trap 'stop_tracked' EXIT
        "$@"
    )
    rc=$?
    set -e
    $PY bench/machine.py load "$TMP/snapshot-$name.json" --self $$ >"$OUT/load-$name.json" || true
    if [ $rc -eq 0 ]; then
        [ -s "$OUT/status/$name" ] || echo ok >"$OUT/status/$name"
    else
        [ -s "$OUT/status/$name" ] || echo "failed: exit status $rc" >"$OUT/status/$name"
    fi
    say "$name: $(cat "$OUT/status/$name")"
}
selected() { case " $ROWS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# The warm row runs when it or one of its runtimes (warm-RT) is chosen.
warm_selected() {
    local rt
    selected warm && return 0
    for rt in $WARM_RTS; do selected "warm-$rt" && return 0; done
    return 1
}

# ---- nginx and fcgiwrap -----------------------------------------------------

# nginx.conf in $1 listening on $2; with $3 (a unix socket), /cgi goes to
# fcgiwrap and runs $4.
nginx_conf() {
    local dir=$1 port=$2 sock=${3:-} cgi=${4:-}
    mkdir -p "$dir/tmp"
    {
        cat <<EOF
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    # Only answers other than 200 are logged (so errors can be explained);
    # a 200 costs one variable lookup.
    map \$status \$not_ok { 200 0; default 1; }
    log_format brief '\$status \$request_time \$upstream_status "\$request"';
    access_log $dir/not-ok.log brief if=\$not_ok;
    # The ceiling: keep-alive connections stay open for the whole run.
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $dir/tmp/body;
    fastcgi_temp_path $dir/tmp/fastcgi;
    proxy_temp_path $dir/tmp/proxy;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            return 200 '{}';
        }
EOF
        if [ -n "$sock" ]; then
            cat <<EOF
        location /cgi {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $cgi;
            fastcgi_pass unix:$sock;
        }
EOF
        fi
        echo "    }"
        echo "}"
    } >"$dir/nginx.conf"
}

start_nginx() {
    local dir=$1
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || fail "nginx -t rejected the config"
    taskset -c "$SERVER_CPU" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        -g 'daemon off;' >"$dir/nginx.out" 2>&1 &
    track $!
    NGINX_PID=$!
}

wait_http() {
    local url=$1 i
    for i in $(seq 100); do
        check_post "$url" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    check_post "$url" || fail "no answer from $url"
}

row_nginx() {
    local dir=$TMP/nginx port
    port=$(free_port)
    mkdir -p "$dir"
    nginx_conf "$dir" "$port"
    start_nginx "$dir"
    wait_http "http://127.0.0.1:$port/"
    http_runs nginx "http://127.0.0.1:$port/"
    cp "$dir/error.log" "$OUT/nginx-error.log" 2>/dev/null || true
    cp "$dir/not-ok.log" "$OUT/nginx-not-ok.log" 2>/dev/null || true
    kill -0 "$NGINX_PID" 2>/dev/null || fail "nginx exited during the run"
}

row_fcgiwrap() {
    local dir=$TMP/fcgiwrap port
    port=$(free_port)
    mkdir -p "$dir"
    gcc -std=gnu17 -O2 -Wall -Wextra -o "$dir/cgi_noop" bench/cgi_noop.c
    taskset -c "$SERVER_CPU" fcgiwrap -c 2 -s "unix:$dir/fcgi.sock" >"$dir/fcgiwrap.out" 2>&1 &
    track $!
    local fpid=$! kid
    for _ in $(seq 50); do [ -S "$dir/fcgi.sock" ] && break; sleep 0.1; done
    [ -S "$dir/fcgi.sock" ] || fail "fcgiwrap did not create its socket"
    # Its preforked children outlive a SIGTERM to it for a moment: stop
    # them too.
    sleep 0.2
    # shellcheck disable=SC2013
    for kid in $(cat /proc/"$fpid"/task/*/children 2>/dev/null); do track "$kid"; done
    nginx_conf "$dir" "$port" "$dir/fcgi.sock" "$dir/cgi_noop"
    start_nginx "$dir"
    wait_http "http://127.0.0.1:$port/cgi"
    http_runs fcgiwrap "http://127.0.0.1:$port/cgi"
    cp "$dir/error.log" "$OUT/fcgiwrap-nginx-error.log" 2>/dev/null || true
    cp "$dir/not-ok.log" "$OUT/fcgiwrap-not-ok.log" 2>/dev/null || true
    cp "$dir/fcgiwrap.out" "$OUT/fcgiwrap.out" 2>/dev/null || true
    kill -0 "$fpid" 2>/dev/null || fail "fcgiwrap exited during the run"
}

# ---- mayfly -----------------------------------------------------------------

# Starts a fresh server (its own data dir) on SERVER_CPU; sets MF_PID and
# MF_URL. $1 names its logs in bench/out; the rest are extra flags.
start_mayfly() {
    local tag=$1 port
    shift
    port=$(free_port)
    mkdir -p "$TMP/data-$tag"
    # A fixed keep-alive of 10 minutes: a row's instances stay warm through
    # all of it, whatever pauses it makes (the keepalive row measures the
    # policies).
    taskset -c "$SERVER_CPU" "$MAYFLY" server --listen "127.0.0.1:$port" --data "$TMP/data-$tag" \
        --log-level warn --keep-warm fixed --idle-timeout 600 "$@" >"$OUT/server-$tag.out" 2>"$OUT/server-$tag.log" &
    MF_PID=$!
    track $MF_PID
    MF_URL=http://127.0.0.1:$port
    for _ in $(seq 100); do
        grep -q '^mayfly listening on ' "$OUT/server-$tag.out" && return 0
        kill -0 "$MF_PID" 2>/dev/null || break
        sleep 0.1
    done
    fail "the server did not start: $(tail -c 300 "$OUT/server-$tag.log")"
}

# Stops the server with SIGTERM (it should exit 0 within 15 s) and fails
# the row, precisely, if it had died or does not stop cleanly.
stop_mayfly() {
    local tag=$1 rc=0
    if ! kill -0 "$MF_PID" 2>/dev/null; then
        wait "$MF_PID" || rc=$?
        fail "the server died during the run (exit status $rc$( [ $rc -gt 128 ] && echo ", signal $((rc - 128))")); see bench/out/server-$tag.log"
    fi
    kill -TERM "$MF_PID"
    for _ in $(seq 150); do kill -0 "$MF_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$MF_PID" 2>/dev/null; then
        kill -KILL "$MF_PID"
        wait "$MF_PID" 2>/dev/null || true
        fail "the server did not stop within 15 s of SIGTERM"
    fi
    wait "$MF_PID" || rc=$?
    [ $rc -eq 0 ] || fail "the server exited with status $rc on SIGTERM"
}

deploy_example() { # name folder [flags]
    local name=$1 dir=$2
    shift 2
    # shellcheck disable=SC2046
    MAYFLY_URL=$MF_URL "$MAYFLY" deploy "$name" "$dir" $(cat "$dir/deploy.args") "$@" >/dev/null
}

# A function's calls by status (mayfly_invocations_total on /metrics) into
# bench/out/$2: a call that failed answers 200 too (with
# X-Amz-Function-Error, as Lambda's Invoke does), so wrk alone cannot tell
# a row's failures from its throughput; the report compares the counts
# taken before and after the row's runs.
fn_calls() { # function file
    $PY - "$MF_URL/metrics" "$1" >"$OUT/$2" <<'PYEOF' || true
import json, re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=60).read().decode()
res = {}
for line in text.splitlines():
    m = re.match(r'mayfly_invocations_total\{(.*)\} (\S+)$', line)
    if m and ('function="%s"' % sys.argv[2]) in m.group(1):
        st = re.search(r'status="([^"]*)"', m.group(1))
        key = st.group(1) if st else "?"
        res[key] = res.get(key, 0) + float(m.group(2))
print(json.dumps(res))
PYEOF
}

warm_one() {
    local rt=$1 dir=noop-$1 url c
    # Java's warm row calls the hello example (a POJO in and out).
    [ "$rt" = java ] && dir=hello-java
    url=$MF_URL/v1/functions/noop-$rt/invoke
    deploy_example "noop-$rt" "$SNAP/examples/$dir" --max-concurrency 64 \
        || fail "could not deploy examples/$dir"
    check_post "$url" || fail "the first invoke failed"
    if [ "$rt" = java ]; then
        # A JVM's start takes a few hundred ms of CPU: 32 starting at once on
        # the server's one CPU take longer than an instance's 10 s to ask for
        # work, and the failures then stop the function for 30 s. Connections
        # are added a few at a time first, as load ramps up, so instances
        # start a few at a time; the runs below are of warm instances.
        for c in 1 2 4 8 16; do
            load wrk -t1 -c"$c" -d2s -s bench/post.lua "$url" >>"$OUT/wrk-warm-java-ramp.txt" 2>&1
        done
    fi
    fn_calls "noop-$rt" "calls-warm-$rt.before.json"
    http_runs "warm-$rt" "$url"
    fn_calls "noop-$rt" "calls-warm-$rt.after.json"
    # (an if: a false test as the function's last command would be its
    # status, and fail the other runtimes' rows)
    if [ "$rt" = c ]; then
        warm_c_one_cpu
    fi
    kill -0 "$MF_PID" 2>/dev/null || fail "the server died during the run; see bench/out/server-warm.log"
}

# The C no-op again at 1,769 MB, a whole CPU's quota (the size at which
# Lambda gives a function one vCPU), at 1 connection only: at 128 MB a
# client sending calls back to back has the instance use up its 7 % of a
# CPU, and the kernel holds it until the next 20 ms period, which is then
# what its p99 measures; nginx, the row it is compared with, has a CPU.
warm_c_one_cpu() {
    local url=$MF_URL/v1/functions/noop-c-1cpu/invoke
    deploy_example noop-c-1cpu "$SNAP/examples/noop-c" --memory 1769 \
        || fail "could not deploy examples/noop-c at 1769 MB"
    check_post "$url" || fail "the first invoke at 1769 MB failed"
    fn_calls noop-c-1cpu calls-warm-c-1cpu.before.json
    load wrk "${WRK_LATENCY[@]}" -d"${WARMUP}s" -s bench/post.lua "$url" \
        >"$OUT/wrk-warm-c-1cpu-warmup.txt" 2>&1
    latency_runs warm-c-1cpu "$url"
    fn_calls noop-c-1cpu calls-warm-c-1cpu.after.json
}

row_warm() {
    start_mayfly warm
    local rt
    for rt in $WARM_RTS; do
        selected warm || selected "warm-$rt" || continue
        row "warm-$rt" warm_one "$rt"
    done
    # Keep what the server said about its instances.
    $PY -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
        "$MF_URL/metrics" >"$OUT/server-warm.metrics" 2>&1 || true
    stop_mayfly warm
}

# ---- the peers (issue 19) ---------------------------------------------------------

# The peers' binaries, built from their source archives in PEERS_DIR once per
# archive (bench/out/peers/NAME-SHA12, kept across runs; rebuilt when the
# archive or Debian's Go changes), offline: Debian's golang, no module proxy,
# no toolchain download, the archive's own vendor/ folder. Run before the
# rows; for each peer (OFW: of-watchdog, RIE: the Lambda RIE) it sets
# PEER_X_BIN, or PEER_X_MISSING (no sources: the rows are not measured) or
# PEER_X_ERR (the build failed: the rows fail), and PEER_X_VERSION.
PEERS_OUT=$ROOT/$OUT/peers

peer_build() { # X archive-prefix source-folder package binary-name [ldflags]
    local x=$1 prefix=$2 src=$3 pkg=$4 name=$5 ldflags=${6:-} archives archive sha bin gov log
    archives=$(find "$PEERS_DIR" -maxdepth 1 -name "$prefix-*.tar.gz" 2>/dev/null | sort || true)
    if [ ! -d "$PEERS_DIR" ] || [ -z "$archives" ]; then
        printf -v "PEER_${x}_MISSING" '%s' "not measured: peer sources not found in $PEERS_SHOWN"
        return 0
    fi
    archive=$(printf '%s\n' "$archives" | tail -n 1)
    sha=$(sha256sum "$archive" | cut -c1-64)
    gov=$(go version 2>/dev/null || echo none)
    bin=$PEERS_OUT/$name-${sha:0:12}
    log=$PEERS_OUT/build-$name.log
    # of-watchdog-0.9.13.tar.gz: 0.9.13; aws-lambda-rie-1.28-vendored.tar.gz: 1.28.
    local ver=${archive##*/}
    ver=${ver#"$prefix-"}
    ver=${ver%.tar.gz}
    ver=${ver%-vendored}
    printf -v "PEER_${x}_VERSION" '%s' "$ver (${archive##*/}, sha256 ${sha:0:12}…)"
    printf -v "PEER_${x}_BIN" '%s' "$bin"
    if [ -x "$bin" ] && [ "$(cat "$bin.go" 2>/dev/null)" = "$gov" ]; then
        say "peers: $name $ver already built from ${archive##*/} ($bin)"
        return 0
    fi
    say "peers: building $name $ver from $archive with $gov"
    mkdir -p "$PEERS_OUT" "$TMP/peer-src-$name"
    rm -f "$bin" "$bin.go"
    if ! {
        tar -xzf "$archive" -C "$TMP/peer-src-$name" &&
            (cd "$TMP/peer-src-$name/$src" &&
                env GOTOOLCHAIN=local GOPROXY=off GOSUMDB=off GOFLAGS=-mod=vendor CGO_ENABLED=0 \
                    GOENV=off GOCACHE="$TMP/go-cache" GOPATH="$TMP/go-path" \
                    go build -buildvcs=false -trimpath -ldflags="$ldflags" -o "$bin.new" "$pkg")
    } >"$log" 2>&1; then
        printf -v "PEER_${x}_ERR" '%s' "could not build $name from ${archive##*/} (see bench/out/peers/build-$name.log: $(tail -n 3 "$log" | tr '\n' ' ' | cut -c1-300))"
        rm -f "$bin.new"
        rm -rf "$TMP/peer-src-$name"
        return 0
    fi
    mv "$bin.new" "$bin"
    echo "$gov" >"$bin.go"
    rm -rf "$TMP/peer-src-$name"
}

build_peers() {
    local need_ofw=0 need_rie=0 r
    for r in ofw-node ofw-python ofw-fork; do selected "$r" && need_ofw=1; done
    selected rie-c && need_rie=1
    # Read through ${!name} (need_peer).
    # shellcheck disable=SC2034
    PEER_OFW_MISSING='' PEER_OFW_ERR='' PEER_OFW_VERSION='' PEER_OFW_BIN=''
    # shellcheck disable=SC2034
    PEER_RIE_MISSING='' PEER_RIE_ERR='' PEER_RIE_VERSION='' PEER_RIE_BIN=''
    if [ $need_ofw = 1 ]; then
        local v
        v=$(find "$PEERS_DIR" -maxdepth 1 -name 'of-watchdog-*.tar.gz' 2>/dev/null | sort | tail -n 1 || true)
        v=${v##*/of-watchdog-}
        # Its own Makefile stamps the version in the same way.
        peer_build OFW of-watchdog of-watchdog . of-watchdog "-X main.Version=${v%.tar.gz}"
    fi
    if [ $need_rie = 1 ]; then
        peer_build RIE aws-lambda-rie rie ./cmd/aws-lambda-rie aws-lambda-rie
    fi
}

# Ends a peer row here when its peer is not there (the row says why, the
# suite goes on) or did not build (the row fails).
need_peer() { # OFW|RIE
    local absent=PEER_$1_MISSING err=PEER_$1_ERR
    if [ -n "${!absent}" ]; then
        echo "${!absent}" >"$OUT/status/$ROW"
        exit 0
    fi
    [ -z "${!err}" ] || fail "${!err}"
}

# Whether a TCP port is taken on any address.
port_taken() {
    ! $PY -c 'import socket, sys; s = socket.socket(); s.bind(("0.0.0.0", int(sys.argv[1])))' "$1" \
        2>/dev/null
}

# Tracks the children of $1 (a peer's upstream or bootstrap), so that the
# row's end stops them too.
track_children() {
    local kid
    # shellcheck disable=SC2013
    for kid in $(cat /proc/"$1"/task/*/children 2>/dev/null); do track "$kid"; done
}

# SIGKILL to a peer's process and the children it had (of-watchdog waits
# its write timeout, 10 s, on SIGTERM before it stops; nothing of it is
# measured after its runs).
stop_peer() {
    local pid st
    while read -r pid st; do
        if ours "$pid" "$st"; then
            kill -KILL "$pid" 2>/dev/null || true
            # Reaped here, so that bash does not report it as killed.
            wait "$pid" 2>/dev/null || true
        fi
    done <"$PIDS"
}

# of-watchdog 0.9.x on SERVER_CPU, with its defaults but for the settings
# given as NAME=VALUE (its configuration is its environment), on a free
# port; waits for its first 200 and sets OFW_PID and OFW_URL. Its upstream
# process (http mode) or forked functions run on the same CPU.
start_ofw() {
    local tag=$1 dir=$TMP/$1 port
    shift
    port=$(free_port)
    mkdir -p "$dir"
    # Its Prometheus listener has a fixed port, 8081, on every address.
    if port_taken 8081; then
        fail "of-watchdog's metrics port 8081 is taken on this machine (it cannot be moved)"
    fi
    env -i PATH=/usr/bin:/bin HOME="$dir" TMPDIR="$dir" port="$port" "$@" \
        taskset -c "$SERVER_CPU" "$PEER_OFW_BIN" >"$OUT/$tag.log" 2>&1 &
    OFW_PID=$!
    track $OFW_PID
    OFW_URL=http://127.0.0.1:$port/
    wait_http "$OFW_URL"
    track_children "$OFW_PID"
}

ofw_http_row() { # tag, fprocess
    local tag=$1 fprocess=$2 up
    need_peer OFW
    up=$(free_port)
    # As OpenFaaS's templates: the upstream on its own port, of-watchdog
    # starting it (fprocess) and forwarding each request to it.
    start_ofw "$tag" mode=http fprocess="$fprocess" upstream_url="http://127.0.0.1:$up" \
        UPSTREAM_PORT="$up"
    http_runs "$tag" "$OFW_URL"
    kill -0 "$OFW_PID" 2>/dev/null || fail "of-watchdog exited during the run; see bench/out/$tag.log"
    stop_peer
}

row_ofw_node() {
    ofw_http_row ofw-node "/usr/bin/node $ROOT/bench/ofw_node.js"
}

row_ofw_python() {
    $PY -c 'import flask, waitress' 2>/dev/null \
        || fail "python3-flask and python3-waitress are not installed"
    ofw_http_row ofw-python "$PY $ROOT/bench/ofw_python.py"
}

row_ofw_fork() {
    need_peer OFW
    gcc -std=gnu17 -O2 -Wall -Wextra -o "$TMP/fork_noop" bench/fork_noop.c \
        || fail "bench/fork_noop.c does not build"
    # streaming: one fork and exec of the fprocess per request.
    start_ofw ofw-fork mode=streaming fprocess="$TMP/fork_noop"
    http_runs ofw-fork "$OFW_URL"
    kill -0 "$OFW_PID" 2>/dev/null || fail "of-watchdog exited during the run; see bench/out/ofw-fork.log"
    stop_peer
}

# The RIE with examples/noop-c (built against runtimes/c, as mayfly's warm C
# row runs it) as its `provided` bootstrap, at 1 connection only: the RIE
# serves one call at a time and fails under concurrent ones (upstream issue
# #97).
row_rie_c() {
    need_peer RIE
    local dir=$TMP/rie port api url
    mkdir -p "$dir"
    gcc -std=gnu17 -O2 -Wall -Wextra -I"$SNAP/runtimes/c" -o "$dir/bootstrap" \
        "$SNAP/examples/noop-c/main.c" "$SNAP/runtimes/c/mayfly_runtime.c" \
        || fail "examples/noop-c does not build"
    port=$(free_port)
    api=$(free_port)
    env -i -C "$dir" PATH=/usr/bin:/bin HOME="$dir" \
        taskset -c "$SERVER_CPU" "$PEER_RIE_BIN" --log-level error \
        --runtime-api-address "127.0.0.1:$api" --runtime-interface-emulator-address "127.0.0.1:$port" \
        "$dir/bootstrap" >"$OUT/rie-c.log" 2>&1 &
    local rpid=$!
    track $rpid
    url=http://127.0.0.1:$port/2015-03-31/functions/function/invocations
    # The first call starts the bootstrap.
    wait_http "$url"
    track_children "$rpid"
    load wrk "${WRK_LATENCY[@]}" -d"${WARMUP}s" -s bench/post.lua "$url" >"$OUT/wrk-rie-c-warmup.txt" 2>&1
    latency_runs rie-c "$url"
    kill -0 "$rpid" 2>/dev/null || fail "the RIE exited during the run; see bench/out/rie-c.log"
    stop_peer
}

# ---- mayfly with instance_concurrency ------------------------------------------------

# The nodejs or python3 no-op (as warm-RT) deployed with 32 calls at once per
# instance, on a server of its own.
conc_one() {
    local rt=$1 fn=noop-$1-ic32 url
    start_mayfly "conc-$rt"
    url=$MF_URL/v1/functions/$fn/invoke
    if ! deploy_example "$fn" "$SNAP/examples/noop-$rt" --max-concurrency 64 \
        --instance-concurrency 32 2>"$TMP/deploy-$fn.err"; then
        fail "could not deploy examples/noop-$rt with --instance-concurrency 32:" \
            "$(head -n 1 "$TMP/deploy-$fn.err" | cut -c1-300)"
    fi
    # A server that ignored the setting would measure the default instead.
    $PY - "$MF_URL/v1/functions/$fn" <<'PYEOF' || fail "the function's settings do not show instance_concurrency 32"
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1]))
def find(d):
    if isinstance(d, dict):
        if "instance_concurrency" in d:
            return d["instance_concurrency"]
        for v in d.values():
            r = find(v)
            if r is not None:
                return r
    return None
sys.exit(0 if find(doc) == 32 else 1)
PYEOF
    check_post "$url" || fail "the first invoke failed"
    fn_calls "$fn" "calls-conc-$rt.before.json"
    http_runs "conc-$rt" "$url"
    fn_calls "$fn" "calls-conc-$rt.after.json"
    $PY -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
        "$MF_URL/metrics" >"$OUT/server-conc-$rt.metrics" 2>&1 || true
    stop_mayfly "conc-$rt"
}

row_conc_node() { conc_one node; }
row_conc_python() { conc_one python; }

# ---- async ------------------------------------------------------------------

# One wrk run of bench/$1 against $2 for $3 into bench/out/$4; the rest
# are wrk's settings (WRK_THROUGHPUT or WRK_LATENCY).
wrk_run() {
    local script=$1 url=$2 dur=$3 file=$4
    shift 4
    load wrk "$@" -d"$dur" --latency -s "bench/$script" "$url" >"$OUT/$file" 2>&1
}

# Waits until function $1's async queue is empty; $2 names the record.
drain() {
    LOAD_TIMEOUT=$((DRAIN_TIMEOUT + 60)) load $PY bench/asyncq.py drain "$MF_URL" "$1" \
        --server-pid "$MF_PID" --timeout "$DRAIN_TIMEOUT" --out "$OUT/$2" \
        || fail "the events of $1 did not all run within ${DRAIN_TIMEOUT} s (see bench/out/$2)"
}

# One enqueue run: /metrics before and after (the group commits' counters
# and histograms), then the backlog drained. $1 function, $2 the files'
# name, the rest wrk's settings.
event_run() {
    local fn=$1 tag=$2
    shift 2
    load $PY bench/asyncq.py metrics "$MF_URL" "$OUT/$tag.before.metrics" || fail "no /metrics"
    wrk_run event.lua "$MF_URL/v1/functions/$fn/invoke" "${DUR}s" "wrk-$tag.txt" "$@"
    load $PY bench/asyncq.py metrics "$MF_URL" "$OUT/$tag.after.metrics" || fail "no /metrics"
    say "$tag: $(grep -h 'Requests/sec' "$OUT/wrk-$tag.txt" || echo 'no result');" \
        "$(awk '/ 50%/{print "p50 " $2}' "$OUT/wrk-$tag.txt")"
    drain "$fn" "$tag.drain.json"
}

# The same server, function and wrk settings for both: sync and async runs
# alternate, each async run's backlog drained before the next run.
#   async-sync   POST /v1/functions/noop-c/invoke (like warm-c)
#   async-event  the same with X-Mayfly-Invocation-Type: Event; the events
#                run meanwhile, as they would (max_concurrency 64, as warm)
#   async-low    events to noop-c-low, the same code with max_concurrency 1,
#                so that little runs while events are accepted
row_async() {
    start_mayfly async
    local fn=noop-c low=noop-c-low url i
    url=$MF_URL/v1/functions/$fn/invoke
    deploy_example "$fn" "$SNAP/examples/noop-c" --max-concurrency 64 \
        || fail "could not deploy examples/noop-c"
    check_post "$url" || fail "the first invoke failed"
    load $PY bench/asyncq.py check "$MF_URL" "$fn" || fail "an event was not accepted with 202"
    if [ "$ASYNC_LOW" = 1 ]; then
        deploy_example "$low" "$SNAP/examples/noop-c" --max-concurrency 1 \
            || fail "could not deploy examples/noop-c as $low"
        load $PY bench/asyncq.py check "$MF_URL" "$low" || fail "an event was not accepted with 202"
    fi
    # Warm-up: instances started, the queue's database file grown.
    wrk_run post.lua "$url" "${WARMUP}s" wrk-async-sync-warmup.txt "${WRK_THROUGHPUT[@]}"
    wrk_run event.lua "$url" "${WARMUP}s" wrk-async-event-warmup.txt "${WRK_THROUGHPUT[@]}"
    drain "$fn" async-event-warmup.drain.json
    if [ "$ASYNC_LOW" = 1 ]; then
        wrk_run event.lua "$MF_URL/v1/functions/$low/invoke" "${WARMUP}s" \
            wrk-async-low-warmup.txt "${WRK_THROUGHPUT[@]}"
        drain "$low" async-low-warmup.drain.json
    fi
    for i in $(seq "$RUNS"); do
        wrk_run post.lua "$url" "${DUR}s" "wrk-async-sync-c32-$i.txt" "${WRK_THROUGHPUT[@]}"
        say "async-sync-c32-$i:" \
            "$(grep -h 'Requests/sec' "$OUT/wrk-async-sync-c32-$i.txt" || echo 'no result')"
        event_run "$fn" "async-event-c32-$i" "${WRK_THROUGHPUT[@]}"
        if [ "$ASYNC_LOW" = 1 ]; then
            event_run "$low" "async-low-c32-$i" "${WRK_THROUGHPUT[@]}"
        fi
    done
    for i in $(seq "$RUNS"); do
        wrk_run post.lua "$url" "${DUR}s" "wrk-async-sync-c1-$i.txt" "${WRK_LATENCY[@]}"
        say "async-sync-c1-$i: $(awk '/ 50%/{print "p50 " $2}' "$OUT/wrk-async-sync-c1-$i.txt")"
        event_run "$fn" "async-event-c1-$i" "${WRK_LATENCY[@]}"
    done
    load $PY bench/asyncq.py metrics "$MF_URL" "$OUT/server-async.metrics" || true
    stop_mayfly async
}

row_cold() {
    start_mayfly cold
    LOAD_TIMEOUT=900 load $PY bench/coldstart.py --url "$MF_URL" --server-pid "$MF_PID" \
        --examples "$SNAP/examples" --n "$COLD_STARTS" --out "$OUT/cold.json" \
        || fail "the cold-start harness failed (see bench/out/cold.json)"
    stop_mayfly cold
}

row_sandbox_rate() {
    # The Makefile's flags, and the sandbox module with what it uses.
    # shellcheck disable=SC2046
    gcc -std=gnu17 -O2 -I"$SNAP/src" -D_GNU_SOURCE -o "$TMP/sandbox_rate" bench/sandbox_rate.c \
        "$SNAP"/src/sandbox/*.c "$SNAP"/src/core/*.c \
        $(pkg-config --cflags --libs libuv jansson libcrypto libseccomp libcap) -lpthread -lm \
        >"$OUT/sandbox_rate-build.log" 2>&1 \
        || fail "bench/sandbox_rate.c does not build against src/sandbox (see bench/out/sandbox_rate-build.log)"
    local i
    for i in $(seq "$RUNS"); do
        # Both CPUs: the program is its own load and its own server.
        timeout 60 "$TMP/sandbox_rate" --threads 2 --seconds 5 >"$OUT/sandbox_rate-$i.json" \
            2>"$OUT/sandbox_rate-$i.log" || fail "run $i: $(tail -c 300 "$OUT/sandbox_rate-$i.log")"
        say "sandbox-rate: $(cat "$OUT/sandbox_rate-$i.json")"
    done
}

density_one() {
    local rt=$1 i spec code
    case $rt in
    python)
        code=$TMP/density-python
        mkdir -p "$code"
        cat >"$code/handler.py" <<'EOF'
import os
import time

_first = True


def handler(event, context):
    global _first
    if _first:
        _first = False
        time.sleep(int(os.environ.get("BENCH_FIRST_SLEEP_MS", "1000")) / 1000)
    return {}
EOF
        spec='{"runtime":"python3","handler":"handler.handler","env":{"BENCH_FIRST_SLEEP_MS":"1000"}}'
        ;;
    c)
        code=$TMP/density-c
        mkdir -p "$code"
        gcc -std=gnu17 -O2 -Wall -Wextra -I"$SNAP/runtimes/c" -o "$code/bootstrap" \
            bench/density_c.c "$SNAP/runtimes/c/mayfly_runtime.c"
        spec='{"runtime":"provided","env":{"BENCH_FIRST_SLEEP_MS":"1000"}}'
        ;;
    esac
    chmod -R a+rX "$code"
    for i in $(seq "$DENSITY_RUNS"); do
        # Every call of the burst gets an instance of its own only if they
        # may all start at once, all connect from one address, and none
        # waits for a busy instance while the CPUs are full (eager
        # scale-out: the row measures instances, not a burst's speed).
        start_mayfly "density-$rt-$i" --max-queue 1000 --max-starting "$((DENSITY < 1024 ? DENSITY : 1024))" \
            --max-connections-per-client 0 --scale-out eager
        LOAD_TIMEOUT=300 load $PY bench/density.py --url "$MF_URL" --server-pid "$MF_PID" \
            --name "dense-$rt" --spec "$spec" --code "$code" --n "$DENSITY" \
            --out "$OUT/density-$rt-$i.json" || fail "run $i: the density harness failed"
        stop_mayfly "density-$rt-$i"
    done
}

row_density() {
    local rt
    for rt in python c; do
        row "density-$rt" density_one "$rt"
    done
}

# ---- responsiveness -------------------------------------------------------------

row_responsive() {
    start_mayfly responsive
    LOAD_TIMEOUT=1800 load $PY bench/responsive.py --url "$MF_URL" --mayfly "$MAYFLY" \
        --server-cpu "$SERVER_CPU" --runs "$RUNS" --out "$OUT/responsive.json" \
        || fail "a part of bench/responsive.py failed (see bench/out/responsive.json)"
    stop_mayfly responsive
}

# ---- noisy neighbours ---------------------------------------------------------

# One kind of neighbour, on a server of its own: RUNS rounds of the victim's
# latency at 1 connection with the neighbour idle, then with it misbehaving
# (for the run's duration and a little more), then waiting until it is
# over. The report divides each by the idle figure of the same server.
noisy_one() {
    local mode=$1 url i
    start_mayfly "noisy-$mode"
    url=$MF_URL/v1/functions/victim/invoke
    # A whole CPU's share (1,769 MB buys one, as on Lambda): what is measured
    # is the neighbour's effect, not the victim's own CPU quota.
    deploy_example victim "$SNAP/examples/noop-c" --memory 1769 \
        || fail "could not deploy examples/noop-c"
    check_post "$url" || fail "the victim's first invoke failed"
    load $PY bench/noisy.py deploy "$MF_URL" neighbour "$TMP/neighbour" \
        || fail "could not deploy the neighbour"
    wrk_run post.lua "$url" "${WARMUP}s" "wrk-noisy-$mode-warmup.txt" "${WRK_LATENCY[@]}"
    for i in $(seq "$RUNS"); do
        wrk_run post.lua "$url" "${DUR}s" "wrk-noisy-$mode-idle-$i.txt" "${WRK_LATENCY[@]}"
        load $PY bench/noisy.py start "$MF_URL" neighbour "$mode" --seconds $((DUR + 3)) \
            --state "$TMP/noisy-$mode-$i.state" || fail "the neighbour did not start ($mode)"
        wrk_run post.lua "$url" "${DUR}s" "wrk-noisy-$mode-on-$i.txt" "${WRK_LATENCY[@]}"
        LOAD_TIMEOUT=300 load $PY bench/noisy.py wait "$MF_URL" --state "$TMP/noisy-$mode-$i.state" \
            --out "$OUT/noisy-$mode-$i.json" >/dev/null || fail "the neighbour's call did not end"
        say "noisy-$mode-$i: victim p99 idle $(awk '/ 99%/{print $2}' "$OUT/wrk-noisy-$mode-idle-$i.txt")," \
            "with the neighbour $(awk '/ 99%/{print $2}' "$OUT/wrk-noisy-$mode-on-$i.txt")"
    done
    load $PY bench/asyncq.py metrics "$MF_URL" "$OUT/server-noisy-$mode.metrics" || true
    stop_mayfly "noisy-$mode"
}

row_noisy() {
    mkdir -p "$TMP/neighbour"
    gcc -std=gnu17 -O2 -Wall -Wextra -pthread -I"$SNAP/runtimes/c" -o "$TMP/neighbour/bootstrap" \
        bench/neighbour.c "$SNAP/runtimes/c/mayfly_runtime.c" || fail "bench/neighbour.c does not build"
    local mode
    for mode in $NOISY_MODES; do
        row "noisy-$mode" noisy_one "$mode"
    done
}

# ---- egress ------------------------------------------------------------------

row_egress() {
    LOAD_TIMEOUT=1800 load $PY bench/egress.py --mayfly "$MAYFLY" --server-cpu "$SERVER_CPU" \
        --load-cpu "$LOAD_CPU" --runs "$RUNS" --cold "$COLD_STARTS" --out "$OUT/egress.json" \
        || fail "bench/egress.py failed (see bench/out/egress.json)"
}

# ---- payloads -------------------------------------------------------------------

row_payloads() {
    LOAD_TIMEOUT=1800 load $PY bench/payloads.py --mayfly "$MAYFLY" --server-cpu "$SERVER_CPU" \
        --load-cpu "$LOAD_CPU" --runs "$RUNS" --duration "$DUR" --out "$OUT/payloads.json" \
        || fail "bench/payloads.py failed (see bench/out/payloads.json)"
}

# ---- kv ------------------------------------------------------------------------

row_kv() {
    LOAD_TIMEOUT=1800 load $PY bench/kv.py --mayfly "$MAYFLY" --server-cpu "$SERVER_CPU" \
        --load-cpu "$LOAD_CPU" --runs "$RUNS" --duration "$DUR" --out "$OUT/kv.json" \
        || fail "bench/kv.py failed (see bench/out/kv.json)"
}

# ---- triggers -------------------------------------------------------------------

row_triggers() {
    LOAD_TIMEOUT=1800 load $PY bench/triggers.py --mayfly "$MAYFLY" --server-cpu "$SERVER_CPU" \
        --load-cpu "$LOAD_CPU" --runs "$RUNS" --duration "$DUR" --out "$OUT/triggers.json" \
        || fail "bench/triggers.py failed (see bench/out/triggers.json)"
}

row_metering() {
    LOAD_TIMEOUT=1800 load $PY bench/metering.py --mayfly "$MAYFLY" --server-cpu "$SERVER_CPU" \
        --load-cpu "$LOAD_CPU" --runs "$RUNS" --duration "$DUR" --out "$OUT/metering.json" \
        || fail "bench/metering.py failed (see bench/out/metering.json)"
}

row_cluster() {
    LOAD_TIMEOUT=2400 load $PY bench/cluster.py --mayfly "$MAYFLY" --server-cpu "$SERVER_CPU" \
        --load-cpu "$LOAD_CPU" --runs "$RUNS" --duration "$DUR" --out "$OUT/cluster.json" \
        || fail "bench/cluster.py failed (see bench/out/cluster.json)"
}

# ---- keep-alive --------------------------------------------------------------------

row_keepalive() {
    LOAD_TIMEOUT=3600 load $PY bench/keepalive.py --mayfly "$MAYFLY" --server-cpu "$SERVER_CPU" \
        --example "$SNAP/examples/noop-c" --out "$OUT/keepalive.json" \
        || fail "bench/keepalive.py failed (see bench/out/keepalive.json)"
}

# ---- propagation -----------------------------------------------------------------

row_propagation() {
    LOAD_TIMEOUT=1800 load $PY bench/propagation.py --mayfly "$MAYFLY" --server-cpu "$SERVER_CPU" \
        --load-cpu "$LOAD_CPU" --updates "${BENCH_UPDATES:-20}" --out "$OUT/propagation.json" \
        || fail "bench/propagation.py failed (see bench/out/propagation.json)"
}

# ---- the run ------------------------------------------------------------------

# What is measured is a snapshot taken now: the binary, the runtimes beside
# it, the examples and the sources the sandbox-rate program builds from. A
# rebuild in the work tree while the suite runs (make in another shell)
# then changes nothing half-way through.
SNAP=$TMP/snap
mkdir -p "$SNAP/bin"
cp bin/mayfly "$SNAP/bin/mayfly"
cp -a runtimes examples src "$SNAP/"
MAYFLY=$SNAP/bin/mayfly

build_peers

say "suite start: $RUNS runs of ${DUR}s per HTTP figure, $COLD_STARTS cold starts per runtime, $DENSITY instances for density"
$PY bench/machine.py info >"$OUT/machine.json"
$PY bench/machine.py snapshot "$TMP/cpu-snapshot.json"
{
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    changed=$(git status --porcelain -- . ':!bench/RESULTS.md' ':!bench/latency.png' ':!bench/keepalive.png' 2>/dev/null || true)
    if [ -n "$changed" ]; then
        echo "dirty=1"
        echo "dirty_files=$(printf '%s\n' "$changed" | wc -l)"
        echo "dirty_dirs=$(printf '%s\n' "$changed" | cut -c4- | cut -d/ -f1 | sort -u | paste -sd, -)"
        # Names the uncommitted state measured: the same diff, the same hash.
        echo "dirty_diff=$(git diff HEAD -- . ':!bench/RESULTS.md' ':!bench/latency.png' ':!bench/keepalive.png' | sha256sum | cut -c1-12)"
    else
        echo "dirty=0"
    fi
    echo "binary_sha256=$(sha256sum "$MAYFLY" | cut -c1-12)"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "runs=$RUNS"
    echo "duration=$DUR"
    echo "cold_starts=$COLD_STARTS"
    echo "density=$DENSITY"
    echo "density_runs=$DENSITY_RUNS"
    echo "server_cpu=$SERVER_CPU"
    echo "load_cpu=$LOAD_CPU"
    echo "wrk_throughput=${WRK_THROUGHPUT[*]} -d${DUR}s --latency -s bench/post.lua"
    echo "wrk_latency=${WRK_LATENCY[*]} -d${DUR}s --latency -s bench/post.lua"
    echo "async_low=$ASYNC_LOW"
    echo "noisy_modes=$NOISY_MODES"
    echo "rows=$ROWS"
    echo "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')"
    echo "fcgiwrap=$(dpkg-query -W -f='${Version}' fcgiwrap 2>/dev/null)"
    echo "wrk=$(dpkg-query -W -f='${Version}' wrk 2>/dev/null)"
    echo "python3=$(/usr/bin/python3 -c 'import platform; print(platform.python_version())')"
    echo "node=$(/usr/bin/node --version 2>/dev/null)"
    echo "peers_dir=$PEERS_SHOWN"
    echo "of_watchdog=${PEER_OFW_VERSION:-${PEER_OFW_MISSING:-}}"
    echo "rie=${PEER_RIE_VERSION:-${PEER_RIE_MISSING:-}}"
    echo "go=$(go version 2>/dev/null | awk '{print $3}' | sed 's/^go//')"
    echo "flask=$(dpkg-query -W -f='${Version}' python3-flask 2>/dev/null)"
    echo "waitress=$(dpkg-query -W -f='${Version}' python3-waitress 2>/dev/null)"
} >"$OUT/run.env"
started=$(date +%s)

for r in $ALL_ROWS; do
    if selected "$r" || { [ "$r" = warm ] && warm_selected; }; then
        row "$r" "row_${r//-/_}"
    fi
done

echo "elapsed_s=$(($(date +%s) - started))" >>"$OUT/run.env"
$PY bench/machine.py load "$TMP/cpu-snapshot.json" --self $$ >"$OUT/load.json" || true
# Only the whole suite rewrites the committed report.
RESULTS=bench/RESULTS.md PLOT=bench/latency.png KPLOT=bench/keepalive.png
for r in $ALL_ROWS; do
    selected "$r" || { RESULTS=$OUT/RESULTS.md PLOT=$OUT/latency.png KPLOT=$OUT/keepalive.png; }
done
say "writing $RESULTS and $PLOT"
$PY bench/report.py --out-dir "$OUT" --results "$RESULTS" --plot "$PLOT" \
    --keepalive-plot "$KPLOT" || die "bench/report.py failed"
# The ceiling is what every ratio is measured against: without it the suite
# itself is broken (the other rows fail on their own and are reported so).
if selected nginx && [ "$(cat "$OUT/status/nginx")" != ok ]; then
    die "the nginx ceiling row failed: $(cat "$OUT/status/nginx")"
fi
say "done in $(($(date +%s) - started)) s: $RESULTS, $PLOT, raw outputs in bench/out/"
