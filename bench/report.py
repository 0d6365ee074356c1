#!/usr/bin/env python3
"""Turns bench/run.sh's raw measurements into the markdown results table.

usage: report.py RAW.tsv META.txt

RAW.tsv lines: metric <TAB> server <TAB> run <TAB> value
META.txt lines: key <TAB> value (printed as-is under "Setup").
Writes markdown to stdout.
"""
import statistics
import sys
from collections import defaultdict

B, R = "berth", "registry"

# metric -> (label, unit, better, how to aggregate the runs)
METRICS = {
    "blob_push_mibs": ("1 GiB blob push (monolithic PUT)", "MiB/s", "higher", "median"),
    "blob_get_mibs": ("1 GiB blob GET", "MiB/s", "higher", "median"),
    "skopeo_push_s": ("skopeo push, 20 x 5 MiB layers", "s", "lower", "median"),
    "skopeo_pull_s": ("skopeo pull, 20 x 5 MiB layers", "s", "lower", "median"),
    "manifest_rps": ("GET /v2/multi/manifests/v1 (wrk -t2 -c32)", "req/s", "higher", "median"),
    "v2_rps": ("GET /v2/ (wrk -t2 -c32)", "req/s", "higher", "median"),
    "push_rss_mib": ("peak RSS (VmHWM) during the 1 GiB push", "MiB", "lower", "max"),
    "idle_rss_mib": ("peak RSS (VmHWM) of start-up (incl. guest compile on a fresh root)", "MiB", "lower", "max"),
}

# metric -> (description, predicate on (berth, registry, ratio))
TARGETS = {
    "blob_push_mibs": ("ratio >= 2", lambda b, r, q: q >= 2),
    "blob_get_mibs": ("ratio >= 2", lambda b, r, q: q >= 2),
    "manifest_rps": ("ratio >= 10", lambda b, r, q: q >= 10),
    "push_rss_mib": ("Berth < 64 MiB", lambda b, r, q: b < 64),
}


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    raw_path, meta_path = sys.argv[1], sys.argv[2]
    runs = defaultdict(list)  # (metric, server) -> [values in run order]
    with open(raw_path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            metric, server, run, value = line.split("\t")
            runs[(metric, server)].append((int(run), float(value)))
    for k in runs:
        runs[k] = [v for _, v in sorted(runs[k])]

    def agg(metric, server):
        vals = runs.get((metric, server))
        if not vals:
            return None
        how = METRICS.get(metric, (None, None, None, "median"))[3]
        return max(vals) if how == "max" else statistics.median(vals)

    out = []
    w = out.append
    w("# Berth vs registry:2")
    w("")
    w("Medians of 3 runs (RSS: the largest of the 3 pushes). Ratio = Berth / registry:2;")
    w("the *better* column says which direction of the ratio is good for Berth.")
    w("")
    w("| measurement | unit | Berth | registry:2 | Berth / registry:2 | better | target | met |")
    w("| --- | --- | ---: | ---: | ---: | --- | --- | --- |")
    for metric, (label, unit, better, _) in METRICS.items():
        b, r = agg(metric, B), agg(metric, R)
        q = b / r if (b is not None and r) else None
        tdesc, tmet = "", ""
        if metric in TARGETS and b is not None and q is not None:
            tdesc = TARGETS[metric][0]
            tmet = "yes" if TARGETS[metric][1](b, r, q) else "**NO**"
        ratio = f"{q:.2f}x" if q is not None else "n/a"
        w(f"| {label} | {unit} | {fmt(b)} | {fmt(r)} | {ratio} | {better} | {tdesc} | {tmet} |")
    w("")

    guest, native = agg("v2_rps", B), agg("health_rps", B)
    w("## Cost of entering the wasm guest (Berth only, same process)")
    w("")
    w("| route | answered by | req/s (median) |")
    w("| --- | --- | ---: |")
    w(f"| GET /v2/ | wasm guest | {fmt(guest)} |")
    w(f"| GET /health | native host (axum) | {fmt(native)} |")
    w("")
    if guest and native:
        share = guest / native
        extra_us = (1 / guest - 1 / native) * 1e6
        met = "yes" if share >= 0.5 else "**NO**"
        w(f"- guest / native: **{share:.0%}** (target >= 50%: {met})")
        w(f"- implied extra cost per request: **~{extra_us:.0f} µs** (estimate: "
          "(1/guest - 1/native) x 1e6 from throughput at -c32 on this 2-core box, "
          "i.e. extra wall time per request of the whole server, not a latency)")
        w("")

    w("## Raw numbers (run 1, 2, 3)")
    w("")
    w("| metric | server | runs | aggregate |")
    w("| --- | --- | --- | ---: |")
    names = list(METRICS) + ["health_rps"]
    names += sorted({m for m, _ in runs} - set(names))
    for metric in names:
        for server in (B, R):
            vals = runs.get((metric, server))
            if not vals:
                continue
            name = "Berth" if server == B else "registry:2"
            w(f"| {metric} | {name} | {', '.join(fmt(v) for v in vals)} | {fmt(agg(metric, server))} |")
    w("")

    w("## Setup")
    w("")
    with open(meta_path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                k, _, v = line.partition("\t")
                w(f"- {k}: {v}")
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
