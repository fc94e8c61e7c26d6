#!/usr/bin/env bash
# `make run`: starts the server in the foreground and deploys every example
# (each examples/NAME/ with a deploy.args file holding its deploy flags).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=./bin/mayfly
listen=${MAYFLY_LISTEN:-127.0.0.1:8700}
export MAYFLY_URL=${MAYFLY_URL:-http://$listen}

fifo=$(mktemp -u)
mkfifo "$fifo"
"$bin" server --listen "$listen" "$@" >"$fifo" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$fifo"' EXIT
trap 'exit 0' INT TERM

# Wait for the ready line, then keep echoing the server's stdout.
exec 3<"$fifo"
while IFS= read -r line <&3; do
    echo "$line"
    case $line in "mayfly listening on "*) break ;; esac
done
cat <&3 &

for dir in examples/*/; do
    name=$(basename "$dir")
    [ -f "$dir/deploy.args" ] || continue
    # shellcheck disable=SC2046
    "$bin" deploy "$name" "$dir" $(cat "$dir/deploy.args") || echo "run: could not deploy $name" >&2
done
echo "mayfly is running at $MAYFLY_URL; try: $bin ls   (Ctrl-C stops it)"
wait $server
