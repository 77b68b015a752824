#!/usr/bin/env bash
# Makes what the compose deployment mounts, with the fedcare image alone (no other image, no
# registry), the way separate sites would (README, "Deploy on separate machines"):
#   - the consortium's CA (volume PROJECT-ca, used only here) and its public certificate
#     (docker/.run/PROJECT/ca.pem, mounted in every container);
#   - the aggregator's own key and request (`fedcare keygen --name aggregator`, the name the
#     hospitals connect to), signed by the CA as a server certificate (`fedcare sign
#     --aggregator`), in PROJECT-aggregator-identity: the CA's key is never in it;
#   - at each hospital, its own key and request (`fedcare keygen`, in
#     PROJECT-hospital-X-identity), signed by the CA (`fedcare sign`); the roster of the three
#     key fingerprints goes into each hospital's hospital.toml (docker/.run/PROJECT/);
#   - each hospital's synthetic cohort in the Diabetes-130 schema (`fedcare synth`, its own seed,
#     in PROJECT-hospital-X-data);
#   - an impostor's identity for hospital-c from another CA (PROJECT-impostor-identity).
# Usage: docker/prepare.sh [--clean]   (--clean removes them all instead; FEDCARE_PROJECT
# (default fedcare) prefixes every volume, FEDCARE_IMAGE (default fedcare:latest) is the image,
# FEDCARE_PATIENTS (default 1500) sizes each hospital's cohort.) Keys never leave the volumes.
set -euo pipefail
cd "$(dirname "$0")"
project="${FEDCARE_PROJECT:-fedcare}"
image="${FEDCARE_IMAGE:-fedcare:latest}"
patients="${FEDCARE_PATIENTS:-1500}"
hospitals=(hospital-a hospital-b hospital-c)
run_dir=".run/$project"
volumes=(ca aggregator-identity impostor-identity)
for h in "${hospitals[@]}"; do volumes+=("$h-identity" "$h-data"); done

if [ "${1:-}" = "--clean" ]; then
  for v in "${volumes[@]}"; do docker volume rm -f "$project-$v" >/dev/null; done
  rm -rf "$run_dir"
  echo "removed the volumes and configurations of $project"
  exit 0
fi
for v in "${volumes[@]}"; do
  if docker volume inspect "$project-$v" >/dev/null 2>&1; then
    echo "volume $project-$v exists: run docker/prepare.sh --clean first (it deletes the keys)" >&2
    exit 1
  fi
done

# One fedcare command in a throwaway container, without a network.
fedcare() { docker run --rm --network none "$@"; }

mkdir -p "$run_dir"
fedcare -v "$project-ca:/etc/fedcare" "$image" certs --out /etc/fedcare >/dev/null
# The CA's certificate is public: every container gets it from the host.
helper=$(docker create --network none -v "$project-ca:/etc/fedcare" "$image")
docker cp "$helper:/etc/fedcare/ca.pem" "$run_dir/ca.pem"
docker rm "$helper" >/dev/null
chmod 0644 "$run_dir/ca.pem"
fedcare -v "$project-aggregator-identity:/etc/fedcare" "$image" keygen --name aggregator --out /etc/fedcare >/dev/null
fedcare -v "$project-ca:/ca:ro" -v "$project-aggregator-identity:/etc/fedcare" "$image" \
  sign --aggregator --ca /ca --request /etc/fedcare/aggregator.csr >/dev/null
echo "aggregator: its own key, a server certificate for the name aggregator"

roster=""
for i in "${!hospitals[@]}"; do
  h="${hospitals[$i]}"
  line=$(fedcare -v "$project-$h-identity:/etc/fedcare" "$image" keygen --name "$h" --out /etc/fedcare | tail -n 1)
  roster+="$line"$'\n'
  fedcare -v "$project-ca:/ca:ro" -v "$project-$h-identity:/etc/fedcare" "$image" \
    sign --ca /ca --request "/etc/fedcare/$h.csr" >/dev/null
  fedcare -v "$project-$h-data:/data" "$image" synth --hospitals 1 --patients "$patients" --seed "$((i + 1))" --out /data >/dev/null
  echo "$h: key, certificate and $patients synthetic patients"
done

hospital_toml() {
  local name="$1"
  cat <<TOML
# $name's node (written by docker/prepare.sh; compose.yaml mounts it read-only). The roster is
# the three hospitals' key fingerprints, as \`fedcare keygen\` printed them.
federation_id = "fedcare-compose"
aggregator = "https://aggregator:50051"
server_name = "aggregator"
trainer = "cpu"
schema = "diabetes130"
state_dir = "/var/lib/fedcare"

[consortium]
min_hospitals = 2

[consortium.members]
$roster
[tls]
ca = "/config/ca.pem"
cert = "/etc/fedcare/$name.pem"
key = "/etc/fedcare/$name.key"
TOML
}
for h in "${hospitals[@]}"; do hospital_toml "$h" >"$run_dir/$h.toml"; done

# The impostor: hospital-c's name and roster, a key and certificate from a CA of its own.
fedcare -v "$project-impostor-identity:/etc/fedcare" "$image" certs --out /etc/fedcare --hospitals hospital-c >/dev/null
hospital_toml hospital-c >"$run_dir/impostor.toml"
echo "impostor: hospital-c's name with a certificate from another CA"
echo "ready: docker compose -p $project -f docker/compose.yaml up"
