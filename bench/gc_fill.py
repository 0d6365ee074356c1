#!/usr/bin/env python3
"""Fills a running registry with COUNT small distinct blobs in REPO: every
even one becomes a layer of an image (manifests of up to 50 layers, tagged),
every odd one is uploaded and unlinked again (DELETE /v2/REPO/blobs/<d>),
so a garbage-collection pass has half of them to remove.

usage: gc_fill.py HOST:PORT REPO COUNT SIZE
"""
import hashlib
import http.client
import json
import sys

LAYERS_PER_IMAGE = 50


def request(conn, method, path, body=None, headers=None, want=(200, 201, 202)):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    if resp.status not in want:
        sys.exit(f"{method} {path}: HTTP {resp.status}")


def upload(conn, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    request(conn, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data,
            {"Content-Type": "application/octet-stream"}, want=(201,))
    return digest


def push_image(conn, repo, tag, layers):
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": upload(conn, repo, config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": d, "size": s} for d, s in layers],
    }).encode()
    request(conn, "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, want=(201,))


def main():
    addr, repo, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conn = http.client.HTTPConnection(addr)
    kept, images, unlinked = [], 0, 0
    for i in range(count):
        data = (i.to_bytes(8, "little") * (size // 8 + 1))[:size]
        digest = upload(conn, repo, data)
        if i % 2:
            request(conn, "DELETE", f"/v2/{repo}/blobs/{digest}", want=(202,))
            unlinked += 1
            continue
        kept.append((digest, size))
        if len(kept) == LAYERS_PER_IMAGE:
            push_image(conn, repo, f"img{images}", kept)
            kept, images = [], images + 1
    if kept:
        push_image(conn, repo, f"img{images}", kept)
        images += 1
    print(f"{count} blobs of {size} bytes: {count - unlinked} in {images} tagged images, "
          f"{unlinked} unlinked (garbage)")


if __name__ == "__main__":
    main()
