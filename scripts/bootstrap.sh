#!/usr/bin/env bash
# Installs everything Puente needs on a fresh Debian 12 machine, as root: Debian packages, the
# project's virtualenv (.venv) with the pinned Python dependencies. Safe to run again: it only does
# what is missing. Both README commands start with it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

APT_PACKAGES=(
  # servers the tests start themselves (throwaway instances on free ports)
  postgresql postgresql-contrib rabbitmq-server
  # the lab: podman nodes booting systemd, image built with debootstrap
  podman runc debootstrap uidmap slirp4netns fuse-overlayfs iptables nftables
  # client tools used by the drills, the benchmarks and the tests
  openssh-client curl dnsutils wrk jq rsync
  # the audit report's signature (puente audit --sign-key, verify -p)
  minisign
  # the drill's own tests: a real PowerDNS on loopback, pings across test namespaces
  pdns-server pdns-backend-sqlite3 iputils-ping
  # promtool and amtool (Debian's Prometheus 2.42 and Alertmanager 0.25): the alert rules' unit tests and
  # the monitoring configuration's checks (tests/monitoring); their services are never started here
  prometheus prometheus-alertmanager
  # the audit's and the drills' HTML reports are checked in headless Chromium
  chromium
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "+ apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PUENTE_PYTHON:-python3}
STAMP=.venv/.puente-installed
want=$(cat constraints.txt pyproject.toml api/pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -f $STAMP || $(cat $STAMP) != "$want" ]]; then
  [[ -x .venv/bin/python ]] || { echo "+ $PY -m venv .venv"; "$PY" -m venv .venv; }
  echo "+ .venv/bin/pip install -c constraints.txt -e '.[stacks,ansible,test]' -e ./api"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/pip install -q -c constraints.txt -e "$ROOT[stacks,ansible,test]" -e "$ROOT/api"
  echo "$want" > $STAMP
fi
