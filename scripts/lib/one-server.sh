# Sourced by the side-by-side scripts (bench-vs-llama-server.sh, chat-vs-llama-server.sh): one
# server up at a time on a free loopback port, waited for by /health, stopped on exit.
# The caller defines die and may set HEALTH_TIMEOUT (seconds, default 180).

server_pid=
url=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# launch NAME LOG CMD...: runs CMD --host 127.0.0.1 --port PORT, output to LOG; sets server_pid
# and url once /health answers 200 (model load included); dies if it exits or times out.
launch() {
  local name=$1 logfile=$2 port
  shift 2
  port=$(free_port)
  "$@" --host 127.0.0.1 --port "$port" >"$logfile" 2>&1 </dev/null &
  server_pid=$!
  url=http://127.0.0.1:$port
  local deadline=$((SECONDS + ${HEALTH_TIMEOUT:-180}))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health")" = 200 ]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      tail -n 20 "$logfile" >&2
      server_pid=
      die "$name exited while starting (log: $logfile)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "$name: no /health 200 after ${HEALTH_TIMEOUT:-180}s (log: $logfile)"
    sleep 0.2
  done
}
