#!/usr/bin/env bash
# Say what runs in the lab and where: hosts, published URLs, where the generated credentials are.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

printf '\nThe celeryops lab is running (Debian %s):\n' \
  "$(docker inspect -f '{{index .Config.Labels "celeryops.release"}}' "$LAB_PREFIX-broker")"
for host in $LAB_HOSTS; do
  printf '  %-7s container %-18s address %s\n' "$host" "$LAB_PREFIX-$host" \
    "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$LAB_PREFIX-$host")"
done
running() { docker exec "$LAB_PREFIX-$1" sh -c "$2" >/dev/null 2>&1; }
printf '\nServices:\n'
if running broker 'systemctl is-active --quiet rabbitmq-server'; then
  printf '  RabbitMQ AMQPS       amqps://broker:5671/ (inside the lab network; plain AMQP only on its loopback)\n'
  printf '  RabbitMQ management  https://127.0.0.1:15671/  (user admin)\n'
else
  printf '  RabbitMQ             not deployed yet\n'
fi
for host in app1 app2; do
  if running "$host" 'test -S /var/run/supervisor.sock'; then
    printf '  %s supervisor:\n' "$host"
    docker exec "$LAB_PREFIX-$host" supervisorctl status 2>/dev/null | sed 's/^/      /' || true
  fi
done
flower_state=$(docker exec "$LAB_PREFIX-app1" supervisorctl status flower 2>/dev/null | awk '{print $2}' || true)
if [ -n "$flower_state" ]; then
  printf '  Flower               https://127.0.0.1:5555/  (user admin; %s)\n' "$flower_state"
fi
if running monitor 'systemctl is-active --quiet prometheus'; then
  printf '  Prometheus           127.0.0.1:9090 and Alertmanager 127.0.0.1:9093 on the loopback of %s-monitor;\n' \
    "$LAB_PREFIX"
  printf '                       firing alerts: docker exec %s-monitor python3 -c %s\n' "$LAB_PREFIX" \
    "'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:9090/api/v1/alerts\").read().decode())'"
fi
creds="$top/inventories/lab/credentials"
printf '\nCredentials (generated, mode 0600, git-ignored): %s\n' "${creds#"$top"/}/"
if [ -d "$creds" ]; then
  find "$creds" -maxdepth 1 -type f -printf '  %f\n' | sort
fi
if [ -f "$creds/tls/ca.crt" ]; then
  printf '\nTLS: the lab CA that signed every certificate is %s (trust it in a browser, or pass it to\n' \
    "${creds#"$top"/}/tls/ca.crt"
  printf '  curl --cacert); the certificates name the hosts, localhost and 127.0.0.1.\n'
fi
printf '\nRemove the lab with: make lab-destroy\n'
