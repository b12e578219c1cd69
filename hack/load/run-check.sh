#!/usr/bin/env bash
# run-check.sh: what availability checking costs on the admission hot path
# with a warm cache (issue 7). Three `detour serve` processes get the same
# load, one after the other, in each of ROUNDS rounds:
#
#   off, off2   rules with fallback chains, check.enabled: false (twice: the
#               difference between two identical servers is the benchmark's
#               own noise on this machine)
#   on          the same rules, check.enabled: true
#
# "on" is measured between the two "off" servers in every round, and the
# offs swap places from round to round, so drift over the run (the machine
# warming up, the other processes of a shared host) falls on both sides.
# Printed per round: each server's line (as in run.sh), then the paired
# differences in CPU µs per request and in throughput: on against the mean of
# the offs (the cost), and off2 against off (the noise). At the end, the
# medians and ranges of both over all rounds.
#
# The chains point at a real Debian docker-registry on 127.0.0.1: their first
# mirror lacks every image, the second has it (seeded by hack/load/seed), so
# "on" must look at both and choose the second; the warm-up fills its
# cache (positive answers live 10 m, negative 1 m), so the measured run is the
# steady state of a busy cluster. The answers are checked before measuring:
# the offs admit the first mirror, "on" the second.
#
# Usage: hack/load/run-check.sh   (ROUNDS=5 N=20000 C=16 WARMUP=2000 by default)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v docker-registry >/dev/null || { echo "run-check.sh: docker-registry is missing (hack/ensure-test-deps.sh installs it)" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >"$tmp/registry.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $tmp/registry}}
http: {addr: $reg}
YAML
docker-registry serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
"$tmp/seed" "$reg/hub/library/busybox:1.36" "$reg/hub/envoyproxy/envoy:v1.30.1" "$reg/ghcr/acme/shop-api:v2.14.1"

config() { # config ENABLED
	cat <<YAML
presets: []
mirrors:
  - from: docker.io
    to: [$reg/lacks-hub, $reg/hub]
  - from: ghcr.io
    to: [$reg/lacks-ghcr, $reg/ghcr]
check:
  enabled: $1
  timeout: 1s
  budget: 3s
  ttl: 10m
YAML
}
config false >"$tmp/off.yaml"
config true >"$tmp/on.yaml"

start() { # start NAME CONFIG: sets url_NAME and pid_NAME
	"$tmp/detour" serve --config "$2" --listen 127.0.0.1:0 --probe-listen 127.0.0.1:0 2>"$tmp/$1.log" &
	pids+=($!)
	eval "pid_$1=$!"
	local serving
	serving=$(wait_for "$tmp/$1.log" '"msg":"serving"')
	eval "url_$1=$(echo "$serving" | sed 's/.*"webhook":"\([^"]*\)".*/\1/')"
}
start off "$tmp/off.yaml"
start off2 "$tmp/off.yaml"
start on "$tmp/on.yaml"

# patched_image URL: the first image detour's patch sets for body.json.
patched_image() {
	curl -sfk -H 'Content-Type: application/json' --data-binary @"$body" "$1" |
		python3 -c 'import base64,json,sys; p=json.loads(base64.b64decode(json.load(sys.stdin)["response"]["patch"])); print([o["value"] for o in p if o["path"].endswith("/image")][0])'
}
got_off=$(patched_image "$url_off")
got_off2=$(patched_image "$url_off2")
got_on=$(patched_image "$url_on")
[ "$got_off" = "$reg/lacks-hub/library/busybox:1.36" ] || { echo "run-check.sh: detour-off admitted $got_off" >&2; exit 1; }
[ "$got_off2" = "$got_off" ] || { echo "run-check.sh: detour-off2 admitted $got_off2" >&2; exit 1; }
[ "$got_on" = "$reg/hub/library/busybox:1.36" ] || { echo "run-check.sh: detour-on admitted $got_on, want the mirror that has it" >&2; exit 1; }

ROUNDS=${ROUNDS:-5}
echo "hey -n $N -c $C -m POST -T application/json -D hack/load/body.json ($(wc -c <"$body") bytes), $(nproc) CPUs, $(go version | awk '{print $3}'), $ROUNDS rounds"
echo "checks off admits $got_off; checks on admits $got_on"
costs=() noises=() ratios=() aa=()
for round in $(seq "$ROUNDS"); do
	echo "round $round"
	printf '%-8s %10s %8s %8s %10s %10s %10s\n' server 'req/s' 'p50 ms' 'p99 ms' 'CPU µs/req' 'peak RSS MB' 'anon MB'
	if [ $((round % 2)) = 1 ]; then order="off on off2"; else order="off2 on off"; fi
	for s in $order; do
		eval "bench $s \"\$pid_$s\" \"\$url_$s\""
	done
	read -r cost noise ratio aaratio < <(python3 - "$tmp" <<'PY'
import sys
d = sys.argv[1]
v = {k: float(open(f"{d}/{k}.{x}").read()) for k in ("off", "off2", "on") for x in ("cpu",)}
r = {k: float(open(f"{d}/{k}.rps").read()) for k in ("off", "off2", "on")}
print(f"{v['on'] - (v['off'] + v['off2']) / 2:+.1f} {v['off2'] - v['off']:+.1f} "
      f"{100 * r['on'] / ((r['off'] + r['off2']) / 2):.0f} {100 * r['off2'] / r['off']:.0f}")
PY
)
	echo "  checks on: $cost µs CPU/request, $ratio% throughput of checks off; noise (off2 vs off): $noise µs, $aaratio%"
	costs+=("$cost") noises+=("$noise") ratios+=("$ratio") aa+=("$aaratio")
done
summary() { # summary NAME SIGN VALUES...: SIGN is + to show the sign of differences
	python3 -c 'import statistics,sys; f="{:"+sys.argv[2]+".1f}"; v=[float(x) for x in sys.argv[3:]]; print(sys.argv[1] + ": median " + f.format(statistics.median(v)) + ", range " + f.format(min(v)) + " .. " + f.format(max(v)))' "$@"
}
echo "summary over $ROUNDS rounds"
summary "  cost, CPU µs/request (on - mean of offs)" + "${costs[@]}"
summary "  noise, CPU µs/request (off2 - off)      " + "${noises[@]}"
summary "  throughput, % (on / mean of offs)       " "" "${ratios[@]}"
summary "  throughput, % (off2 / off)              " "" "${aa[@]}"
echo "registry HEAD requests during the whole run: $(grep -c '"HEAD /v2/' "$tmp/registry.log" || true)"
