#!/usr/bin/env bash
# The README's demo. It starts the local test environment, installs the CRD and runs rotor
# against it. It applies the AWS, Azure and GCP samples from config/samples/ with a
# one-minute interval, pointed at the environment's emulators, and shows the
# SecretRotations and each Secret's rotor.dev/version as they change.
#
# DEMO_SECONDS (default 150) sets how long the watch runs. rotor keeps running afterwards;
# `make env-down` stops it together with the environment.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
demo_seconds="${DEMO_SECONDS:-150}"

tests/env/up.sh
# shellcheck source=/dev/null
source target/testenv/env.sh
state="$ROTOR_TESTENV_DIR"
run="$state/run"
# shellcheck source=tests/env/lib.sh
source tests/env/lib.sh

echo "== installing the SecretRotation CRD"
kubectl apply --server-side -f crds/secretrotations.rotor.dev.yaml
kubectl wait --for=condition=Established crd/secretrotations.rotor.dev --timeout=60s

echo "== building rotor"
cargo build --quiet
stop_process rotor-demo
health_port="$(free_port)"
metrics_port="$(free_port)"
# Limited to the demo's namespace, so that it leaves the integration tests' objects alone.
start_process rotor-demo target/debug/rotor run \
  --namespaces shop \
  --health-bind-address "127.0.0.1:$health_port" \
  --metrics-bind-address "127.0.0.1:$metrics_port"
wait_until rotor-demo 60 curl -fsS "http://127.0.0.1:$health_port/readyz"
echo "rotor is running (PID $(cat "$run/rotor-demo.pid")); metrics on http://127.0.0.1:$metrics_port/metrics; log in $state/logs/rotor-demo.log"

echo "== applying config/samples/{aws,azure,gcp}.yaml with rotationInterval: 1m"
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f -
kubectl delete secretrotation --all -n shop --ignore-not-found
kubectl delete secret orders-db-credentials orders-db-azure-credentials orders-db-gcp-credentials -n shop --ignore-not-found
one_minute='s/^  rotationInterval: .*/  rotationInterval: 1m/'
applied_at=$(date +%s.%N)
sed "$one_minute" config/samples/aws.yaml | kubectl apply -f -
sed -e "$one_minute" -e "s|vaultUrl: .*|vaultUrl: $ROTOR_AZURE_VAULT_URL|" config/samples/azure.yaml | kubectl apply -f -
sed -e "$one_minute" -e "s|^      secretId: orders-db$|      secretId: orders-db\n      endpoint: $ROTOR_GCP_ENDPOINT|" \
  config/samples/gcp.yaml | kubectl apply -f -
for name in orders-db orders-db-azure orders-db-gcp; do
  kubectl wait --for=condition=Ready "secretrotation/$name" -n shop --timeout=60s >/dev/null
  ready_at=$(date +%s.%N)
  python3 -c "print(f'$name: Ready {$ready_at - $applied_at:.2f} s after kubectl apply')"
done

echo "== watching for ${demo_seconds}s: kubectl get srot -w, and each Secret's rotor.dev/version"
timeout "$demo_seconds" kubectl get srot -n shop -w &
watch_pid=$!
declare -A last_version=()
end=$((SECONDS + demo_seconds))
while ((SECONDS < end)); do
  for secret in orders-db-credentials orders-db-azure-credentials orders-db-gcp-credentials; do
    version="$(kubectl get secret "$secret" -n shop -o jsonpath='{.metadata.annotations.rotor\.dev/version}' 2>/dev/null || true)"
    if [[ -n "$version" && "$version" != "${last_version[$secret]:-}" ]]; then
      echo "Secret shop/$secret now holds version $version"
      last_version[$secret]="$version"
    fi
  done
  sleep 2
done
wait "$watch_pid" 2>/dev/null || true

echo "rotor keeps running; stop everything with: make env-down"
