#!/usr/bin/env bash
# What a Prometheus scrape costs the traffic: 5,000 Services of 3 endpoints
# each, a connection opened, echoed through and closed every 2 ms, first
# with nobody scraping, then while `/metrics` (20 MB of text at this size)
# is scraped back to back. Prints each run's connection latency
# (p50/p99/p99.9/max). Loopback addresses only; needs python3 and curl.
#
#   cargo build --release && bash benches/scrape/run.sh [SECONDS]
set -euo pipefail

secs=${1:-8}
root=$(cd "$(dirname "$0")/../.." && pwd)
svcproxy=${SVCPROXY:-${CARGO_TARGET_DIR:-$root/target}/release/svcproxy}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/manifests"
python3 "$root/benches/scrape/probe.py" manifests 5000 > "$work/manifests/all.yaml"
"$svcproxy" run --manifests "$work/manifests" --metrics-bind-address 127.0.0.1:19100 \
    --healthz-bind-address 127.0.0.1:19101 > "$work/run.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    grep -q "routing table published" "$work/run.log" && break
    sleep 0.1
done
grep -q "routing table published" "$work/run.log" || { echo "svcproxy did not start"; exit 1; }
echo "idle:     $(python3 "$root/benches/scrape/probe.py" probe "$secs" none)"
echo "scraped:  $(python3 "$root/benches/scrape/probe.py" probe "$secs" http://127.0.0.1:19100/metrics)"
