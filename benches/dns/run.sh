#!/usr/bin/env bash
# dnsperf against one dnsmasq directly, through svcproxy and through
# nginx's stream module (`listen ... udp`, `proxy_responses 1`), in one run:
# the proxy pinned to core 1, dnsperf and dnsmasq to core 0. Prints
# queries/s, lost queries and the proxy's CPU per query (utime + stime of
# its process over the run). Needs dnsperf, dnsmasq (dnsmasq-base) and
# nginx with its stream module; loopback addresses only.
#
#   cargo build --release && bash benches/dns/run.sh [SECONDS] [REPS]
set -euo pipefail

secs=${1:-10}
reps=${2:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
svcproxy=${SVCPROXY:-${CARGO_TARGET_DIR:-$root/target}/release/svcproxy}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

pod=127.77.0.1 svc=127.77.1.1 ngx=127.77.2.1
printf 'a.svc.test A\n' > "$work/queries"

taskset -c 0 dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --conf-file=/dev/null --pid-file= --user= --port=5353 --listen-address=$pod \
    --address=/svc.test/127.1.2.1 --cache-size=0 2>/dev/null &
pids+=($!)

mkdir -p "$work/manifests"
cat > "$work/manifests/dns.yaml" <<YAML
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  annotations: {svcproxy.io/udp-responses: "1"}
spec:
  clusterIP: $svc
  ports: [{name: dns, port: 53, targetPort: 5353, protocol: UDP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: kube-dns}
subsets:
- addresses: [{ip: $pod}]
  ports: [{name: dns, port: 5353, protocol: UDP}]
YAML
RUST_LOG=warn taskset -c 1 "$svcproxy" run --manifests "$work/manifests" \
    --metrics-bind-address 127.77.9.9:0 --healthz-bind-address 127.77.9.9:0 \
    > "$work/svcproxy.log" 2>&1 &
pids+=($!)
svcproxy_pid=$!

cat > "$work/nginx.conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log stderr error;
events { worker_connections 20000; }
stream {
    server {
        listen $ngx:53 udp;
        proxy_pass $pod:5353;
        proxy_responses 1;
        proxy_timeout 30s;
    }
}
NGINX
taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" 2>"$work/nginx.log" &
pids+=($!)
sleep 1
nginx_worker=$(pgrep -P "${pids[-1]}" | head -1)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # run NAME IP PORT PID|-
    local name=$1 ip=$2 port=$3 pid=$4 before=0 after=0
    dig @"$ip" -p "$port" a.svc.test +short +tries=3 +time=1 >/dev/null
    [[ $pid != - ]] && before=$(cpu_ticks "$pid")
    local out
    out=$(taskset -c 0 dnsperf -s "$ip" -p "$port" -d "$work/queries" -l "$secs" -c 16 -q 200 2>&1)
    [[ $pid != - ]] && after=$(cpu_ticks "$pid")
    local done lost qps
    done=$(awk '/Queries completed:/ {print $3}' <<<"$out")
    lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
    qps=$(awk '/Queries per second:/ {print $4}' <<<"$out")
    local us=-
    [[ $pid != - ]] && us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$done" \
        'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    printf '%-10s %12s q/s  lost %-8s  proxy CPU/query %s us\n' "$name" "$qps" "$lost" "$us"
}

for rep in $(seq "$reps"); do
    echo "== rep $rep"
    run direct $pod 5353 -
    run svcproxy $svc 53 "$svcproxy_pid"
    run nginx $ngx 53 "$nginx_worker"
done
