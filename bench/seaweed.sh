# A local S3 server for the benchmarks (SeaweedFS from PyPI, in
# SEAWEED_VENV), sourced by bench/run.sh and bench/hosts.sh. Needs WORK,
# SRV_PIDS (servers to stop on exit), free_port, log and die, and the
# S3_KEY, S3_SECRET, S3_BUCKET and S3_REGION it serves.

# start_seaweed: one local S3 server for the whole run; sets S3_ENDPOINT.
start_seaweed() {
    local dir="$WORK/seaweed" p=() i code
    mkdir -p "$dir/data"
    for i in 0 1 2 3 4 5 6 7; do p[i]=$(free_port); done
    printf '{"identities":[{"name":"admin","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","List","Tagging","Write"]}]}' \
        "$S3_KEY" "$S3_SECRET" >"$dir/s3.json"
    "$SEAWEED_VENV/bin/weed" server -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
        -filer -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -s3 -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" \
        -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -master.volumeSizeLimitMB=1024 -volume.max=64 \
        -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" -s3.config="$dir/s3.json" \
        >"$dir/log" 2>&1 &
    SRV_PIDS[$!]=1
    S3_ENDPOINT="http://127.0.0.1:${p[6]}"
    for ((i = 0; i < 600; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 --aws-sigv4 "aws:amz:$S3_REGION:s3" \
            --user "$S3_KEY:$S3_SECRET" -X PUT "$S3_ENDPOINT/$S3_BUCKET" || true)
        [[ $code == 200 || $code == 409 ]] && { log "SeaweedFS S3 at $S3_ENDPOINT"; return 0; }
        sleep 0.2
    done
    tail -20 "$dir/log" >&2
    die "SeaweedFS did not come up"
}

# registry_s3_storage ENDPOINT ROOTDIRECTORY: the lines under registry:2's
# `storage:` for this bucket at ENDPOINT, redirects off (both servers stream
# the bytes themselves, Berth's default).
registry_s3_storage() {
    cat <<EOF
  s3:
    accesskey: $S3_KEY
    secretkey: $S3_SECRET
    region: $S3_REGION
    regionendpoint: $1
    bucket: $S3_BUCKET
    rootdirectory: $2
    secure: false
    v4auth: true
    forcepathstyle: true
  redirect:
    disable: true
EOF
}
