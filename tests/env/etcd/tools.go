//go:build tools

// Package tools pins the etcd server that tests/env/up.sh builds.
package tools

import _ "go.etcd.io/etcd/server/v3"
