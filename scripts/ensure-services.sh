#!/usr/bin/env bash
# Makes sure the MariaDB/MySQL and Redis servers the test suite needs are reachable, and says
# what it did: uses running ones (CHAT_TEST_MYSQL_URL / CHAT_TEST_REDIS_URL, else DATABASE_URL /
# REDIS_URL when they point at MySQL / Redis, else the localhost defaults); otherwise starts them
# from installed packages; otherwise installs them (Debian: mariadb-server, redis-server).
# Prints the two URLs to use as its last two lines: `MYSQL=<url>` and `REDIS=<url>`.
set -euo pipefail

say() { echo "services: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

mysql_url=${CHAT_TEST_MYSQL_URL:-}
if [[ -z $mysql_url && ${DATABASE_URL:-} == mysql://* ]]; then
  # The suite creates one database per test on this server: drop the database part.
  mysql_url=$(sed -E 's#^(mysql://[^/]+).*#\1#' <<<"$DATABASE_URL")
fi
mysql_url=${mysql_url:-mysql://root@127.0.0.1:3306}
redis_url=${CHAT_TEST_REDIS_URL:-${REDIS_URL:-redis://127.0.0.1:6379}}

# mysql://user[:pass]@host[:port]
[[ $mysql_url =~ ^mysql://([^:@/]+)(:([^@/]*))?@([^:/]+)(:([0-9]+))?/?$ ]] \
  || die "cannot parse MySQL URL $mysql_url (expected mysql://user[:password]@host[:port])"
m_user=${BASH_REMATCH[1]} m_pass=${BASH_REMATCH[3]} m_host=${BASH_REMATCH[4]} m_port=${BASH_REMATCH[6]:-3306}
[[ $redis_url =~ ^redis://([^/:]+@)?([^:/]+)(:([0-9]+))?(/.*)?$ ]] \
  || die "cannot parse Redis URL $redis_url (expected redis://host[:port])"
r_host=${BASH_REMATCH[2]} r_port=${BASH_REMATCH[4]:-6379}
is_local() { [[ $1 == 127.0.0.1 || $1 == localhost || $1 == ::1 ]]; }

mysql_client() { command -v mariadb || command -v mysql || true; }

mysql_ok() {
  local client; client=$(mysql_client)
  if [[ -n $client ]]; then
    MYSQL_PWD=$m_pass "$client" --protocol=TCP -h "$m_host" -P "$m_port" -u "$m_user" -e 'SELECT 1' >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/$m_host/$m_port") 2>/dev/null
  fi
}
redis_ok() {
  if command -v redis-cli >/dev/null; then
    [[ $(redis-cli -h "$r_host" -p "$r_port" ping 2>/dev/null) == PONG ]]
  else
    (exec 3<>"/dev/tcp/$r_host/$r_port") 2>/dev/null
  fi
}
mysql_port_open() { (exec 3<>"/dev/tcp/$m_host/$m_port") 2>/dev/null; }
wait_for() { # check-function seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do "$1" && return 0; sleep 0.1; done
  return 1
}

apt_updated=
apt_install() {
  [[ $(id -u) == 0 ]] || die "need root to install $* (or start the servers yourself and set CHAT_TEST_MYSQL_URL / CHAT_TEST_REDIS_URL)"
  command -v apt-get >/dev/null || die "no apt-get: install $* yourself"
  if [[ -z $apt_updated ]]; then
    say "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
  fi
  say "installing $* from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_mysql() {
  if mysql_ok; then say "using running MySQL/MariaDB at $m_host:$m_port"; return; fi
  is_local "$m_host" || die "MySQL at $m_host:$m_port is unreachable (it is not local, so it is not started here)"
  local server; server=$(command -v mariadbd || command -v mysqld || ls /usr/sbin/mariadbd /usr/sbin/mysqld 2>/dev/null | head -n1 || true)
  if [[ -z $server ]]; then
    apt_install mariadb-server mariadb-client
    server=$(command -v mariadbd || ls /usr/sbin/mariadbd /usr/sbin/mysqld 2>/dev/null | head -n1)
  fi
  if ! mysql_port_open; then
    say "starting $server"
    install -d -o mysql -g mysql /run/mysqld 2>/dev/null || mkdir -p /run/mysqld
    if command -v start-stop-daemon >/dev/null; then
      start-stop-daemon --start --oknodo --background --exec "$server" -- --port="$m_port" >&2
    else
      nohup "$server" --user=mysql --port="$m_port" >/tmp/chat-mariadb.log 2>&1 &
    fi
    wait_for mysql_port_open 60 \
      || die "MariaDB did not start listening on $m_port"
  fi
  if ! mysql_ok && [[ $m_user == root && -z $m_pass ]]; then
    # Debian's root@localhost authenticates by unix socket only; let the tests log in over TCP
    # with the empty password while keeping socket login working.
    say "allowing root over TCP with an empty password (mysql_native_password OR unix_socket)"
    "$(mysql_client)" -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" >&2 \
      || die "could not change root's authentication"
  fi
  wait_for mysql_ok 30 || die "MySQL at $m_host:$m_port still refuses $m_user"
  say "MySQL/MariaDB ready at $m_host:$m_port"
}

ensure_redis() {
  if redis_ok; then say "using running Redis at $r_host:$r_port"; return; fi
  is_local "$r_host" || die "Redis at $r_host:$r_port is unreachable (it is not local, so it is not started here)"
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting redis-server on $r_port (no persistence: test data only)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$r_port" --save "" --appendonly no \
    --logfile /tmp/chat-redis.log >&2
  wait_for redis_ok 20 || die "Redis did not start on $r_port"
  say "Redis ready at $r_host:$r_port"
}

ensure_mysql
ensure_redis
# The outage tests start private redis-servers of their own.
command -v redis-server >/dev/null || apt_install redis-server

# Test databases are named chat_test_<pid>_…; drop those whose test process is gone (a run that
# was killed), leaving any run still going alone.
client=$(mysql_client)
if [[ -n $client ]]; then
  for db in $(MYSQL_PWD=$m_pass "$client" --protocol=TCP -h "$m_host" -P "$m_port" -u "$m_user" -N -e "SHOW DATABASES LIKE 'chat\\_test\\_%'" 2>/dev/null); do
    pid=$(cut -d_ -f3 <<<"$db")
    if [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
      MYSQL_PWD=$m_pass "$client" --protocol=TCP -h "$m_host" -P "$m_port" -u "$m_user" -e "DROP DATABASE \`$db\`" 2>/dev/null || true
    fi
  done
fi

# Redis keys of test runs that are gone (prefix chat_test_<pid>_…:) go the same way.
if command -v redis-cli >/dev/null; then
  redis-cli -h "$r_host" -p "$r_port" --scan --pattern 'chat_test_*' 2>/dev/null \
    | awk -F_ '{print $3}' | sort -u | while read -r pid; do
      if [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
        redis-cli -h "$r_host" -p "$r_port" --scan --pattern "chat_test_${pid}_*" 2>/dev/null \
          | xargs -r -n 500 redis-cli -h "$r_host" -p "$r_port" del >/dev/null
      fi
    done
fi

echo "MYSQL=$mysql_url"
echo "REDIS=$redis_url"
