#!/usr/bin/env bash
# The project's one test command (README "Run the tests"). It installs what
# it needs, so it works on a fresh machine and in CI alike.
set -euo pipefail
cd "$(dirname "$0")"

go mod download
go vet ./...
go test -count=1 ./...

# The production build signs tokens through OpenSSL (make build, -tags
# openssl): test that path too. It needs cgo and libcrypto's headers.
if [ ! -f /usr/include/openssl/evp.h ]; then
  apt-get update && apt-get install -y libssl-dev
fi
go vet -tags openssl ./rsasign ./oauth ./cmd/broker
go test -count=1 -tags openssl ./rsasign ./oauth

# Fuzz targets, briefly each (the committed corpus under testdata/fuzz and
# the f.Add seeds already ran above as plain tests). -fuzz takes one package
# and one target per run. Longer runs: raise -fuzztime.
fuzz() { go test -run '^$' -fuzz "^$2\$" -fuzztime 10s -fuzzminimizetime 5s -parallel 1 "$1"; }
fuzz ./descriptor FuzzParse
fuzz ./credentials FuzzParseXFCC
fuzz ./credentials FuzzOpen
fuzz ./broker FuzzCanonicalParams
fuzz ./broker FuzzOSBBody
fuzz ./oauth FuzzTokenEndpoint
fuzz ./oauth FuzzJWTAssertion

# Compatibility suite: unmodified SAP Node libraries (@sap/xssec, SAP Cloud
# SDK) against a freshly built broker (compat/README.md).
(cd compat && npm ci --no-audit --no-fund && npm test)

# End-to-end suite: Debian's Chromium (driven by playwright-core), unmodified
# @sap/approuter and @sap/cds against a freshly built broker (e2e/README.md).
# Chromium and certutil come from Debian's packages (CI runs as root).
if ! command -v chromium >/dev/null || ! command -v certutil >/dev/null; then
  apt-get update && apt-get install -y chromium libnss3-tools
fi
(cd e2e && npm ci --no-audit --no-fund && npm test)
