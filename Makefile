# rotor's two entry points: `make demo` and `make test`. Both start the local test
# environment (tests/env/up.sh) themselves; `make env-down` stops it.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ENV := source target/testenv/env.sh

.PHONY: test lint unit env-up env-down integration crd demo

## test: formatting and lint checks, unit tests, then integration tests against the local environment
test: lint unit env-up integration

lint:
	cargo fmt --check
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test --workspace --lib --bins
	cargo test -p gcp-secret-manager-emulator -p azure-key-vault-emulator --tests

env-up:
	tests/env/up.sh

env-down:
	tests/env/down.sh

integration:
	$(ENV) && cargo test --test '*' -- --test-threads=4

## crd: regenerate crds/ and the chart's copy from the Rust types
crd:
	cargo run --quiet -- crd > crds/secretrotations.rotor.dev.yaml
	cp crds/secretrotations.rotor.dev.yaml charts/rotor/files/crds/secretrotations.rotor.dev.yaml

## demo: start the environment and rotor, apply config/samples/aws.yaml with a 1m interval, watch it rotate
demo:
	scripts/demo.sh
