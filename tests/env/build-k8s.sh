#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kubectl of the pinned Kubernetes
# release from the Go module proxy into the cache directory given as $1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$here/k8s/go.mod")"
minor="$(echo "$version" | cut -d. -f2)"

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

mkdir -p "$out"
cd "$here/k8s"
go build -trimpath -ldflags "$ldflags" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl
