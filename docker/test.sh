#!/usr/bin/env bash
# The container scenarios: builds the image, prepares a deployment (docker/prepare.sh) under a
# project name of its own, and runs, each against real containers on a private network:
#   1. compose up: three hospitals finish; each hospital holds the final model; metrics show
#      every round;
#   2. one hospital killed (docker kill) in the middle of a round: the round restarts without it,
#      the federation finishes with two;
#   3. a partition (docker network disconnect) during a round, healed seconds later: the
#      hospital is dropped at the deadline, then rejoins and takes part in later rounds;
#   4. the aggregator SIGKILLed after round 2 and started again on its volume: the same final
#      model, bit for bit, as the uninterrupted run of scenario 1;
#   5. an impostor with hospital-c's name and a certificate from another CA: refused, the
#      others finish;
#   6. the image: its size and its build time (the static binary's, then the image's).
# Each scenario prints what it observed. Every container, network and volume it made is removed
# on exit, failed or not. Needs a Docker engine with Compose (v2 plugin or docker-compose v1),
# the Rust toolchain with the musl target and musl-tools (docker/build.sh), and python3. Without
# an engine it says it skipped and exits 0, unless FEDCARE_REQUIRE_DOCKER=1 (CI sets it).
# FEDCARE_DOCKER_TIMEOUT (default 900 s) bounds the whole run; FEDCARE_DOCKER_KEEP=1 keeps what
# it made (for inspecting a failure); FEDCARE_DOCKER_SCENARIOS="1 4" runs only those (6 always).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
  if [ "${FEDCARE_REQUIRE_DOCKER:-}" = 1 ]; then
    echo "docker scenarios: no Docker engine answers (docker info failed) and FEDCARE_REQUIRE_DOCKER=1" >&2
    exit 1
  fi
  echo "docker scenarios: SKIPPED, no Docker engine answers (set FEDCARE_REQUIRE_DOCKER=1 to fail instead)"
  exit 0
fi
budget="${FEDCARE_DOCKER_TIMEOUT:-900}"
started=$(date +%s)
export FEDCARE_PROJECT="fedcare-test-$$"
export FEDCARE_IMAGE="fedcare-test:$$"
project="$FEDCARE_PROJECT"
work=$(mktemp -d)
if docker compose version >/dev/null 2>&1; then compose_cmd=(docker compose); else compose_cmd=(docker-compose); fi
compose() { "${compose_cmd[@]}" -p "$project" -f docker/compose.yaml --profile impostor "$@"; }

cleanup() {
  local status=$?
  if [ -n "${FEDCARE_DOCKER_KEEP:-}" ]; then
    echo "kept for inspection: FEDCARE_PROJECT=$project; remove with: ${compose_cmd[*]} -p $project -f docker/compose.yaml --profile impostor down -v; FEDCARE_PROJECT=$project docker/prepare.sh --clean"
    exit "$status"
  fi
  compose down -v --remove-orphans -t 2 >/dev/null 2>&1 || true
  docker/prepare.sh --clean >/dev/null 2>&1 || true
  docker image rm -f "$FEDCARE_IMAGE" >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then echo "docker scenarios: FAILED (exit $status)"; fi
  exit "$status"
}
trap cleanup EXIT
# A signal (the caller's timeout) ends the run through the same cleanup.
trap 'exit 143' TERM INT

fail() { echo "FAILED: $*" >&2; exit 1; }
left() { echo $(( budget - ($(date +%s) - started) )); }
# Waits (at most $2 seconds) until a line of the aggregator's log matches $1: it follows the
# log as it is written, so the scenarios act within milliseconds of what they wait for.
wait_log() {
  local pattern="$1" limit="$2"
  [ "$(left)" -gt 0 ] || fail "the run's ${budget} s budget is spent"
  if ! grep -m1 -qE "$pattern" < <(timeout "$limit" docker logs -f "$(id_of aggregator)" 2>&1); then
    fail "no '$pattern' in the aggregator's log within $limit s"
  fi
}
# The id of a service's container.
id_of() { compose ps -a -q "$1"; }
exit_code() { docker inspect -f '{{.State.ExitCode}}' "$(id_of "$1")"; }
wait_exit() {
  local limit=$(( $(date +%s) + $2 ))
  while [ "$(docker inspect -f '{{.State.Running}}' "$(id_of "$1")")" = true ]; do
    [ "$(date +%s)" -lt "$limit" ] || fail "$1 still runs after $2 s"
    sleep 0.5
  done
}
# The sha256 of a file in a (running or stopped) container.
file_sha() { docker cp "$(id_of "$1"):$2" - | tar -xO | sha256sum | cut -c1-16; }
# The digest of the weights of a model file in a container (`fedcare inspect`, run on the
# container's state volume: the file's bytes also hold its metrics and endorsements, which
# differ from run to run).
weights() {
  docker run --rm --network none --volumes-from "$(id_of "$1")" "$FEDCARE_IMAGE" inspect --unendorsed "$2" \
    | awk '/^weights:/ {print $2}'
}
table() { compose logs --no-color aggregator | sed -E 's/^[^|]*\| ?//' | grep -E '^ +[0-9]+ +(setup|train|evaluate)'; }
metrics() {
  python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://127.0.0.1:$FEDCARE_METRICS_PORT/metrics', timeout=5).read().decode())"
}
fresh_state() { compose down -v --remove-orphans -t 2 >/dev/null 2>&1 || true; }

echo "== 6. images"
docker/build.sh "$FEDCARE_IMAGE"
docker history --format '{{.Size}}\t{{.CreatedBy}}' "$FEDCARE_IMAGE" | head -5
FEDCARE_PATIENTS=6000 docker/prepare.sh >/dev/null
export FEDCARE_METRICS_PORT
FEDCARE_METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The compose configuration with more local epochs, so that a round lasts long enough to be
# cut in its middle, and more rounds, so that a hospital cut off has rounds left to rejoin.
export FEDCARE_AGGREGATOR_TOML="$work/aggregator.toml"
rounds=16
sed -e 's/^\[model\]/[training]\nepochs = 100\n\n[model]/' -e "s/^rounds = .*/rounds = $rounds/" \
  docker/aggregator.toml >"$FEDCARE_AGGREGATOR_TOML"
chmod 0644 "$FEDCARE_AGGREGATOR_TOML"; chmod 0755 "$work"
hospitals=(hospital-a hospital-b hospital-c)
reference_weights=""

# Starts a federation of the aggregator, the three hospitals and any extra service named.
start() { echo "== $1"; t=$(date +%s); shift; compose up -d aggregator "${hospitals[@]}" "$@" >/dev/null 2>&1; }
after_round() { wait_log "^ +$1 +train" 240; }
# Waits for the aggregator's verdict and prints its table.
finished() { wait_log '^federation done' 300; table; }
# Each named hospital exited 0.
done_ok() {
  for h in "$@"; do
    wait_exit "$h" 60
    [ "$(exit_code "$h")" = 0 ] || fail "$h exited with $(exit_code "$h")"
  done
}
# Every hospital named holds the aggregator's model.bin, byte for byte.
hold_final_model() {
  local final
  final=$(file_sha aggregator /var/lib/fedcare/model.bin)
  for h in "$@"; do
    [ "$(file_sha "$h" /var/lib/fedcare/model.bin)" = "$final" ] || fail "$h's model.bin is not the aggregator's"
  done
  echo "${*}: each holds the aggregator's model.bin ($final)"
}
took() { echo "$1; took $(( $(date +%s) - t )) s"; fresh_state; }

scenario_1() {
  start "1. compose up: three hospitals"
  finished
  done_ok "${hospitals[@]}"
  hold_final_model "${hospitals[@]}"
  reference_weights=$(weights aggregator /var/lib/fedcare/model.bin)
  local scrape health
  scrape=$(metrics)
  echo "$scrape" | grep -E '^fedcare_(rounds_done|sessions_completed_total|hospitals_(joined|active|dropped_total)|received_bytes_total|sent_bytes_total)[ {]'
  echo "$scrape" | grep -qx "fedcare_rounds_done $rounds" || fail "the metrics do not show $rounds rounds done"
  echo "$scrape" | grep -qx "fedcare_sessions_completed_total{kind=\"train\"} $rounds" \
    || fail "the metrics do not count $rounds training sessions"
  health=$(docker inspect -f '{{.State.Health.Status}}' "$(id_of aggregator)")
  [ "$health" = healthy ] || fail "the aggregator is $health"
  took "weights $reference_weights; aggregator $health"
}

scenario_2() {
  start "2. a hospital killed in the middle of a round"
  after_round 2
  docker kill "$(id_of hospital-c)" >/dev/null
  echo "killed hospital-c after round 2"
  finished
  table | grep -qE '^ +[0-9]+ +train(\*[0-9]+)? +2 ' || fail "no round ran without hospital-c"
  table | grep -qE "^ +$rounds +train +2 " || fail "round $rounds did not end with two hospitals"
  done_ok hospital-a hospital-b
  hold_final_model hospital-a hospital-b
  took "hospital-c's exit code $(exit_code hospital-c); the others finished"
}

scenario_3() {
  start "3. a partition of hospital-b during a round"
  local network dropped rejoined
  network=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$(id_of hospital-b)")
  after_round 2
  docker network disconnect "$network" "$(id_of hospital-b)"
  echo "hospital-b cut off from $network after round 2"
  wait_log 'phase deadline missed: dropping.*hospital-b' 60
  sleep 2
  docker network connect "$network" "$(id_of hospital-b)"
  echo "hospital-b reconnected"
  finished
  # The round it was cut off in restarts without it, or is given up if its decryption had
  # opened (hospitals never decrypt a round twice): either way later rounds have two.
  dropped=$(table | awk '$2 ~ /^train/ && $3 == 2 {print $1; exit}')
  [ -n "$dropped" ] || fail "no round ran without hospital-b"
  rejoined=$(table | awk -v d="$dropped" '$1 > d && $2 ~ /^train/ && $3 == 3 {print $1; exit}')
  [ -n "$rejoined" ] || fail "hospital-b took part in no round after round $dropped"
  done_ok "${hospitals[@]}"
  hold_final_model "${hospitals[@]}"
  took "hospital-b out from round $dropped (restarted or given up without it), took part again from round $rejoined"
}

scenario_4() {
  [ -n "$reference_weights" ] || fail "scenario 4 compares with scenario 1's model: run both"
  start "4. the aggregator SIGKILLed after round 2, started again on its volume"
  after_round 2
  docker kill -s KILL "$(id_of aggregator)" >/dev/null
  echo "aggregator killed after round 2 (exit code $(exit_code aggregator)), started again"
  compose up -d --no-deps aggregator >/dev/null 2>&1
  finished
  done_ok "${hospitals[@]}"
  hold_final_model "${hospitals[@]}"
  local resumed
  resumed=$(weights aggregator /var/lib/fedcare/model.bin)
  [ "$resumed" = "$reference_weights" ] || fail "the resumed weights $resumed differ from the uninterrupted $reference_weights"
  took "resumed weights $resumed = uninterrupted $reference_weights"
}

scenario_5() {
  start "5. an impostor from another CA" impostor
  finished
  local said
  said=$(compose logs --no-color impostor | sed -E 's/^[^|]*\| ?//')
  echo "impostor's log: $(echo "$said" | grep -m1 -iE 'lost the aggregator|error' || echo "$said" | tail -n 1)"
  if echo "$said" | grep -q 'federation done'; then fail "the impostor took part"; fi
  local refused
  refused=$(metrics | grep -E '^fedcare_refusals_total\{reason="tls-handshake"\} [1-9]') \
    || fail "the aggregator's metrics count no refused TLS handshake"
  echo "aggregator: $refused; its log: $(compose logs --no-color aggregator | grep -m1 'refused a connection at the TLS handshake' | sed -E 's/^[^|]*\| ?//')"
  table | grep -qE "^ +$rounds +train +3 " || fail "the three hospitals did not finish"
  done_ok "${hospitals[@]}"
  hold_final_model "${hospitals[@]}"
  if [ -n "$reference_weights" ] && [ "$(weights aggregator /var/lib/fedcare/model.bin)" != "$reference_weights" ]; then
    fail "the federation's weights differ from scenario 1's"
  fi
  took "the impostor never joined; the three hospitals ended with scenario 1's weights"
}

for n in ${FEDCARE_DOCKER_SCENARIOS:-1 2 3 4 5}; do "scenario_$n"; done
echo "docker scenarios: ${FEDCARE_DOCKER_SCENARIOS:-1 2 3 4 5} and 6 passed in $(( $(date +%s) - started )) s"
