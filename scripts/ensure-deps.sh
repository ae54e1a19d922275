#!/usr/bin/env bash
# Installs what pg-keeper's tests and demo need from the machine, from Debian's packages, when it is
# missing: the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres), Prometheus and
# Alertmanager's amtool, systemd's systemd-analyze (to verify the shipped unit), wrk for the metrics
# benchmark, and etcd for the arbiter's tests. Idempotent; silent when everything is there. Debian's
# etcd service is never started (policy-rc.d below): the tests start their own members on free ports.
#
#   bash scripts/ensure-deps.sh               what `npm test` needs
#   bash scripts/ensure-deps.sh --containers  also what `npm run test:package` and
#                                             `npm run test:container` need: podman (with runc and
#                                             catatonit), mmdebstrap, podman-compose, and strip
#
# Installing needs root. Not root and something missing: prints what to install and exits 1.
#
# We never use the cluster Debian creates on install (15/main on port 5432): services are kept from
# starting during the install (policy-rc.d), and a cluster that runs anyway is stopped and set to manual.
set -euo pipefail

PACKAGES=(postgresql postgresql-contrib prometheus prometheus-alertmanager systemd wrk etcd-server)
# runc: crun refuses the hybrid cgroup layout of machines like CI's. catatonit: `podman run --init`.
# uidmap: podman wants newuidmap. binutils: strip, for the single executable of `npm run package:deb`.
CONTAINER_PACKAGES=(podman runc catatonit mmdebstrap podman-compose uidmap binutils)
case ${1:-} in
  '') ;;
  --containers) PACKAGES+=("${CONTAINER_PACKAGES[@]}") ;;
  *)
    echo "usage: $0 [--containers]" >&2
    exit 2
    ;;
esac

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "ensure-deps: missing Debian packages: ${missing[*]}" >&2
  echo "ensure-deps: install them as root with:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "ensure-deps: installing ${missing[*]}"
log=$(mktemp)
cleanup=(rm -f "$log")
# Keep the packages' services (Debian's PostgreSQL cluster, prometheus) from being started by the
# install, unless the machine already has its own policy.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  cleanup+=(/usr/sbin/policy-rc.d)
fi
trap '"${cleanup[@]}"' EXIT

export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "ensure-deps: apt-get failed:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi

# Only clusters that this install created: a machine that already had PostgreSQL keeps its own.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null; then
  pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
    if [[ $status == online* ]]; then
      echo "ensure-deps: stopping Debian's cluster $ver/$name (not used by pg-keeper)"
      pg_ctlcluster "$ver" "$name" stop || true
    fi
    conf=/etc/postgresql/$ver/$name/start.conf
    [[ -f $conf ]] && echo manual >"$conf"
  done
fi

if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "ensure-deps: installed, but no /usr/lib/postgresql/*/bin/initdb found" >&2
  exit 1
fi
commands=(prometheus amtool systemd-analyze etcd)
[[ ${1:-} == --containers ]] && commands+=(podman runc mmdebstrap podman-compose strip)
for cmd in "${commands[@]}"; do
  if ! command -v "$cmd" >/dev/null; then
    echo "ensure-deps: installed, but $cmd is not on PATH" >&2
    exit 1
  fi
done
echo "ensure-deps: done"
