#!/usr/bin/env bash
# Builds the lab's node image without a registry: debootstrap a Debian bookworm tree, lay the files of
# rootfs/ over it, prepare it to boot under podman, and `podman import` it as IMAGE (a tag carrying the
# hash of this directory, so `puente lab up` rebuilds only when the recipe changes).
#
#   CONTAINERS_CONF=lab/containers.conf lab/image/build.sh localhost/puente-lab-node:HASH
#
# Debian mirror: the first `deb` URI of the host's own apt sources (override with PUENTE_LAB_MIRROR); the
# nodes get the same mirror plus its -security suite, so unattended security updates have a source.
# Downloaded .debs are kept in .cache/lab/debootstrap so a rebuild does not fetch them again.
set -euo pipefail
IMAGE=${1:?usage: build.sh IMAGE}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SUITE=bookworm
CACHE=$ROOT/.cache/lab/debootstrap
mkdir -p "$CACHE"

host_mirror() {
  # deb822 sources first (Debian 12 default), then the one-line format.
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri%/}"
}
MIRROR=${PUENTE_LAB_MIRROR:-$(host_mirror)}
[[ -n $MIRROR ]] || { echo "build.sh: no Debian mirror in the host's apt sources; set PUENTE_LAB_MIRROR" >&2; exit 2; }
SECURITY_MIRROR=${PUENTE_LAB_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}

TREE=$(mktemp -d "${TMPDIR:-/var/tmp}/puente-lab-rootfs.XXXXXX")
trap 'rm -rf --one-file-system "$TREE"' EXIT

PACKAGES=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,iproute2,iputils-ping,procps,sudo,ca-certificates,nftables,systemd-timesyncd,unattended-upgrades,less,curl
echo "+ debootstrap --variant=minbase --include=$PACKAGES --cache-dir=$CACHE $SUITE $TREE $MIRROR" >&2
debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE" "$SUITE" "$TREE" "$MIRROR" >/dev/null

# Files of the recipe (units, sshd/apt/sudo drop-ins) over the tree.
cp -a "$HERE/rootfs/." "$TREE/"

cat > "$TREE/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES

chroot "$TREE" /bin/sh -eu <<'PREPARE'
useradd --create-home --shell /bin/bash --comment "Puente operator (lab)" puente
install -d -m 0700 -o puente -g puente /home/puente/.ssh
chmod 0440 /etc/sudoers.d/puente-lab
systemctl enable puente-lab-firstboot.service
# A container has no consoles, no udev and no kernel modules to load: these units only fail or wait.
systemctl mask getty@tty1.service console-getty.service systemd-udevd.service systemd-udevd-control.socket \
  systemd-udevd-kernel.socket systemd-modules-load.service sys-kernel-config.mount \
  systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service
PREPARE

# Every node must get its own identity at boot: no machine-id, no ssh host keys in the image.
: > "$TREE/etc/machine-id"
rm -f "$TREE"/etc/ssh/ssh_host_* "$TREE/var/lib/dbus/machine-id"
# Empty apt lists with an OLD mtime: Ansible's apt cache_valid_time then sees a stale cache and updates it
# (a fresh mtime on an empty folder made it skip the update: "No package matching 'nginx'").
rm -rf "$TREE"/var/lib/apt/lists/* "$TREE"/var/cache/apt/*.bin "$TREE"/var/cache/apt/archives/*.deb
touch -d '2000-01-01 00:00:00' "$TREE/var/lib/apt/lists"

echo "+ tar -C $TREE -c . | podman import --change 'CMD=[\"/sbin/init\"]' --change 'STOPSIGNAL=SIGRTMIN+3' - $IMAGE" >&2
tar --numeric-owner -C "$TREE" -c . | podman import \
  --change 'CMD=["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' \
  --change 'LABEL=io.puente.lab.recipe='"${IMAGE##*:}" - "$IMAGE" >/dev/null
echo "built $IMAGE" >&2
