# Convenience targets. The two set-up commands of the README need no make.

.PHONY: build build-pure test bench

# build: the production build the README recommends and the benchmark
# measures: RS256 signatures through OpenSSL's libcrypto (cgo, libssl-dev).
build:
	CGO_ENABLED=1 go build -tags openssl -o broker.bin ./cmd/broker

# build-pure: a pure-Go build that works everywhere (crypto/rsa signer).
build-pure:
	CGO_ENABLED=0 go build -o broker.bin ./cmd/broker

test:
	./test.sh

# bench: token endpoint load test, server pinned to one core, both builds
# side by side with Go's and OpenSSL's raw RSA-2048 sign rates.
bench:
	./scripts/load-token.sh

# bench-bind: X.509 bind latency with the background key pool, server
# pinned to one core. QUIET is the quiet period in seconds before the
# bursts (default 60).
.PHONY: bench-bind
bench-bind:
	./scripts/load-bind.sh $(QUIET)

# bench-scale: broker with a large store (issue 7), server pinned to one
# core: start time, RSS, token and OSB latency next to an empty store.
# INSTANCES (default 100000) and BINDINGS per instance (default 10).
.PHONY: bench-scale
bench-scale:
	./scripts/load-scale.sh $(or $(INSTANCES),100000) $(or $(BINDINGS),10)
