#!/usr/bin/env python3
"""Writes a deterministic OCI image layout for the benchmark.

usage: make_layout.py DIR [LAYERS] [LAYER_BYTES] [SEED]

The image has LAYERS (default 20) uncompressed tar layers of exactly
LAYER_BYTES (default 5 MiB) each, every one holding a single file of seeded
pseudo-random (incompressible) bytes, plus an OCI config and manifest, tagged
`v1` in index.json. Same arguments, same bytes, same digests, every run;
another SEED (default none) gives an image sharing no layer with it.
"""
import hashlib
import io
import json
import os
import random
import sys
import tarfile

MIB = 1024 * 1024


def write_blob(root, data):
    hexd = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", hexd)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + hexd


def layer_tar(index, total, seed=""):
    # One member: 512-byte header + data + two 512-byte end blocks == total
    # (total must be a multiple of tarfile's 10240-byte record, as 5 MiB is).
    payload_len = total - 3 * 512
    assert payload_len > 0 and payload_len % 512 == 0 and total % tarfile.RECORDSIZE == 0
    payload = random.Random(f"berth-bench-layer-{index}{seed}").randbytes(payload_len)
    info = tarfile.TarInfo(name=f"layer{index:02d}/data.bin")
    info.size = payload_len
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(payload))
    data = buf.getvalue()
    assert len(data) == total, (len(data), total)
    return data


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    layers = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    layer_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 5 * MIB
    seed = f"-{sys.argv[4]}" if len(sys.argv) > 4 else ""
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    descs = []
    for i in range(layers):
        data = layer_tar(i, layer_bytes, seed)
        digest = write_blob(root, data)
        descs.append({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": len(data),
        })

    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"berth bench layer {i}"}
                    for i in range(layers)],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = write_blob(root, config_bytes)

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": descs,
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = write_blob(root, manifest_bytes)

    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    }
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f, sort_keys=True, separators=(",", ":"))
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(manifest_digest)


if __name__ == "__main__":
    main()
