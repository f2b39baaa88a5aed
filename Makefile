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
