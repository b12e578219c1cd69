#!/usr/bin/env bash
# Installs the Debian packages detour's integration and e2e tests run for real:
# the CNCF registry server, etcd, hey (load), containerd + ctr, skopeo (a peer
# to compare with) and htpasswd (bcrypt files for registry auth). Idempotent:
# does nothing when every command is already there.
set -euo pipefail

need=()
for pair in docker-registry:docker-registry etcd:etcd-server hey:hey containerd:containerd \
	ctr:containerd skopeo:skopeo htpasswd:apache2-utils; do
	cmd=${pair%%:*} pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "ensure-test-deps: missing ${need[*]}; run as root or: apt-get install ${need[*]}" >&2
	exit 1
fi
# Another apt may hold the lock (unattended upgrades, a parallel job): wait.
for _ in $(seq 1 120); do
	fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1 || break
	sleep 2
done
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2046
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
echo "ensure-test-deps: installed $(printf '%s ' "${need[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')"
