#!/usr/bin/env bash
# Starts rotor's local test environment on 127.0.0.1: etcd, kube-apiserver,
# kube-controller-manager, moto and the in-repository Google Secret Manager and Azure Key
# Vault emulators. Builds or installs each component on first use and
# caches it under ${ROTOR_TESTENV_CACHE:-~/.cache/rotor/testenv}. Safe to run twice: a
# running environment is checked and reported, not restarted.
#
# Writes target/testenv/kubeconfig and target/testenv/env.sh; tests/env/down.sh stops
# everything by the PID files kept in target/testenv/run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=tests/env/lib.sh
source "$here/lib.sh"

cache="${ROTOR_TESTENV_CACHE:-$HOME/.cache/rotor/testenv}"
state="$repo/target/testenv"
run="$state/run"

k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$here/k8s/go.mod")"
etcd_version="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" { print $3 }' "$here/etcd/go.mod")"
helm_version="v4.3.2"
moto_version="5.2.5"

k8s_bin="$cache/k8s-$k8s_version/bin"
etcd_bin="$cache/etcd-$etcd_version/bin"
helm_bin="$cache/helm-$helm_version/bin"
moto_venv="$cache/moto-$moto_version"

install_components() {
  if [[ ! -x "$k8s_bin/kube-apiserver" || ! -x "$k8s_bin/kube-controller-manager" || ! -x "$k8s_bin/kubectl" ]]; then
    log "building Kubernetes $k8s_version (kube-apiserver, kube-controller-manager, kubectl); the first build takes several minutes"
    "$here/build-k8s.sh" "$k8s_bin.partial"
    rm -rf "$k8s_bin" && mv "$k8s_bin.partial" "$k8s_bin"
  fi
  if [[ ! -x "$etcd_bin/etcd" ]]; then
    log "building etcd $etcd_version"
    mkdir -p "$etcd_bin"
    (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$etcd_bin/etcd.partial" go.etcd.io/etcd/server/v3)
    mv "$etcd_bin/etcd.partial" "$etcd_bin/etcd"
  fi
  if [[ ! -x "$helm_bin/helm" ]]; then
    log "installing helm $helm_version"
    mkdir -p "$helm_bin"
    GOBIN="$helm_bin" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$helm_version"
  fi
  if [[ ! -x "$moto_venv/bin/moto_server" ]]; then
    log "installing moto $moto_version into $moto_venv"
    rm -rf "$moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
  fi
}

# Generates the CA, serving and client certificates and the service-account key pair.
generate_pki() {
  local pki="$state/pki"
  [[ -f "$pki/admin.crt" ]] && return
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rotor-testenv-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
      -keyout apiserver.key -out apiserver.csr 2>/dev/null
    # rustls accepts only X.509 v3 certificates, which need at least one extension.
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >apiserver.ext
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=rotor-testenv-admin" \
      -keyout admin.key -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() {
  local pki="$state/pki" port="$1"
  cat >"$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rotor-testenv
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: rotor-testenv
  context:
    cluster: rotor-testenv
    user: admin
current-context: rotor-testenv
EOF
}

write_env() {
  local moto_port="$1"
  cat >"$state/env.sh" <<EOF
# Written by tests/env/up.sh: the environment of rotor's local test servers.
export ROTOR_TESTENV_DIR="$state"
export KUBECONFIG="$state/kubeconfig"
export PATH="$k8s_bin:$helm_bin:\$PATH"
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_REGION="us-east-1"
export AWS_ACCESS_KEY_ID="testing"
export AWS_SECRET_ACCESS_KEY="testing"
unset AWS_SESSION_TOKEN AWS_PROFILE
EOF
}

start_etcd() {
  local client_port peer_port
  client_port="$(free_port)"
  peer_port="$(free_port)"
  mkdir -p "$state/etcd-data"
  start_process etcd "$etcd_bin/etcd" \
    --name=rotor-testenv \
    --data-dir="$state/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$client_port" \
    --advertise-client-urls="http://127.0.0.1:$client_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="rotor-testenv=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync=true \
    --log-level=warn
  echo "$client_port" >"$run/etcd.port"
  wait_until "etcd" 60 curl -fsS "http://127.0.0.1:$client_port/health"
}

start_apiserver() {
  local pki="$state/pki" port etcd_port
  port="$(free_port)"
  etcd_port="$(cat "$run/etcd.port")"
  start_process kube-apiserver "$k8s_bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$port" \
    --cert-dir="$state/apiserver-certs" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=RBAC \
    --disable-admission-plugins=ServiceAccount \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --allow-privileged=true \
    --profiling=false
  echo "$port" >"$run/kube-apiserver.port"
  write_kubeconfig "$port"
  wait_until "kube-apiserver" 120 "$k8s_bin/kubectl" --kubeconfig="$state/kubeconfig" get --raw /readyz
}

start_controller_manager() {
  local pki="$state/pki" port
  port="$(free_port)"
  start_process kube-controller-manager "$k8s_bin/kube-controller-manager" \
    --kubeconfig="$state/kubeconfig" \
    --authentication-kubeconfig="$state/kubeconfig" \
    --authorization-kubeconfig="$state/kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$port" \
    --cert-dir="$state/controller-manager-certs" \
    --controllers=garbagecollector,namespace,serviceaccount-token,serviceaccount \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --leader-elect=false \
    --profiling=false
  echo "$port" >"$run/kube-controller-manager.port"
  wait_until "kube-controller-manager" 60 curl -fsSk "https://127.0.0.1:$port/healthz"
}

start_moto() {
  local port
  port="$(free_port)"
  start_process moto "$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$port"
  echo "$port" >"$run/moto.port"
  write_env "$port"
  wait_until "moto" 60 curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/"
}

# Builds and starts the in-repository Google Secret Manager emulator, then appends its
# endpoint to env.sh.
start_gcp_emulator() {
  local port
  (cd "$repo" && cargo build --quiet -p gcp-secret-manager-emulator)
  port="$(free_port)"
  start_process gcp-secret-manager "$repo/target/debug/gcp-secret-manager-emulator" --listen "127.0.0.1:$port"
  echo "$port" >"$run/gcp-secret-manager.port"
  echo "export ROTOR_GCP_ENDPOINT=\"http://127.0.0.1:$port\"" >>"$state/env.sh"
  wait_until "gcp-secret-manager" 60 curl -fsS -o /dev/null "http://127.0.0.1:$port/v1/projects/health/secrets"
}

# Issues the Key Vault emulator's server certificate for localhost and 127.0.0.1 from the
# test CA, and writes a CA bundle of the system roots and the test CA for clients that read
# SSL_CERT_FILE.
generate_azure_pki() {
  local pki="$state/pki"
  [[ -f "$pki/azure-key-vault.crt" && -f "$pki/ca-bundle.crt" ]] && return
  (
    cd "$pki"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout azure-key-vault.key -out azure-key-vault.csr 2>/dev/null
    # rustls accepts only X.509 v3 certificates, and the extensions below make this one v3.
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >azure-key-vault.ext
    openssl x509 -req -in azure-key-vault.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile azure-key-vault.ext -out azure-key-vault.crt 2>/dev/null
    cat /etc/ssl/certs/ca-certificates.crt ca.crt >ca-bundle.crt
  )
}

# Builds and starts the in-repository Azure Key Vault emulator over HTTPS, then appends its
# URL and the CA bundle to env.sh. A request without a bearer token gets 401, which counts
# as healthy.
start_azure_emulator() {
  local pki="$state/pki" port
  (cd "$repo" && cargo build --quiet -p azure-key-vault-emulator)
  generate_azure_pki
  port="$(free_port)"
  start_process azure-key-vault "$repo/target/debug/azure-key-vault-emulator" --listen "127.0.0.1:$port" \
    --tls-cert "$pki/azure-key-vault.crt" --tls-key "$pki/azure-key-vault.key"
  echo "$port" >"$run/azure-key-vault.port"
  {
    echo "export ROTOR_AZURE_VAULT_URL=\"https://localhost:$port\""
    echo "export SSL_CERT_FILE=\"$pki/ca-bundle.crt\""
  } >>"$state/env.sh"
  wait_until "azure-key-vault" 60 curl -sS -o /dev/null --cacert "$pki/ca.crt" "https://localhost:$port/secrets?api-version=2025-07-01"
}

report() {
  local etcd_port api_port kcm_port moto_port
  etcd_port="$(cat "$run/etcd.port")"
  api_port="$(cat "$run/kube-apiserver.port")"
  kcm_port="$(cat "$run/kube-controller-manager.port")"
  moto_port="$(cat "$run/moto.port")"
  echo "etcd                    $etcd_version  http://127.0.0.1:$etcd_port"
  echo "kube-apiserver          $k8s_version  https://127.0.0.1:$api_port"
  echo "kube-controller-manager $k8s_version  https://127.0.0.1:$kcm_port"
  echo "moto                    $moto_version   http://127.0.0.1:$moto_port"
  echo "gcp-secret-manager      in-repo  http://127.0.0.1:$(cat "$run/gcp-secret-manager.port")"
  echo "azure-key-vault         in-repo  https://localhost:$(cat "$run/azure-key-vault.port")"
  echo "kubectl, helm           $k8s_version, $helm_version  $k8s_bin, $helm_bin"
  echo "environment: source $state/env.sh"
}

main() {
  if all_running etcd kube-apiserver kube-controller-manager moto gcp-secret-manager azure-key-vault \
    && "$k8s_bin/kubectl" --kubeconfig="$state/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    report
    return
  fi
  # A partly running environment is stopped first, so that ports and files match.
  "$here/down.sh" >/dev/null
  install_components
  mkdir -p "$run"
  generate_pki
  start_etcd
  start_apiserver
  start_controller_manager
  start_moto
  start_gcp_emulator
  start_azure_emulator
  report
}

main "$@"
