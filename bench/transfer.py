#!/usr/bin/env python3
"""berth import/export vs skopeo through registry:2 (and through Berth's
server), with `cp` of the same bytes on the same disk as the physical
reference, side by side in one run. Run as root on Debian 12:

    python3 bench/transfer.py            (or: bash bench/transfer.sh)

Knobs (environment): RUNS=5 BERTH=target/release/berth
  BIG_BYTES=1073741824 (the single-layer image) LAYERS=20 LAYER_BYTES=5242880
  BENCH_TMPDIR=/var/tmp (archives, stores; one disk for everything)
  OUT=bench/results/transfer.md

For each image (a 20-layer image and a 1 GiB single-layer image, as plain
OCI archives) it measures, per run, on fresh stores:
  import: `berth import` into an empty store; `skopeo copy oci-archive:...
          docker://` into registry:2 and into `berth serve`; `cp` of the
          archive then `sync` of the copy (Berth's store makes each blob
          durable before it is visible, so the reference does too).
  export: `berth export -o x.tar`; `skopeo copy docker://registry:2/...
          oci-archive:` ; `cp` + `sync` again.
Reported: median seconds, MB/s and the ratios berth/skopeo-registry:2 and
berth/cp (speed ratios: > 1 is faster), plus berth's peak RSS.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
BERTH = os.environ.get("BERTH", os.path.join(REPO_DIR, "target/release/berth"))
RUNS = int(os.environ.get("RUNS", "5"))
BIG_BYTES = int(os.environ.get("BIG_BYTES", str(1 << 30)))
LAYERS = int(os.environ.get("LAYERS", "20"))
LAYER_BYTES = int(os.environ.get("LAYER_BYTES", str(5 << 20)))
TMP = os.environ.get("BENCH_TMPDIR", "/var/tmp")
OUT = os.environ.get("OUT", os.path.join(BENCH_DIR, "results/transfer.md"))


def log(msg):
    print(f"[transfer-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def install_missing():
    need = []
    if not os.path.exists("/usr/bin/docker-registry"):
        need.append("docker-registry")
    if not shutil.which("skopeo"):
        need.append("skopeo")
    if need:
        log(f"installing {' '.join(need)}")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *need], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not os.access(BERTH, os.X_OK):
        log("building berth (cargo build --release -p berth)")
        subprocess.run(["cargo", "build", "--release", "-p", "berth"], cwd=REPO_DIR, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    """Runs cmd; returns (seconds, peak RSS in KiB of the process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return took, usage.ru_maxrss


class Server:
    def __init__(self, kind, root):
        self.port = free_port()
        self.root = root
        os.makedirs(root, exist_ok=True)
        logf = open(os.path.join(root, "..", f"{kind}-{self.port}.log"), "w")
        if kind == "registry2":
            cfg = os.path.join(root, "..", f"config-{self.port}.yml")
            with open(cfg, "w") as f:
                f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{self.port}
""")
            cmd = ["/usr/bin/docker-registry", "serve", cfg]
        else:
            cmd = [BERTH, "serve", "--root", root, "--addr", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf,
                                     env={**os.environ, "BERTH_LOG_LEVEL": "warn"})
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
                return
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{kind} exited at start")
                time.sleep(0.1)
        raise RuntimeError(f"{kind} did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def make_single_layer_layout(layout, total):
    """A one-layer image whose layer (a tar of one file of seeded random
    bytes, `total` bytes long) is written and hashed in 1 MiB pieces:
    make_layout.py builds each layer in memory, which Python cannot do for
    1 GiB."""
    import hashlib
    import random
    import tarfile
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    payload = total - 3 * 512
    assert payload > 0 and payload % 512 == 0
    info = tarfile.TarInfo(name="big/data.bin")
    info.size, info.mtime, info.mode = payload, 0, 0o644
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    rng = random.Random("berth-bench-big")
    digest = hashlib.sha256()
    tmp = os.path.join(blobs, "layer.part")
    with open(tmp, "wb") as f:
        def out(chunk):
            digest.update(chunk)
            f.write(chunk)
        out(header)
        left = payload
        while left:
            n = min(left, 1 << 20)
            out(rng.randbytes(n))
            left -= n
        out(bytes(1024))
    layer = "sha256:" + digest.hexdigest()
    os.rename(tmp, os.path.join(blobs, digest.hexdigest()))

    def blob(doc):
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        hexd = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, hexd), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + hexd, "size": len(data)}
    config = blob({"architecture": "amd64", "os": "linux",
                   "rootfs": {"type": "layers", "diff_ids": [layer]}})
    manifest = blob({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": total}],
    })
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)


def make_archive(name, layers, layer_bytes):
    """A plain OCI archive (tar of a layout) of the image; cached."""
    archive = os.path.join(TMP, "berth-transfer-bench", f"{name}.tar")
    if os.path.exists(archive):
        return archive
    os.makedirs(os.path.dirname(archive), exist_ok=True)
    layout = archive + ".layout"
    shutil.rmtree(layout, ignore_errors=True)
    log(f"making {name}: {layers} x {layer_bytes} bytes")
    if layers == 1:
        make_single_layer_layout(layout, layer_bytes)
    else:
        subprocess.run([sys.executable, os.path.join(BENCH_DIR, "make_layout.py"), layout,
                        str(layers), str(layer_bytes)], check=True)
    # make_layout.py tags the image `v1`; name it `bench/<name>:v1`, the
    # repository:tag form `berth import` reads and skopeo picks.
    index_path = os.path.join(layout, "index.json")
    with open(index_path) as f:
        index = json.load(f)
    for m in index["manifests"]:
        m.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = f"bench/{name}:v1"
    with open(index_path, "w") as f:
        json.dump(index, f)
    subprocess.run(["tar", "-C", layout, "-cf", archive + ".part", "."], check=True)
    os.rename(archive + ".part", archive)
    shutil.rmtree(layout)
    return archive


def cp_sync(src, dst):
    def both():
        shutil.copyfile(src, dst)  # copy_file_range where the kernel can
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    start = time.perf_counter()
    both()
    return time.perf_counter() - start


def drop(path):
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path) and os.path.isfile(path):
        os.remove(path)


def measure(name, archive, size, work):
    ref = f"bench/{name}:v1"
    results = {k: [] for k in ["import_berth", "import_skopeo_r2", "import_skopeo_berth",
                               "import_cp", "export_berth", "export_skopeo_r2", "export_cp"]}
    rss = {"import": 0, "export": 0}
    for i in range(RUNS):
        log(f"{name}: run {i + 1}/{RUNS}")
        run_dir = tempfile.mkdtemp(dir=work)
        store = os.path.join(run_dir, "berth-store")
        # cp right before berth, on the same warm cache and a synced disk:
        # how fast the disk takes the same bytes just now.
        subprocess.run(["sync"], check=True)
        results["import_cp"].append(cp_sync(archive, os.path.join(run_dir, "copy.tar")))
        os.remove(os.path.join(run_dir, "copy.tar"))
        subprocess.run(["sync"], check=True)
        took, peak = run([BERTH, "import", "--quiet", "--root", store, archive])
        results["import_berth"].append(took)
        rss["import"] = max(rss["import"], peak)

        r2 = Server("registry2", os.path.join(run_dir, "r2"))
        subprocess.run(["sync"], check=True)
        took, _ = run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                       f"oci-archive:{archive}:{ref}",
                       f"docker://127.0.0.1:{r2.port}/{ref}"])
        results["import_skopeo_r2"].append(took)

        bs = Server("berth", os.path.join(run_dir, "berth-served"))
        subprocess.run(["sync"], check=True)
        took, _ = run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                       f"oci-archive:{archive}:{ref}",
                       f"docker://127.0.0.1:{bs.port}/{ref}"])
        results["import_skopeo_berth"].append(took)
        bs.stop()

        out = os.path.join(run_dir, "export.tar")
        # Export's reference: copying the store's blob files out.
        subprocess.run(["sync"], check=True)
        results["export_cp"].append(cp_sync(archive, os.path.join(run_dir, "copy2.tar")))
        os.remove(os.path.join(run_dir, "copy2.tar"))
        subprocess.run(["sync"], check=True)
        took, peak = run([BERTH, "export", "--quiet", "--root", store, "-o", out, ref])
        results["export_berth"].append(took)
        rss["export"] = max(rss["export"], peak)
        # The export's bytes reach the disk too, as cp's do below.
        subprocess.run(["sync", out], check=True)
        os.remove(out)

        out2 = os.path.join(run_dir, "export-skopeo.tar")
        subprocess.run(["sync"], check=True)
        took, _ = run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                       f"docker://127.0.0.1:{r2.port}/{ref}", f"oci-archive:{out2}:{ref}"])
        results["export_skopeo_r2"].append(took)
        r2.stop()
        os.remove(out2)

        shutil.rmtree(run_dir)
    med = {k: statistics.median(v) for k, v in results.items()}
    return med, rss


def main():
    install_missing()
    os.makedirs(TMP, exist_ok=True)
    # make_layout.py writes whole tar records (10240 bytes).
    record = lambda n: max(1, n // 10240) * 10240  # noqa: E731
    images = [("layers20", LAYERS, record(LAYER_BYTES)), ("big1g", 1, record(BIG_BYTES))]
    work = tempfile.mkdtemp(prefix="berth-transfer-", dir=TMP)
    rows = []
    try:
        for name, layers, layer_bytes in images:
            archive = make_archive(name, layers, layer_bytes)
            size = os.path.getsize(archive)
            med, rss = measure(name, archive, size, work)
            rows.append((name, size, med, rss))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = lambda size, secs: size / secs / 1e6  # noqa: E731
    lines = [
        "# berth import/export vs skopeo through registry:2",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"median of {RUNS} runs, everything on one disk under {TMP}; "
        f"`cp` = copy of the archive plus fsync (the physical reference).",
        "",
        "| image | step | berth | skopeo → registry:2 | skopeo → berth serve | cp | "
        "berth ÷ skopeo/registry:2 | berth ÷ cp | berth peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, size, med, rss in rows:
        for step in ["import", "export"]:
            b = med[f"{step}_berth"]
            s = med[f"{step}_skopeo_r2"]
            sb = med.get(f"{step}_skopeo_berth")
            c = med[f"{step}_cp"]
            lines.append(
                f"| {name} ({size / 2**20:.0f} MiB) | {step} | {b:.2f} s ({mb(size, b):.0f} MB/s) "
                f"| {s:.2f} s | {f'{sb:.2f} s' if sb else '—'} | {c:.2f} s "
                f"| **{s / b:.2f}×** | **{c / b:.2f}×** | {rss[step] / 1024:.0f} MiB |")
    lines += [
        "",
        "Ratios are speed ratios (time of the other ÷ time of berth): > 1 means berth is",
        "faster. Targets (issue 15): ≥ 2× skopeo through registry:2, ≥ 0.8× cp, peak RSS",
        "< 64 MiB for the 1 GiB layer.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(OUT, "w") as f:
        f.write(text)
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
