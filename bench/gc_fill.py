#!/usr/bin/env python3
"""Fills a running registry with COUNT small distinct blobs in REPO, then
unlinks every second one (DELETE /v2/REPO/blobs/<digest>), so a garbage
collection pass has half of them to remove.

usage: gc_fill.py HOST:PORT REPO COUNT SIZE
"""
import hashlib
import http.client
import sys


def main():
    addr, repo, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conn = http.client.HTTPConnection(addr)
    unlinked = 0
    for i in range(count):
        data = (i.to_bytes(8, "little") * (size // 8 + 1))[:size]
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        conn.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data,
                     headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            sys.exit(f"upload {i}: HTTP {resp.status}")
        if i % 2:
            conn.request("DELETE", f"/v2/{repo}/blobs/{digest}")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 202:
                sys.exit(f"unlink {i}: HTTP {resp.status}")
            unlinked += 1
    print(f"{count} blobs of {size} bytes, {unlinked} unlinked")


if __name__ == "__main__":
    main()
