#!/bin/sh
# Example after_command for pg-keeper: after this node promoted its server, fence the old primary
# (optional) and move a virtual IP here, so that clients follow the new primary.
#
# To use it (the Debian package ships it as /usr/share/doc/pg-keeper/examples/move-vip.sh):
#   install -m 0755 move-vip.sh /etc/pg-keeper/move-vip.sh
#   printf 'VIP=10.0.0.100/24\nVIP_DEV=eth0\n' > /etc/pg-keeper/move-vip.env
#   in /etc/pg-keeper/pg-keeper.yml:  after_command: "sh /etc/pg-keeper/move-vip.sh"
#   in the systemd unit: uncomment the three lines of the "moving a virtual IP" block
#   check it: env PG_KEEPER_EVENT=promote DRY_RUN=1 sh /etc/pg-keeper/move-vip.sh
#
# Settings, from the environment, or from the file MOVE_VIP_ENV (default /etc/pg-keeper/move-vip.env,
# read when it exists; the environment wins):
#   VIP             the virtual IPv4 address WITH its prefix length, e.g. 10.0.0.100/24      (required)
#   VIP_DEV         the interface that carries it, e.g. eth0                                 (required)
#   VIP_ARP         1: announce the VIP with a gratuitous ARP (arping); 0: don't, for networks that
#                   ignore it (most clouds: move the address with their API instead)  (default 1)
#   FENCE_SSH       ssh destination on the old primary's host, e.g. postgres@10.0.0.11  (empty: no fencing)
#   FENCE_PG_CTL    pg_ctl on that host           (default /usr/lib/postgresql/15/bin/pg_ctl)
#   FENCE_PGDATA    the data directory there      (default /var/lib/postgresql/15/main)
#   FENCE_REQUIRED  1: do not take the VIP when fencing failed (default 0: the old primary missed
#                   keepalive_count heartbeats and is most likely down, so take it anyway)
#   DRY_RUN         1 (or yes, true): print what would be done, change nothing  (default 0)
#
# pg-keeper gives it the event in PG_KEEPER_* variables (README, "after_command"): PG_KEEPER_EVENT
# (promote), PG_KEEPER_NODE, PG_KEEPER_PEER, PG_KEEPER_REASON, PG_KEEPER_TIME,
# PG_KEEPER_LOCAL_HOST/_PORT, PG_KEEPER_PEER_HOST/_PORT, PG_KEEPER_NEW_PRIMARY_HOST/_PORT,
# PG_KEEPER_OLD_PRIMARY_HOST/_PORT.
#
# Exit status: 0 done (or nothing to do), 2 bad settings, 3 fencing failed and FENCE_REQUIRED=1,
# 4 the VIP could not be added, 5 the gratuitous ARP was not sent. Anything but 0 is logged, counted
# in pg_keeper_after_command_runs_total{result="failed"} and alerted on (PgKeeperAfterCommandFailed):
# clients may still be sent to the old host, and the pair needs a person.
#
# Needs: ip (iproute2), arping (iputils-arping), ssh for fencing; CAP_NET_ADMIN (ip), CAP_NET_RAW and
# packet sockets (arping: AF_PACKET), which deploy/pg-keeper.service grants in its VIP block. Without
# sudo rights on the old host, FENCE_SSH should log in as the user owning its data directory
# (postgres), and the VIP there is removed when that host comes back.
set -eu

# Settings from the file, without overriding what the environment already says.
MOVE_VIP_ENV=${MOVE_VIP_ENV:-/etc/pg-keeper/move-vip.env}
if [ -r "$MOVE_VIP_ENV" ]; then
  for name in VIP VIP_DEV VIP_ARP FENCE_SSH FENCE_PG_CTL FENCE_PGDATA FENCE_REQUIRED DRY_RUN; do
    eval "given=\${$name+set}"
    # shellcheck disable=SC2154 # set by the eval above
    if [ "$given" != set ]; then
      value=$(sed -n "s/^[[:space:]]*$name=//p" "$MOVE_VIP_ENV" | tail -n 1 | sed "s/^[\"']//; s/[\"']\$//")
      [ -n "$value" ] && eval "$name=\$value"
    fi
  done
fi

# 1, yes, true, on: true; 0, no, false, off, empty: false; anything else is a mistake worth stopping for.
flag() {
  case $(printf '%s' "$2" | tr '[:upper:]' '[:lower:]') in
    1 | yes | true | on) echo 1 ;;
    '' | 0 | no | false | off) echo 0 ;;
    *)
      echo "move-vip: $1=$2: expected 1/yes/true or 0/no/false" >&2
      exit 2
      ;;
  esac
}
DRY_RUN=$(flag DRY_RUN "${DRY_RUN:-0}")
VIP_ARP=$(flag VIP_ARP "${VIP_ARP:-1}")
FENCE_REQUIRED=$(flag FENCE_REQUIRED "${FENCE_REQUIRED:-0}")

say() {
  printf '%s move-vip%s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$([ "$DRY_RUN" = 1 ] && echo ' (dry run)')" "$*"
}
# Runs a command, or in a dry run only shows it (and counts it as done).
run() {
  say "+ $*"
  if [ "$DRY_RUN" = 1 ]; then return 0; fi
  "$@"
}
# What happened, or in a dry run what would have: "$1" when done, "$2" in a dry run.
report() {
  if [ "$DRY_RUN" = 1 ]; then say "$2"; else say "$1"; fi
}

: "${PG_KEEPER_EVENT:?this script is run by pg-keeper as its after_command}"
if [ "$PG_KEEPER_EVENT" != promote ]; then
  say "event $PG_KEEPER_EVENT: nothing to do"
  exit 0
fi
VIP=${VIP:-}
VIP_DEV=${VIP_DEV:-}
if [ -z "$VIP" ] || [ -z "$VIP_DEV" ]; then
  say "VIP and VIP_DEV must be set (e.g. VIP=10.0.0.100/24 VIP_DEV=eth0), in the environment or in $MOVE_VIP_ENV"
  exit 2
fi
# Without a prefix length, ip adds a /32, and the check below for an address already in place
# never matches what ip then shows.
if ! printf '%s\n' "$VIP" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$'; then
  say "VIP=$VIP: expected an IPv4 address with its prefix length, e.g. 10.0.0.100/24"
  exit 2
fi
FENCE_SSH=${FENCE_SSH:-}
FENCE_PG_CTL=${FENCE_PG_CTL:-/usr/lib/postgresql/15/bin/pg_ctl}
FENCE_PGDATA=${FENCE_PGDATA:-/var/lib/postgresql/15/main}
address=${VIP%%/*}

say "${PG_KEEPER_NODE:-this node} was promoted: ${PG_KEEPER_REASON:-}"
say "old primary: ${PG_KEEPER_OLD_PRIMARY_HOST:-?}:${PG_KEEPER_OLD_PRIMARY_PORT:-?}; new primary: ${PG_KEEPER_NEW_PRIMARY_HOST:-?}:${PG_KEEPER_NEW_PRIMARY_PORT:-?}"

# 1. Fence: the old primary must not take writes once clients come here. An immediate stop is what a
#    crash would have done; its data directory is intact for a pg_rewind or a new base backup.
if [ -n "$FENCE_SSH" ]; then
  if run ssh -o BatchMode=yes -o ConnectTimeout=5 "$FENCE_SSH" \
    "$FENCE_PG_CTL -D '$FENCE_PGDATA' stop -m immediate"; then
    report "fenced: the old primary's server is stopped" "the old primary's server would be stopped"
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
if ip -o -4 addr show dev "$VIP_DEV" 2>/dev/null | grep -q " inet $VIP "; then
  say "$VIP is already on $VIP_DEV"
elif ! run ip addr add "$VIP" dev "$VIP_DEV"; then
  say "could not add $VIP to $VIP_DEV (CAP_NET_ADMIN missing, or no such interface)"
  exit 4
fi

# 3. Tell the LAN: gratuitous ARP, so that switches and clients stop sending to the old host's MAC.
#    Without it they keep the old MAC until their ARP cache expires: a failure, not a detail.
if [ "$VIP_ARP" = 1 ]; then
  if [ "$DRY_RUN" != 1 ] && ! command -v arping >/dev/null 2>&1; then
    say "arping not found (apt-get install iputils-arping), so no gratuitous ARP was sent; VIP_ARP=0 skips it"
    exit 5
  fi
  if ! run arping -q -c 3 -U -I "$VIP_DEV" "$address"; then
    say "arping failed (CAP_NET_RAW or AF_PACKET sockets missing?): clients may keep sending to the old host"
    exit 5
  fi
else
  say "no gratuitous ARP (VIP_ARP=0)"
fi
report "done: $address now points at ${PG_KEEPER_NODE:-this node}" \
  "nothing was changed; $address would point at ${PG_KEEPER_NODE:-this node}"
