#!/usr/bin/env bash
# run-check.sh: what availability checking costs on the admission hot path
# with a warm cache (issue 7). Two `detour serve` processes get the same load
# in one run, as in run.sh:
#
#   detour-off  rules with fallback chains, check.enabled: false
#   detour-on   the same rules, check.enabled: true
#
# The chains point at a real Debian docker-registry on 127.0.0.1: their first
# mirror lacks every image, the second has it (seeded by hack/load/seed), so
# detour-on must look at both and choose the second; the warm-up fills its
# cache (positive answers live 10 m, negative 1 m), so the measured run is the
# steady state of a busy cluster. Both answers are checked before measuring:
# detour-off admits the first mirror, detour-on the second.
#
# Usage: hack/load/run-check.sh   (N=20000 C=16 WARMUP=2000 by default)
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
start on "$tmp/on.yaml"

# patched_image URL: the first image detour's patch sets for body.json.
patched_image() {
	curl -sfk -H 'Content-Type: application/json' --data-binary @"$body" "$1" |
		python3 -c 'import base64,json,sys; p=json.loads(base64.b64decode(json.load(sys.stdin)["response"]["patch"])); print([o["value"] for o in p if o["path"].endswith("/image")][0])'
}
got_off=$(patched_image "$url_off")
got_on=$(patched_image "$url_on")
[ "$got_off" = "$reg/lacks-hub/library/busybox:1.36" ] || { echo "run-check.sh: detour-off admitted $got_off" >&2; exit 1; }
[ "$got_on" = "$reg/hub/library/busybox:1.36" ] || { echo "run-check.sh: detour-on admitted $got_on, want the mirror that has it" >&2; exit 1; }

echo "hey -n $N -c $C -m POST -T application/json -D hack/load/body.json ($(wc -c <"$body") bytes), $(nproc) CPUs, $(go version | awk '{print $3}')"
echo "checks off admits $got_off; checks on admits $got_on"
printf '%-8s %10s %8s %8s %10s %10s %10s\n' server 'req/s' 'p50 ms' 'p99 ms' 'CPU µs/req' 'peak RSS MB' 'anon MB'
bench off "$pid_off" "$url_off"
bench on "$pid_on" "$url_on"
echo "checks on/off throughput: $(echo "100 * $(cat "$tmp/on.rps") / $(cat "$tmp/off.rps")" | bc -l | xargs printf '%.0f')%"
echo "registry HEAD requests during the whole run: $(grep -c '"HEAD /v2/' "$tmp/registry.log" || true)"
