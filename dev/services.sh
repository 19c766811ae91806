#!/usr/bin/env bash
# Installs (if missing) and runs the local servers cdc is developed and tested
# against: PostgreSQL 15, MariaDB 10.11 and one Apache Kafka broker in KRaft
# mode. Everything listens on 127.0.0.1 on ports that do not clash with a
# system server; data lives under .dev/ (ignored by git). Every server also
# speaks TLS with a throwaway CA in .dev/tls (Kafka on extra SSL and SASL_SSL
# listeners), for the TLS tests; plain clients keep working.
#
#   dev/services.sh up                 install what is missing, start all, write .dev/env
#   dev/services.sh down               stop all
#   dev/services.sh start|stop|kill|restart pg|mysql|kafka
#   dev/services.sh status
#
# The database servers refuse to run as root, so they run as the service users
# the Debian packages create (postgres, mysql). Calling `up` while everything
# runs returns in about a second.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV="$ROOT/.dev"
PG_PORT=${CDC_DEV_PG_PORT:-55432}
MY_PORT=${CDC_DEV_MYSQL_PORT:-53306}
KAFKA_PORT=${CDC_DEV_KAFKA_PORT:-59092}
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
KAFKA_SSL_PORT=${CDC_DEV_KAFKA_SSL_PORT:-$((KAFKA_PORT + 2))}
KAFKA_SASL_PORT=${CDC_DEV_KAFKA_SASL_PORT:-$((KAFKA_PORT + 3))}
# The chaos suite's listener, and the port its toxiproxy listens on and
# advertises for it (dev/kafka/server.properties, tests/chaos/proxy.py).
KAFKA_PROXIED_PORT=$((KAFKA_PORT + 4))
KAFKA_PROXIED_ADVERTISED_PORT=$((KAFKA_PORT + 5))
KAFKA_VERSION=4.1.1
PG_BIN=/usr/lib/postgresql/15/bin
DB_USER=cdc
DB_PASSWORD=cdc-dev-password
TLS="$DEV/tls"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

# A process killed with -9 stays a zombie until its parent reaps it (up to a second or
# two when that is PID 1): `kill -0` still finds it, but it serves nothing any more.
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# After a kill -9: the process is gone (a start right after would find it still
# holding its port and files, and take it for running). Empty pid: nothing to wait for.
gone() {
  [ -n "$1" ] || return 0
  for _ in $(seq 1 100); do alive "$1" || return 0; sleep 0.1; done
  die "pid $1 outlived kill -9"
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The service users must reach their data directories. When the checkout sits
# below a folder they cannot enter (a 0700 home), the server data goes to
# /var/tmp instead and .dev/<server> links to it.
server_dir() {
  local name=$1 owner=$2 dir="$DEV/$1"
  if [ -L "$dir" ] || [ -d "$dir" ]; then echo "$dir"; return; fi
  mkdir -p "$DEV"
  if su -s /bin/sh "$owner" -c "test -x '$DEV'" 2>/dev/null; then
    mkdir -p "$dir"
  else
    local alt
    alt="/var/tmp/cdc-dev-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)/$name"
    mkdir -p "$alt"
    ln -s "$alt" "$dir"
  fi
  chown "$owner:" "$dir/"
  echo "$dir"
}

ensure_packages() {
  local missing=()
  [ -x "$PG_BIN/postgres" ] || missing+=(postgresql-15 postgresql-client-15 postgresql-contrib)
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server mariadb-client)
  command -v java >/dev/null || missing+=(default-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v openssl >/dev/null || missing+=(openssl)
  # tests/unit/test_deploy.py checks deploy/systemd/ with systemd-analyze (no service is started)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  # tests/unit/test_alert_rules.py runs the alerts through `promtool test rules`
  { command -v promtool && command -v prometheus; } >/dev/null || missing+=(prometheus)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  # The packages' own clusters and services are not used: policy-rc.d keeps
  # apt from starting them on a machine that has an init system.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ----------------------------------------------------------------------- TLS
# A throwaway CA and one server certificate (localhost, 127.0.0.1) shared by
# the three servers, so the TLS tests verify names and chains like production.
tls_init() {
  [ -f "$TLS/server.pem" ] && return
  log "creating a throwaway CA and server certificate in $TLS"
  mkdir -p "$DEV"
  local tmp; tmp=$(mktemp -d "$DEV/tls.XXXXXX")
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cdc development CA" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$tmp/server.ext"
  openssl x509 -req -days 3650 -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
    -CAcreateserial -extfile "$tmp/server.ext" -out "$tmp/server.pem" 2>/dev/null
  # Kafka's PEM keystore is one file: the private key (PKCS#8), then the chain.
  cat "$tmp/server.key" "$tmp/server.pem" >"$tmp/kafka-keystore.pem"
  rm -f "$tmp/server.csr" "$tmp/server.ext" "$tmp/ca.srl"
  chmod 0755 "$tmp"
  chmod 0644 "$tmp/ca.pem" "$tmp/server.pem"
  rm -rf "$TLS" && mv "$tmp" "$TLS"
}

# The database servers insist on owning their private key (mode 0600).
tls_copy() {
  local dir=$1 owner=$2
  cmp -s "$TLS/server.pem" "$dir/server.pem" && return
  install -o "$owner" -m 0644 "$TLS/server.pem" "$dir/server.pem"
  install -o "$owner" -m 0600 "$TLS/server.key" "$dir/server.key"
}

# ---------------------------------------------------------------- PostgreSQL
pg_dir() { server_dir pg postgres; }
pg_running() { [ -d "$DEV/pg/data" ] && su -s /bin/sh postgres -c "$PG_BIN/pg_ctl -D '$DEV/pg/data' status" >/dev/null 2>&1; }

pg_init() {
  local dir; dir=$(pg_dir)
  [ -f "$dir/data/PG_VERSION" ] && return
  log "initdb $dir/data"
  su -s /bin/sh postgres -c "$PG_BIN/initdb -D '$dir/data' -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8" >/dev/null
  mkdir -p "$dir/run" && chown postgres: "$dir/run"
  cat >>"$dir/data/postgresql.conf" <<EOF
# cdc development server
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir/run'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
shared_buffers = 256MB
max_wal_size = 2GB
# A slot a killed test or bench left behind is invalidated past this, instead
# of keeping WAL until the disk is full.
max_slot_wal_keep_size = 8GB
# A development server: an OS crash may lose the last commits, a killed
# postgres process loses nothing (the crash tests kill the process).
fsync = off
full_page_writes = off
logging_collector = off
EOF
  cat >>"$dir/data/pg_hba.conf" <<EOF
host    replication     all     127.0.0.1/32    scram-sha-256
EOF
}

# TLS is optional for clients (pg_hba's `host` lines match both); a cluster
# made before TLS existed gets it on the next `up`, by a reload.
pg_tls() {
  local dir="$DEV/pg"
  tls_copy "$dir" postgres
  grep -q "^ssl = on" "$dir/data/postgresql.conf" && return 1
  cat >>"$dir/data/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = '$dir/server.pem'
ssl_key_file = '$dir/server.key'
EOF
}

pg_start() {
  pg_init
  if pg_tls && pg_running; then
    log "enabling TLS on PostgreSQL"
    su -s /bin/sh postgres -c "$PG_BIN/pg_ctl -D '$DEV/pg/data' reload" >/dev/null
  fi
  if ! pg_running; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    su -s /bin/sh postgres -c "$PG_BIN/pg_ctl -D '$DEV/pg/data' -l '$DEV/pg/postgres.log' -w -t 60 start" >/dev/null
  fi
  su -s /bin/sh postgres -c "psql -h '$DEV/pg/run' -p $PG_PORT -U postgres -d postgres -qtAc \"
    DO \\\$\\\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
        CREATE ROLE $DB_USER LOGIN SUPERUSER REPLICATION PASSWORD '$DB_PASSWORD';
      END IF;
    END \\\$\\\$;\"" >/dev/null
}

pg_stop() { pg_running && su -s /bin/sh postgres -c "$PG_BIN/pg_ctl -D '$DEV/pg/data' -m fast -w stop" >/dev/null || true; }
pg_kill() {
  local p; p=$(head -1 "$DEV/pg/data/postmaster.pid" 2>/dev/null || true)
  [ -n "$p" ] && kill -9 "$p" 2>/dev/null; gone "$p"
}

# ------------------------------------------------------------------- MariaDB
my_pid() { cat "$DEV/mysql/mariadbd.pid" 2>/dev/null || true; }
my_running() { local p; p=$(my_pid); [ -n "$p" ] && alive "$p"; }

my_init() {
  local dir; dir=$(server_dir mysql mysql)
  [ -d "$dir/data/mysql" ] && return
  log "mariadb-install-db $dir/data"
  cat >"$dir/my.cnf" <<EOF
[mariadbd]
user = mysql
datadir = $dir/data
socket = $dir/mariadbd.sock
pid-file = $dir/mariadbd.pid
log-error = $dir/mariadbd.err
bind-address = 127.0.0.1
port = $MY_PORT
server-id = 1
log-bin = $dir/data/binlog
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
# a development server: binlogs of old runs go after a day
binlog_expire_logs_seconds = 86400
gtid_strict_mode = ON
log_slave_updates = ON
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
innodb_buffer_pool_size = 256M
innodb_flush_log_at_trx_commit = 2
max_connections = 300
skip-name-resolve
EOF
  chown mysql: "$dir/my.cnf"
  mariadb-install-db --defaults-file="$dir/my.cnf" --auth-root-authentication-method=socket >/dev/null
}

# TLS is offered, not required (require_secure_transport stays off). A server
# made before TLS existed gets it on the next `up`, by one restart.
my_tls() {
  local dir="$DEV/mysql"
  tls_copy "$dir" mysql
  grep -q "^ssl-cert" "$dir/my.cnf" && return 1
  cat >>"$dir/my.cnf" <<EOF
ssl-cert = $dir/server.pem
ssl-key = $dir/server.key
EOF
}

my_start() {
  my_init
  if my_tls && my_running; then
    log "restarting MariaDB to enable TLS"
    my_stop
  fi
  if ! my_running; then
    log "starting MariaDB on 127.0.0.1:$MY_PORT"
    (cd / && setsid nohup mariadbd --defaults-file="$DEV/mysql/my.cnf" </dev/null >/dev/null 2>&1 &)
    for _ in $(seq 1 120); do
      mariadb-admin --no-defaults -S "$DEV/mysql/mariadbd.sock" -u root ping >/dev/null 2>&1 && break
      sleep 0.5
    done
    mariadb-admin --no-defaults -S "$DEV/mysql/mariadbd.sock" -u root ping >/dev/null 2>&1 \
      || die "MariaDB did not start; see $DEV/mysql/mariadbd.err"
  fi
  mariadb --no-defaults -S "$DEV/mysql/mariadbd.sock" -u root -e "
    CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
    CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
    GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;
    GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;"
}

my_stop() {
  my_running || return 0
  local p; p=$(my_pid); kill "$p" 2>/dev/null || true
  for _ in $(seq 1 120); do alive "$p" || return 0; sleep 0.5; done
  die "MariaDB (pid $p) did not stop"
}
my_kill() { local p; p=$(my_pid); [ -n "$p" ] && kill -9 "$p" 2>/dev/null; gone "$p"; }

# --------------------------------------------------------------------- Kafka
kafka_pid() { cat "$DEV/kafka/kafka.pid" 2>/dev/null || true; }
kafka_running() { local p; p=$(kafka_pid); [ -n "$p" ] && alive "$p"; }

kafka_init() {
  local dir="$DEV/kafka"
  mkdir -p "$dir"
  if [ ! -f "$dir/libs/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central"
    rm -rf "$dir/libs"
    mvn -q -B -Dstyle.color=never -f "$ROOT/dev/kafka/pom.xml" -Dmaven.repo.local="$DEV/m2" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/libs" >/dev/null
  fi
  [ -f "$dir/data/meta.properties" ] && return
  rm -f "$dir/scram-user"
  local cluster_id
  cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  java -cp "$dir/libs/*" -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.properties" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >/dev/null
}

kafka_ready() { python3 - "$KAFKA_PORT" <<'EOF'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))))
EOF
}

# Written on every `up`: a broker started with an older file (before the TLS
# listeners existed) is restarted once to pick up the new one.
kafka_config() {
  local dir="$DEV/kafka"
  mkdir -p "$dir"
  sed -e "s#@DATA@#$dir/data#" -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
    -e "s#@SSL_PORT@#$KAFKA_SSL_PORT#g" -e "s#@SASL_PORT@#$KAFKA_SASL_PORT#g" -e "s#@TLS@#$TLS#g" \
    -e "s#@PROXIED_PORT@#$KAFKA_PROXIED_PORT#g" -e "s#@PROXIED_ADVERTISED_PORT@#$KAFKA_PROXIED_ADVERTISED_PORT#g" \
    "$ROOT/dev/kafka/server.properties" >"$dir/server.properties.new"
  if cmp -s "$dir/server.properties.new" "$dir/server.properties"; then
    rm "$dir/server.properties.new"
    return 1
  fi
  mv "$dir/server.properties.new" "$dir/server.properties"
}

# The SCRAM user of the SASL_SSL listener lives in the cluster metadata; it is
# added once per formatted cluster (kafka_init drops the marker when it formats).
kafka_scram_user() {
  local dir="$DEV/kafka"
  [ -f "$dir/scram-user" ] && return
  java -cp "$dir/libs/*" -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.properties" \
    kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
    --entity-type users --entity-name "$DB_USER" \
    --add-config "SCRAM-SHA-512=[password=$DB_PASSWORD]" >/dev/null
  touch "$dir/scram-user"
}

kafka_start() {
  if kafka_config && kafka_running; then
    log "restarting Kafka to apply the new listeners"
    kafka_stop
  fi
  kafka_init
  if ! kafka_running; then
    log "starting Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$KAFKA_PORT"
    (cd "$DEV/kafka" || exit 1
      setsid nohup java -Xms128m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -Djava.awt.headless=true -Dlog4j2.configurationFile="$ROOT/dev/kafka/log4j2.properties" \
      -cp "$DEV/kafka/libs/*" kafka.Kafka "$DEV/kafka/server.properties" >"$DEV/kafka/kafka.log" 2>&1 &
      echo $! >"$DEV/kafka/kafka.pid")
  fi
  for _ in $(seq 1 120); do kafka_ready && break; kafka_running || break; sleep 0.5; done
  kafka_ready || die "Kafka did not start; see $DEV/kafka/kafka.log"
  kafka_scram_user
}

kafka_stop() {
  kafka_running || return 0
  local p; p=$(kafka_pid); kill "$p" 2>/dev/null || true
  for _ in $(seq 1 120); do alive "$p" || return 0; sleep 0.5; done
  kill -9 "$p" 2>/dev/null || true
}
kafka_kill() { local p; p=$(kafka_pid); [ -n "$p" ] && kill -9 "$p" 2>/dev/null; gone "$p"; }

# ---------------------------------------------------------------------------
write_env() {
  cat >"$DEV/env" <<EOF
CDC_PG_DSN=postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/postgres
CDC_MYSQL_DSN=mysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$MY_PORT/
CDC_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
CDC_KAFKA_SSL_BOOTSTRAP=127.0.0.1:$KAFKA_SSL_PORT
CDC_KAFKA_SASL_BOOTSTRAP=127.0.0.1:$KAFKA_SASL_PORT
CDC_KAFKA_SASL_USER=$DB_USER
CDC_KAFKA_SASL_PASSWORD=$DB_PASSWORD
CDC_KAFKA_PROXIED_LISTENER=127.0.0.1:$KAFKA_PROXIED_PORT
CDC_KAFKA_PROXIED_BOOTSTRAP=127.0.0.1:$KAFKA_PROXIED_ADVERTISED_PORT
CDC_TLS_CA=$TLS/ca.pem
CDC_DEV_DIR=$DEV
EOF
}

server() {
  case $1 in
    pg | postgres) echo pg ;;
    mysql | mariadb) echo my ;;
    kafka) echo kafka ;;
    *) die "unknown server '$1' (pg, mysql, kafka)" ;;
  esac
}

# The servers' ports lie in Linux's ephemeral range: a client's outgoing
# connection may hold one as its local port just when a server restarts (the
# crash and chaos tests restart them under load), and the server then cannot
# bind it. Reserving them keeps the kernel from handing them out.
reserve_ports() {
  local file=/proc/sys/net/ipv4/ip_local_reserved_ports ours current
  ours="$PG_PORT,$MY_PORT,$KAFKA_PORT-$KAFKA_PROXIED_ADVERTISED_PORT"
  [ -w "$file" ] || { log "cannot reserve $ours in $file (not root): a restart may find a port taken"; return 0; }
  current=$(cat "$file")
  echo "${current:+$current,}$ours" >"$file" 2>/dev/null || log "could not reserve $ours"
}

cmd=${1:-up}
case $cmd in
  up)
    ensure_packages
    mkdir -p "$DEV"
    reserve_ports
    tls_init
    pg_start; my_start; kafka_start; write_env
    log "ready: $(tr '\n' ' ' <"$DEV/env")" ;;
  down) kafka_stop; my_stop; pg_stop ;;
  start) s=$(server "${2:?server}"); tls_init; "${s}_start"; write_env ;;
  stop | kill) s=$(server "${2:?server}"); "${s}_$cmd" ;;
  restart) s=$(server "${2:?server}"); "${s}_stop"; tls_init; "${s}_start" ;;
  status)
    for s in pg my kafka; do
      if "${s}_running"; then echo "$s: running"; else echo "$s: stopped"; fi
    done ;;
  *) die "usage: $0 up|down|status|start|stop|kill|restart [pg|mysql|kafka]" ;;
esac
