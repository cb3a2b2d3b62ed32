#!/usr/bin/env bash
# Measures rotor's resident memory against the local test environment: idle with no
# objects, with OBJECTS (default 1000) SecretRotation objects rotated once, and after
# adding as many unrelated Secrets, which rotor must not cache. Prints one line per figure
# and the size of the release binary. Starts the environment itself (tests/env/up.sh).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
objects="${OBJECTS:-1000}"

tests/env/up.sh >/dev/null
# shellcheck source=/dev/null
source target/testenv/env.sh
state="$ROTOR_TESTENV_DIR"
run="$state/run"
# shellcheck source=tests/env/lib.sh
source tests/env/lib.sh

cargo build --release --quiet
binary=target/release/rotor
kubectl apply --server-side -f crds/secretrotations.rotor.dev.yaml >/dev/null
kubectl wait --for=condition=Established crd/secretrotations.rotor.dev --timeout=60s >/dev/null

namespace="bench-$(date +%s)"
kubectl create namespace "$namespace" >/dev/null

rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$(cat "$run/rotor-bench.pid")/status"
}

health_port="$(free_port)"
metrics_port="$(free_port)"
start_process rotor-bench "$binary" run --namespaces "$namespace" \
  --health-bind-address "127.0.0.1:$health_port" --metrics-bind-address "127.0.0.1:$metrics_port" --log-level warn
trap 'stop_process rotor-bench' EXIT
wait_until rotor-bench 60 curl -fsS "http://127.0.0.1:$health_port/readyz"
sleep 5
idle="$(rss_kib)"

manifests="$state/bench-objects.yaml"
: >"$manifests"
for ((i = 0; i < objects; i++)); do
  cat >>"$manifests" <<YAML
---
apiVersion: rotor.dev/v1alpha1
kind: SecretRotation
metadata:
  name: bench-$i
  namespace: $namespace
spec:
  rotationInterval: 24h
  provider:
    aws:
      region: us-east-1
      secretId: $namespace/bench-$i
  generator:
    password:
      length: 32
  target:
    name: bench-$i
YAML
done
started=$SECONDS
kubectl apply --server-side -f "$manifests" >/dev/null
ready=0
until ((ready == objects)); do
  ready="$(kubectl get srot -n "$namespace" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)"
  if ((SECONDS - started > 900)); then
    echo "only $ready of $objects objects were Ready after 900 s" >&2
    exit 1
  fi
  sleep 2
done
elapsed=$((SECONDS - started))
sleep 5
loaded="$(rss_kib)"

for ((i = 0; i < objects; i++)); do
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: unrelated-%d\n  namespace: %s\nstringData:\n  key: "%0256d"\n' "$i" "$namespace" "$i"
done | kubectl apply --server-side -f - >/dev/null
sleep 10
unrelated="$(rss_kib)"

echo "rotor release binary: $(stat -c %s "$binary") bytes ($(du -h "$binary" | cut -f1))"
echo "resident memory, idle, no objects: $((idle / 1024)) MiB ($idle KiB)"
echo "resident memory, $objects SecretRotations rotated once ($elapsed s until all Ready): $((loaded / 1024)) MiB ($loaded KiB)"
echo "resident memory, plus $objects unrelated Secrets in the namespace: $((unrelated / 1024)) MiB ($unrelated KiB)"
kubectl delete namespace "$namespace" --wait=false >/dev/null
