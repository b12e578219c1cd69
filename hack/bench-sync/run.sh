#!/usr/bin/env bash
# Sync benchmark: detour sync against regsync and skopeo sync, registry A ->
# registry B on loopback (Debian docker-registry, filesystem storage).
#
#   hack/bench-sync/run.sh            # 3 rounds, all tools
#   ROUNDS=1 TOOLS="detour" hack/bench-sync/run.sh
#
# Fills registry A once with the generated data set (main.go), then per
# round and per tool, in an order that rotates every round: starts a fresh,
# empty registry B, times a cold copy A -> B, checks that every tag arrived
# with its digest, times a no-op resync, stops B and deletes its data.
# Prints one line per run and the medians over the runs that copied every
# tag intact; a failed run is shown, counted and left out of the medians. Everything lives under one temp
# directory, deleted on exit (peak disk use: about 1 GB). Registries are
# stopped by PID.
#
# Environment: ROUNDS (3), TOOLS ("detour regsync skopeo"; also
# "regsync-seq": regsync with its default of one image at a time, and
# "detour-pN": detour with --parallel N), PARALLEL
# (detour --parallel, default: its own default), REGSYNC_PARALLEL (4), SEED
# (1).
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
TOOLS=${TOOLS:-"detour regsync skopeo"}
REGSYNC_PARALLEL=${REGSYNC_PARALLEL:-4}
SEED=${SEED:-1}
REGSYNC_VERSION=v0.11.7

command -v docker-registry >/dev/null || { echo "bench-sync: run hack/ensure-test-deps.sh" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "bench-sync: run hack/ensure-test-deps.sh" >&2; exit 1; }

WORK=$(mktemp -d /tmp/bench-sync.XXXXXX)
REG_PIDS=()
cleanup() {
	for p in "${REG_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_registry DIR PORT: sets REG_PID.
start_registry() {
	mkdir -p "$1"
	cat >"$1/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $1/data
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
EOF
	docker-registry serve "$1/config.yml" >"$1/log" 2>&1 &
	REG_PID=$!
	REG_PIDS+=("$REG_PID")
	for _ in $(seq 200); do
		curl -sf -o /dev/null "http://127.0.0.1:$2/v2/" && return 0
		sleep 0.05
	done
	echo "bench-sync: registry on port $2 did not start:" >&2
	cat "$1/log" >&2
	exit 1
}

stop_registry() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# cpu_seconds PID: user+system CPU of a running process.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat"; }

echo "== building detour, the generator and regsync $REGSYNC_VERSION" >&2
go build -o "$WORK/detour" ./cmd/detour
go build -o "$WORK/gen" ./hack/bench-sync
GOBIN="$WORK/bin" GOFLAGS=-mod=mod go install "github.com/regclient/regclient/cmd/regsync@$REGSYNC_VERSION"

A_PORT=$(freeport)
B_PORT=$(freeport)
A=127.0.0.1:$A_PORT
B=127.0.0.1:$B_PORT
IN=$WORK/in
start_registry "$WORK/a" "$A_PORT"
A_PID=$REG_PID
echo "== generating the data set into $A" >&2
"$WORK/gen" -source "$A" -target "$B" -out "$IN" -seed "$SEED" -regsync-parallel "$REGSYNC_PARALLEL" >&2
du -sh "$WORK/a/data" >&2
# regsync-seq: regsync's own default, one image at a time.
sed 's/^  parallel: .*/  parallel: 0/' "$IN/regsync.yml" >"$IN/regsync-seq.yml"

detour_args=(sync --config "$IN/detour.yaml" --images "$IN/images.txt")
[ -n "${PARALLEL:-}" ] && detour_args+=(--parallel "$PARALLEL")

# tool_cmd TOOL: sets CMD to the tool's copy command. skopeo sync keeps only
# the last path component of a repository: every repository is under bench/.
tool_cmd() {
	case $1 in
	detour) CMD=("$WORK/detour" "${detour_args[@]}") ;;
	detour-p*) CMD=("$WORK/detour" "${detour_args[@]}" --parallel "${1#detour-p}") ;;
	regsync) CMD=("$WORK/bin/regsync" once -c "$IN/regsync.yml") ;;
	regsync-seq) CMD=("$WORK/bin/regsync" once -c "$IN/regsync-seq.yml") ;;
	skopeo) CMD=(skopeo sync --all --src yaml --dest docker --dest-tls-verify=false "$IN/skopeo.yml" "$B/bench") ;;
	esac
}

# timed TOOL LOG: runs the tool; prints wall and CPU (user+system) seconds.
timed() {
	tool_cmd "$1"
	local status=ok
	if ! /usr/bin/time -o "$2.time" -f "%e %U %S" "${CMD[@]}" >"$2" 2>&1; then
		echo "bench-sync: $1 failed; the end of its output:" >&2
		grep -v '^Command exited' "$2" | tail -3 >&2
		status=failed
	fi
	tail -1 "$2.time" | awk -v s="$status" '{printf "%.2f %.2f %s\n", $1, $2+$3, s}'
}

# verify: every tag in B has A's digest (all four manifest types accepted).
verify() {
	local bad=0 ref a b
	local accept=(-H "Accept: application/vnd.docker.distribution.manifest.v2+json"
		-H "Accept: application/vnd.docker.distribution.manifest.list.v2+json"
		-H "Accept: application/vnd.oci.image.manifest.v1+json"
		-H "Accept: application/vnd.oci.image.index.v1+json")
	while read -r ref; do
		ref=${ref#"$A"/}
		a=$(curl -sfI "${accept[@]}" "http://$A/v2/${ref%%:*}/manifests/${ref#*:}" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
		b=$(curl -sfI "${accept[@]}" "http://$B/v2/${ref%%:*}/manifests/${ref#*:}" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}' || true)
		[ "$a" = "$b" ] || bad=$((bad + 1))
	done <"$IN/images.txt"
	[ "$bad" = 0 ] || echo "bench-sync: $1: $bad of $(wc -l <"$IN/images.txt") tags missing or with another digest in B" >&2
	[ "$bad" = 0 ]
}

RESULTS=$WORK/results
FAILS=$WORK/fails
: >"$RESULTS"
: >"$FAILS"
read -r -a tools <<<"$TOOLS"
echo "== $ROUNDS rounds of: ${tools[*]} (machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
printf "%-6s %-12s %8s %8s %8s %8s %9s %8s\n" round tool cold_s tool_cpu A_cpu B_cpu noop_s noop_cpu
for round in $(seq "$ROUNDS"); do
	n=${#tools[@]}
	for i in $(seq 0 $((n - 1))); do
		tool=${tools[$(((i + round - 1) % n))]}
		rm -rf "$WORK/b"
		start_registry "$WORK/b" "$B_PORT"
		B_PID=$REG_PID
		a_before=$(cpu_seconds "$A_PID")
		read -r cold cold_cpu cold_ok < <(timed "$tool" "$WORK/$tool-$round-cold.log")
		b_cpu=$(cpu_seconds "$B_PID")
		a_cpu=$(echo "$(cpu_seconds "$A_PID") - $a_before" | bc -l)
		verify "$tool" || cold_ok=failed
		read -r noop noop_cpu noop_ok < <(timed "$tool" "$WORK/$tool-$round-noop.log")
		stop_registry "$B_PID"
		rm -rf "$WORK/b"
		note=""
		if [ "$cold_ok" = ok ] && [ "$noop_ok" = ok ]; then
			echo "$tool $cold $cold_cpu $b_cpu $noop $noop_cpu $a_cpu" >>"$RESULTS"
		else
			note="FAILED (cold $cold_ok, resync $noop_ok): left out"
			echo "$tool" >>"$FAILS"
		fi
		printf "%-6s %-12s %8s %8s %8.2f %8s %9s %8s  %s\n" "$round" "$tool" "$cold" "$cold_cpu" "$a_cpu" "$b_cpu" "$noop" "$noop_cpu" "$note"
	done
done

median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }
echo
printf "%-12s %6s %14s %14s %14s %14s %14s\n" tool failed "median cold_s" "median tool_cpu" "median B_cpu" "median noop_s" "median A_cpu"
for tool in "${tools[@]}"; do
	printf "%-12s %6s %14s %14s %14s %14s %14s\n" "$tool" "$(grep -cx "$tool" "$FAILS" || true)" \
		"$(awk -v t="$tool" '$1==t{print $2}' "$RESULTS" | median)" \
		"$(awk -v t="$tool" '$1==t{print $3}' "$RESULTS" | median)" \
		"$(awk -v t="$tool" '$1==t{print $4}' "$RESULTS" | median)" \
		"$(awk -v t="$tool" '$1==t{print $5}' "$RESULTS" | median)" \
		"$(awk -v t="$tool" '$1==t{print $7}' "$RESULTS" | median)"
done
stop_registry "$A_PID"
