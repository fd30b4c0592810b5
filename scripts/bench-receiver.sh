# The receiver's rows of scripts/bench (sourced by it: uses its $work, $bin, $smoke, row, gross,
# free_port, wait_file, ms_since, cpu_ticks and pids).
#
# - uploads of ~2 KB bundles over TLS with signed receipts, from the fleet simulator (real,
#   distinct compliance bundles from enrolled installs, every receipt's signature checked), on
#   the embedded SQLite + local files and on PostgreSQL + Garage (S3); beside nginx accepting the
#   same kind of POST body over TLS with the same certificate, each body written to a file
#   (client_body_in_file_only), under wrk with a Lua script;
# - peak RSS of the receiver while it ingests 256 MiB bundles, two at once, beside nginx's;
# - `fleet --overdue --json` on 100,000 seeded installs on PostgreSQL (best of 5).
# PostgreSQL (Debian's) and Garage (scripts/deps) run as throwaway instances under $work.

if $smoke; then
  fleet_installs=400 big_mb=32 seeded=10000
else
  fleet_installs=6000 big_mb=256 seeded=100000
fi
hz=$(getconf CLK_TCK)

# ---- PostgreSQL and Garage, throwaway --------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "no PostgreSQL (scripts/deps installs it)" >&2; exit 1; }
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/callhome-bench-pg.XXXXXX")
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown nobody "$pg_dir"
pg_port=$(free_port)
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U callhome --no-sync >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w start \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" >/dev/null
pg_url="postgres://callhome@127.0.0.1:$pg_port/postgres"
pg_stop() { as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"; }
trap 'pg_stop; cleanup' EXIT

garage=${GARAGE_BIN:-$(command -v garage || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage")}
garage_env=()
if [ -x "$garage" ]; then
  g=$work/garage; mkdir -p "$g"
  g_rpc=$(free_port) g_s3=$(free_port) g_admin=$(free_port)
  cat >"$g/garage.toml" <<GARAGE
metadata_dir = "$g/meta"
data_dir = "$g/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$g_rpc"
rpc_public_addr = "127.0.0.1:$g_rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$g_s3"
[admin]
api_bind_addr = "127.0.0.1:$g_admin"
GARAGE
  RUST_LOG=garage=warn "$garage" -c "$g/garage.toml" server >"$g/log" 2>&1 &
  pids+=("$!")
  gcli() { "$garage" -c "$g/garage.toml" "$@"; }
  i=0; until node=$(gcli node id -q 2>/dev/null | cut -c1-16) && [ ${#node} -eq 16 ]; do
    i=$((i+1)); [ $i -gt 600 ] && { echo "garage did not start: $(cat "$g/log")" >&2; exit 1; }; sleep 0.05
  done
  # `node id` reads the key from disk; the layout needs the node's RPC, which may still be starting.
  i=0; until gcli layout assign -z dc1 -c 1G "$node" >/dev/null 2>&1; do
    i=$((i+1)); [ $i -gt 600 ] && { echo "garage's RPC did not answer: $(cat "$g/log")" >&2; exit 1; }; sleep 0.05
  done
  gcli layout apply --version 1 >/dev/null
  i=0; until gcli bucket create bench >/dev/null 2>&1; do
    i=$((i+1)); [ $i -gt 600 ] && { echo "garage took no layout" >&2; exit 1; }; sleep 0.05
  done
  gcli key create bench-key >"$g/key"
  gcli bucket allow --read --write --owner bench --key bench-key >/dev/null
  garage_env=(AWS_ENDPOINT_URL="http://127.0.0.1:$g_s3" AWS_REGION=garage AWS_ALLOW_HTTP=true
    AWS_ACCESS_KEY_ID="$(awk '/Key ID:/{print $3}' "$g/key")"
    AWS_SECRET_ACCESS_KEY="$(awk '/Secret key:/{print $3}' "$g/key")")
fi

# ---- uploads of 2 KB bundles -----------------------------------------------------------------
# serve_receiver NAME STORE [ARGS…]: starts a receiver (its port in $rx_port, pid in $rx)
serve_receiver() {
  local name=$1 store=$2; shift 2
  rx_port=$(free_port)
  env "${garage_env[@]}" "$bin/callhome-receiver" serve --listen "127.0.0.1:$rx_port" --store "$store" \
    --tls-self-signed --ca-out "$work/$name-ca.pem" --signing-key "$work/$name-key.pem" \
    --public-key-out "$work/$name-pub.pem" --reconcile-days 0 "$@" \
    >"$work/$name.out" 2>"$work/$name.log" &
  rx=$!; pids+=("$rx")
  wait_file "$work/$name-ca.pem"
  until curl -s -o /dev/null --cacert "$work/$name-ca.pem" "https://127.0.0.1:$rx_port/healthz"; do :; done
}
# fleet_row NAME STORE [INDEX ARGS…]: the simulator against it; prints "N/s, p99 X ms, …"
fleet_row() {
  local name=$1 store=$2; shift 2
  local c0 c1
  c0=$(cpu_ticks "$rx")
  /usr/bin/time -f '%U %S' -o "$work/$name-sim.time" env "${garage_env[@]}" "$bin/callhome-receiver" simulate \
    --url "https://127.0.0.1:$rx_port" --ca "$work/$name-ca.pem" --public-key "$work/$name-pub.pem" \
    --store "$store" "$@" --installs "$fleet_installs" --customers 10 --concurrency 48 --json \
    >"$work/$name-sim.json" 2>"$work/$name-sim.log" || { cat "$work/$name-sim.log" >&2; exit 1; }
  c1=$(cpu_ticks "$rx")
  python3 - "$work/$name-sim.json" "$work/$name-sim.time" $((c1 - c0)) "$hz" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
u, k = (float(x) for x in open(sys.argv[2]).read().split())
rx = int(sys.argv[3]) / int(sys.argv[4])
cpu = lambda t: 100 * t / s["seconds"]
print(f'{s["uploads_per_s"]:.0f}/s, p99 {s["p99_ms"]:.1f} ms '
      f'(CPU: receiver {cpu(rx):.0f} %, simulator {cpu(u + k):.0f} %)')
PY
}
rps_of() { echo "$1" | awk -F/ '{print $1}'; }

serve_receiver fleet-local "$work/fleet-local" --max-uploads 128
local_row=$(fleet_row fleet-local "$work/fleet-local")
cp "$work/fleet-local/tls/server.pem" "$work/fleet-local/tls/server-key.pem" "$work/"
kill "$rx"; wait "$rx" 2>/dev/null || true

if [ ${#garage_env[@]} -gt 0 ]; then
  serve_receiver fleet-s3 "s3://bench/fleet" --index "$pg_url" --spool "$work/fleet-s3-spool" --max-uploads 128
  s3_row=$(fleet_row fleet-s3 "s3://bench/fleet" --index "$pg_url")
  kill "$rx"; wait "$rx" 2>/dev/null || true
else
  s3_row="(not run: no garage; scripts/deps installs it)"
fi

# nginx: the same kind of body, over TLS with the receiver's certificate, each written to a file.
ng=$work/nginx-post; mkdir -p "$ng/bodies" "$ng/logs"
ngp_port=$(free_port); ngu_port=$(free_port)
cat >"$ng/nginx.conf" <<NGINX
daemon off;
$([ "$(id -u)" -eq 0 ] && echo "user root;")
worker_processes 2;
pid $ng/nginx.pid;
error_log $ng/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $ng/bodies;
  client_max_body_size 300m;
  client_body_in_file_only on;
  server {
    listen 127.0.0.1:$ngp_port ssl;
    ssl_certificate $work/server.pem;
    ssl_certificate_key $work/server-key.pem;
    location / {
      proxy_pass http://127.0.0.1:$ngu_port;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }
  }
  server {
    listen 127.0.0.1:$ngu_port;
    location / { default_type application/json; return 201 '{}'; }
  }
}
NGINX
nginx -c "$ng/nginx.conf" -p "$ng" 2>"$ng/logs/start.log" &
ngx=$!; pids+=("$ngx")
until curl -sk -o /dev/null "https://127.0.0.1:$ngp_port/"; do :; done
python3 - "$work/body.zip" <<'PY'
import io, json, sys, zipfile, hashlib, os
# A body of the simulator's size: a compliance-like zip of about 2 KB.
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    for name in ("system.json", "deployment.json", "licenses.json", "usage.json", "manifest.json"):
        z.writestr(name, json.dumps({"name": name, "pad": os.urandom(180).hex()}))
open(sys.argv[1], "wb").write(buf.getvalue())
PY
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$work/body.zip", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/zip"
LUA
wrk -t2 -c48 -d"${wrk_s}s" --latency -s "$work/post.lua" "https://127.0.0.1:$ngp_port/v1/bundles" >"$work/wrk-post.out" 2>&1
ng_row=$(awk '/Requests\/sec/{r=$2} /^ +99%/{p99=$2} END{printf "%d/s, p99 %s", r, p99}' "$work/wrk-post.out")
ng_files=$(find "$ng/bodies" -type f | wc -l)
body_size=$(stat -c %s "$work/body.zip")
row "uploads of ~2 KB bundles, SQLite+files" "$local_row" "nginx to disk ($body_size B, wrk): $ng_row, $ng_files files"
row "uploads of ~2 KB bundles, PG+Garage" "$s3_row" "(goals: 2,000/s and 1,000/s)"
$smoke && gross "$([ "$(rps_of "$local_row")" -ge 50 ] && echo 1)" "SQLite+files uploads at $(rps_of "$local_row")/s"
if $smoke && [ ${#garage_env[@]} -gt 0 ]; then
  gross "$([ "$(rps_of "$s3_row")" -ge 20 ] && echo 1)" "PG+Garage uploads at $(rps_of "$s3_row")/s"
fi

# ---- peak RSS ingesting large bundles --------------------------------------------------------
head -c $(( (big_mb - 1) * 1048576 )) /dev/urandom >"$work/big.bin"
mkdir -p "$work/big"
"$bin/examples/bench_tool" bundle "$work/big.bin" "$work/big" >"$work/big.path"
rm -f "$work/big.bin"
big=$(cat "$work/big.path")
big_sha=$(sha256sum "$big" | cut -d' ' -f1)
serve_receiver fleet-big "$work/fleet-big" --open-enrolment
for i in 1 2; do
  curl -s -o /dev/null --cacert "$work/fleet-big-ca.pem" -H "content-type: application/zip" \
    -H "idempotency-key: $big_sha" -H "x-callhome-program: telemetry" \
    --data-binary @"$big" "https://127.0.0.1:$rx_port/v1/bundles" &
done
wait_curl() { for j in $(jobs -p); do case " ${pids[*]} " in *" $j "*) ;; *) wait "$j" || true ;; esac; done; }
wait_curl
rx_hwm=$(awk '/^VmHWM/{print $2}' "/proc/$rx/status")
stored_big=$(find "$work/fleet-big/bundles" -name '*.zip' | wc -l)
kill "$rx"; wait "$rx" 2>/dev/null || true
ng_pids=$(pgrep -P "$ngx" || true)
for i in 1 2; do
  curl -sk -o /dev/null -H "content-type: application/zip" --data-binary @"$big" \
    "https://127.0.0.1:$ngp_port/v1/bundles" &
done
wait_curl
ng_hwm=0; for p in $ngx $ng_pids; do h=$(awk '/^VmHWM/{print $2}' "/proc/$p/status"); ng_hwm=$((ng_hwm + h)); done
kill "$ngx"; wait "$ngx" 2>/dev/null || true
row "peak RSS, 2 × ${big_mb} MiB bundles at once" "$((rx_hwm / 1024)) MB ($stored_big stored)" "nginx to disk: $((ng_hwm / 1024)) MB (budget 64 MB)"
$smoke && gross "$([ "$rx_hwm" -lt 655360 ] && [ "$stored_big" -eq 1 ] && echo 1)" "peak RSS ${rx_hwm} kB ingesting ${big_mb} MiB bundles ($stored_big stored)"

# ---- fleet --overdue on PostgreSQL -----------------------------------------------------------
"$bin/callhome-receiver" fleet seed --customer Bench --installs "$seeded" --spread-days 120 \
  --index "$pg_url" --store "$work/fleet-seed" >/dev/null
best=999999
for i in 1 2 3 4 5; do
  t0=$(date +%s%N)
  "$bin/callhome-receiver" fleet --overdue --json --index "$pg_url" --store "$work/fleet-seed" >"$work/overdue.json"
  ms=$(ms_since "$t0"); [ "$ms" -lt "$best" ] && best=$ms
done
overdue=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$work/overdue.json")
row "fleet --overdue --json, $seeded on PG" "$best ms ($overdue listed, best of 5)" "(budget 200 ms)"
$smoke && gross "$([ "$best" -lt 2000 ] && echo 1)" "fleet --overdue took ${best} ms"
pg_stop
