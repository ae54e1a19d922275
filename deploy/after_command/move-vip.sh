#!/bin/sh
# Example after_command for pg-keeper: after this node promoted its server, fence the old primary
# (optional) and move a virtual IP here, so that clients follow the new primary.
#
#   after_command: "sh /etc/pg-keeper/move-vip.sh"
#   after_command_timeout: 30
#
# Settings, from the environment (systemd: Environment= or EnvironmentFile= in the unit):
#   VIP             the virtual IP with its prefix length, e.g. 10.0.0.100/24          (required)
#   VIP_DEV         the interface that carries it, e.g. eth0                            (required)
#   FENCE_SSH       ssh destination on the old primary's host, e.g. postgres@10.0.0.11  (empty: no fencing)
#   FENCE_PG_CTL    pg_ctl on that host           (default /usr/lib/postgresql/15/bin/pg_ctl)
#   FENCE_PGDATA    the data directory there      (default /var/lib/postgresql/15/main)
#   FENCE_REQUIRED  1: do not take the VIP when fencing failed (default 0: the old primary missed
#                   keepalive_count heartbeats and is most likely down, so take it anyway)
#   DRY_RUN         1: print the commands without running them
#
# pg-keeper gives it the event in PG_KEEPER_* variables: PG_KEEPER_EVENT (promote), PG_KEEPER_NODE,
# PG_KEEPER_PEER, PG_KEEPER_REASON, PG_KEEPER_TIME, PG_KEEPER_NEW_PRIMARY_HOST/_PORT,
# PG_KEEPER_OLD_PRIMARY_HOST/_PORT. A non-zero exit status is logged, counted in
# pg_keeper_after_command_failures_total and alerted on: the pair then needs a person.
#
# Needs: ip (iproute2), arping (iputils-arping), ssh for fencing; CAP_NET_ADMIN and CAP_NET_RAW (see
# deploy/pg-keeper.service). Without sudo rights on the old host, FENCE_SSH should log in as the user
# owning its data directory (postgres), and the VIP there is removed when that host comes back.
set -eu

say() {
  printf '%s move-vip%s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$([ "${DRY_RUN:-0}" = 1 ] && echo ' (dry run)')" "$*"
}
run() {
  say "+ $*"
  if [ "${DRY_RUN:-0}" = 1 ]; then return 0; fi
  "$@"
}

: "${PG_KEEPER_EVENT:?this script is run by pg-keeper as its after_command}"
if [ "$PG_KEEPER_EVENT" != promote ]; then
  say "event $PG_KEEPER_EVENT: nothing to do"
  exit 0
fi
VIP=${VIP:-}
VIP_DEV=${VIP_DEV:-}
if [ -z "$VIP" ] || [ -z "$VIP_DEV" ]; then
  say "VIP and VIP_DEV must be set (e.g. VIP=10.0.0.100/24 VIP_DEV=eth0)"
  exit 2
fi
FENCE_SSH=${FENCE_SSH:-}
FENCE_PG_CTL=${FENCE_PG_CTL:-/usr/lib/postgresql/15/bin/pg_ctl}
FENCE_PGDATA=${FENCE_PGDATA:-/var/lib/postgresql/15/main}
FENCE_REQUIRED=${FENCE_REQUIRED:-0}
address=${VIP%%/*}

say "${PG_KEEPER_NODE:-this node} was promoted: ${PG_KEEPER_REASON:-}"
say "old primary: ${PG_KEEPER_OLD_PRIMARY_HOST:-?}:${PG_KEEPER_OLD_PRIMARY_PORT:-?}; new primary: ${PG_KEEPER_NEW_PRIMARY_HOST:-?}:${PG_KEEPER_NEW_PRIMARY_PORT:-?}"

# 1. Fence: the old primary must not take writes once clients come here. An immediate stop is what a
#    crash would have done; its data directory is intact for a pg_rewind or a new base backup.
if [ -n "$FENCE_SSH" ]; then
  if run ssh -o BatchMode=yes -o ConnectTimeout=5 "$FENCE_SSH" \
    "$FENCE_PG_CTL -D '$FENCE_PGDATA' stop -m immediate"; then
    say "fenced: the old primary's server is stopped"
  else
    say "fencing failed: could not stop the old primary through ssh $FENCE_SSH"
    if [ "$FENCE_REQUIRED" = 1 ]; then
      say "FENCE_REQUIRED=1: not taking the VIP"
      exit 3
    fi
  fi
  # Best effort: the VIP off the old host (needs rights there; a dead host has nothing to remove).
  run ssh -o BatchMode=yes -o ConnectTimeout=5 "$FENCE_SSH" "sudo -n ip addr del $VIP dev $VIP_DEV" ||
    say "could not remove $VIP from the old host (down, or no rights): it must not get it back on start"
else
  say "no fencing (FENCE_SSH is empty)"
fi

# 2. Take the VIP here (idempotent: a second run finds it in place).
if [ "${DRY_RUN:-0}" != 1 ] && ip -o addr show dev "$VIP_DEV" | grep -q " $VIP "; then
  say "$VIP is already on $VIP_DEV"
else
  run ip addr add "$VIP" dev "$VIP_DEV"
fi

# 3. Tell the LAN: gratuitous ARP, so that switches and clients stop sending to the old host's MAC.
if [ "${DRY_RUN:-0}" = 1 ] || command -v arping >/dev/null 2>&1; then
  run arping -q -c 3 -U -I "$VIP_DEV" "$address" || say "arping failed: clients may need a moment to notice"
else
  say "arping not found (apt-get install iputils-arping): clients learn the new MAC when their ARP cache expires"
fi
say "done: $address now points at ${PG_KEEPER_NODE:-this node}"
