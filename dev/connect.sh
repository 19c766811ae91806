#!/usr/bin/env bash
# Installs a Kafka Connect standalone worker and Debezium's source connectors
# from Maven Central, for the bench's Debezium runners (bench/debezium.py).
#
#   dev/connect.sh install    resolve into .dev/connect/{libs,plugins} (nothing if there)
#   dev/connect.sh status     print what is installed
#
# .dev/connect/libs holds the worker's classpath (connect-runtime and
# connect-json of the broker's Kafka version, log4j2); each connector sits in
# .dev/connect/plugins/<artifact>, the worker's plugin.path. Nothing runs as a
# service: bench/debezium.py starts one ConnectStandalone per measurement.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV="$ROOT/.dev"
DIR="$DEV/connect"
POM="$ROOT/dev/connect/pom.xml"
# The broker's version (dev/services.sh): Debezium 3.6 runs on it.
KAFKA_VERSION=4.1.1
# Debezium's MariaDB connector (3.6.x) and JDBC sink (3.6.1) are not on Maven
# Central, so MariaDB is read with Debezium's MySQL connector, by binlog file
# and position. Its 3.6 refuses a server whose version is above 8.3 and lacks
# `SHOW BINARY LOG STATUS` (MariaDB is 10.x); 3.5.0 is the newest one served
# that falls back to `SHOW MASTER STATUS`.
declare -A VERSIONS=(
  [debezium-connector-postgres]=3.6.1.Final
  [debezium-connector-mysql]=3.5.0.Final
)

log() { printf '[connect] %s\n' "$*" >&2; }
die() { printf '[connect] error: %s\n' "$*" >&2; exit 1; }

# One profile of dev/connect/pom.xml, copied into `dest` whole or not at all.
resolve() {
  local profile=$1 dest=$2 tmp
  shift 2
  tmp=$(mktemp -d "$DIR/.resolve.XXXXXX")
  # Maven's output is shown only when it fails.
  if ! mvn -B -Dstyle.color=never -f "$POM" -P "$profile" -Dmaven.repo.local="$DEV/m2" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" "$@" >"$tmp.log" 2>&1; then
    grep -E 'ERROR' "$tmp.log" | head -20 >&2 || tail -20 "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "could not resolve profile $profile of $POM"
  fi
  rm -f "$tmp.log"
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$tmp" "$dest"
}

install() {
  command -v mvn >/dev/null || die "mvn is missing: run \`bash dev/services.sh up\` (it installs maven)"
  mkdir -p "$DIR"
  if [ ! -f "$DIR/libs/connect-runtime-$KAFKA_VERSION.jar" ]; then
    log "resolving org.apache.kafka:connect-runtime:$KAFKA_VERSION from Maven Central"
    resolve worker "$DIR/libs"
  fi
  local name version
  for name in "${!VERSIONS[@]}"; do
    version=${VERSIONS[$name]}
    [ -f "$DIR/plugins/$name/$name-$version.jar" ] && continue
    log "resolving io.debezium:$name:$version from Maven Central"
    # The worker provides Kafka's APIs and slf4j to every plugin (Connect
    # never loads them from a plugin directory), so the copies are left out.
    resolve "${name#debezium-connector-}" "$DIR/plugins/$name" -Ddebezium.version="$version" \
      -DexcludeGroupIds=org.apache.kafka,org.slf4j
  done
}

status() {
  local name version
  if [ -f "$DIR/libs/connect-runtime-$KAFKA_VERSION.jar" ]; then
    echo "worker: Kafka Connect $KAFKA_VERSION ($DIR/libs)"
  else
    echo "worker: missing"
  fi
  for name in "${!VERSIONS[@]}"; do
    version=${VERSIONS[$name]}
    if [ -f "$DIR/plugins/$name/$name-$version.jar" ]; then
      echo "$name: $version"
    else
      echo "$name: missing"
    fi
  done
}

case ${1:-install} in
  install) install ;;
  status) status ;;
  *) die "usage: dev/connect.sh install|status" ;;
esac
