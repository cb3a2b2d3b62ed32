# Shell helpers shared by tests/env/up.sh and tests/env/down.sh. Sourced, not run.
# Expects $run (the PID file directory) and $state (target/testenv) to be set.

log() {
  echo "tests/env: $*" >&2
}

# Prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts a command in the background in its own session, with its log in
# target/testenv/logs/NAME.log and its PID in target/testenv/run/NAME.pid.
start_process() {
  local name="$1"
  shift
  mkdir -p "$state/logs" "$run"
  setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

# Succeeds when the process recorded in NAME.pid is alive.
is_running() {
  local pid_file="$run/$1.pid"
  [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

all_running() {
  local name
  for name in "$@"; do
    is_running "$name" || return 1
  done
}

# Runs a probe command until it succeeds; fails after TIMEOUT seconds or when the
# process NAME exits, printing the end of its log.
wait_until() {
  local name="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! is_running "$name"; then
      log "$name exited during startup; the end of $state/logs/$name.log follows"
      tail -n 30 "$state/logs/$name.log" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name was not healthy after ${timeout}s; the end of $state/logs/$name.log follows"
      tail -n 30 "$state/logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

# Sends SIGTERM to the process in NAME.pid and to its process group, waits up to ten
# seconds, then sends SIGKILL.
stop_process() {
  local name="$1" pid_file="$run/$1.pid" pid
  [[ -f "$pid_file" ]] || return 0
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (PID $pid) did not stop after SIGTERM; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pid_file"
}
