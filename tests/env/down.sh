#!/usr/bin/env bash
# Stops what tests/env/up.sh started, by the PID files in target/testenv/run, and removes
# the environment's data, certificates and logs. Cached builds are kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="$repo/target/testenv"
run="$state/run"
# shellcheck source=tests/env/lib.sh
source "$here/lib.sh"

# Stop in reverse start order; any other process with a PID file (a demo's rotor) first.
for pid_file in "$run"/*.pid; do
  [[ -e "$pid_file" ]] || continue
  name="$(basename "$pid_file" .pid)"
  case "$name" in
    moto | kube-controller-manager | kube-apiserver | etcd) ;;
    *) stop_process "$name" ;;
  esac
done
for name in moto kube-controller-manager kube-apiserver etcd; do
  stop_process "$name"
done

rm -rf "$state"
echo "tests/env: stopped; removed $state"
