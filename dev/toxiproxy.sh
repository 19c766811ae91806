#!/usr/bin/env bash
# Builds (if missing) the toxiproxy server the chaos suite puts between cdc and
# each local server (tests/chaos/proxy.py drives it), and prints its path.
#
#   dev/toxiproxy.sh        build .dev/bin/toxiproxy-server once, print its path
#
# The version is pinned; a binary of another version is rebuilt. Go's module
# and build caches live in .dev too, so a fresh clone builds as any user
# (root included) without touching a home directory. Calling it again when the
# binary is there returns at once. -modcacherw keeps the module cache
# removable with a plain `rm -rf .dev`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV="$ROOT/.dev"
TOXIPROXY_MODULE=github.com/Shopify/toxiproxy/v2
TOXIPROXY_VERSION=v2.12.0
BIN="$DEV/bin/toxiproxy-server"
STAMP="$DEV/bin/toxiproxy-server.version"

log() { printf '[toxiproxy] %s\n' "$*" >&2; }
die() { printf '[toxiproxy] error: %s\n' "$*" >&2; exit 1; }

if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$TOXIPROXY_VERSION" ]; then
  echo "$BIN"
  exit 0
fi

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$GO" ] || die "toxiproxy is built with Go: install it (https://go.dev/dl/) or set GO=/path/to/go"

log "building $TOXIPROXY_MODULE/cmd/server@$TOXIPROXY_VERSION into $DEV/bin"
mkdir -p "$DEV/bin"
# `go install` names the binary after its package directory (server); it is
# built in a scratch directory and renamed so a half-built file is never run.
tmp=$(mktemp -d "$DEV/bin/.toxiproxy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" GOPATH="$DEV/go" GOCACHE="$DEV/go/cache" GOFLAGS="-mod=mod -modcacherw" \
  "$GO" install "$TOXIPROXY_MODULE/cmd/server@$TOXIPROXY_VERSION"
mv "$tmp/server" "$BIN"
echo "$TOXIPROXY_VERSION" >"$STAMP"
echo "$BIN"
