#!/usr/bin/env python3
"""Manifest PUT latency against one registry: N sequential PUTs over one
keep-alive connection, each moving tag `latest` between two manifests
(so every PUT is a tag change the admission plugins must judge).
Prints JSON: {"n":..., "median_us":..., "mean_us":..., "p90_us":...}."""
import hashlib, http.client, json, statistics, sys, time

host, port, repo, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
conn = http.client.HTTPConnection(host, port)

def request(method, path, body=b"", headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    location = resp.getheader("Location") or ""
    if location.startswith("http"):
        location = "/" + location.split("/", 3)[3]
    last_location[0] = location
    return resp.status, data

last_location = [""]

manifests = []
for seed in ("a", "b"):
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    status, _ = request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", config,
                        {"Content-Type": "application/octet-stream"})
    if status == 202:  # registry:2 has no single-POST upload: finish with PUT
        location = last_location[0]
        sep = "&" if "?" in location else "?"
        status, _ = request("PUT", f"{location}{sep}digest={digest}", config,
                            {"Content-Type": "application/octet-stream"})
    assert status == 201, status
    manifests.append(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest, "size": len(config)},
        "layers": [],
        "annotations": {"org.opencontainers.image.source": "https://example.com/" + seed},
    }).encode())

headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
for i in range(50):  # warm up
    request("PUT", f"/v2/{repo}/manifests/latest", manifests[i % 2], headers)
samples = []
for i in range(n):
    started = time.perf_counter()
    status, body = request("PUT", f"/v2/{repo}/manifests/latest", manifests[i % 2], headers)
    samples.append((time.perf_counter() - started) * 1e6)
    assert status == 201, (status, body)
samples.sort()
print(json.dumps({"n": n, "median_us": round(statistics.median(samples)),
                  "mean_us": round(statistics.mean(samples)),
                  "p90_us": round(samples[int(0.9 * n)])}))
