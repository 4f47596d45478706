#!/usr/bin/python3
"""`prepare` of a world from local disk and over HTTP, in one run (issue 29).

    bench/remote_bench.py [--config configs/demo.yaml] [--world out/demo/world]
                          [--latency 0,20,50,100] [--rate-mbps 100] [--out bench/results/remote.json]

The world (synth's, with its catalog.jsonl) is served by tests/support/object_store.py on
127.0.0.1 with the latency added to every request and the bandwidth capped per
connection; the catalog is rewritten to /vsicurl/ URLs of it. Each run prepares every
tile into an output of its own, one rank. Written: chips/s, seconds, peak memory and
the requests the store answered, per run, with the ratio of each remote run's chips/s to
the local run's, and the date, commit, machine and command.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from provenance import stamp  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def serve(world, folder, latency_ms, rate_mbps):
    port_file = os.path.join(folder, "port")
    log = os.path.join(folder, "requests.jsonl")
    args = ["/usr/bin/python3", os.path.join(ROOT, "tests/support/object_store.py"), world, "--port-file", port_file,
            "--log", log, "--latency-ms", str(latency_ms), "--rate-mbps", str(rate_mbps)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(port_file):
            return proc, int(open(port_file).read()), log
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the object store did not start")


def prepare(exe, config_text, catalog, folder):
    config = os.path.join(folder, "config.yaml")
    with open(config, "w") as f:
        f.write(config_text + "\ndata:\n  catalog: %s\n" % catalog)
    out = os.path.join(folder, "out")
    t0 = time.monotonic()
    r = subprocess.run([exe, "prepare", config, "--output", out, "-q"], capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("prepare failed (%d): %s" % (r.returncode, r.stdout[-2000:] + r.stderr[-2000:]))
    report = json.load(open(os.path.join(out, "prepare", "report.json")))
    row = {"seconds": round(seconds, 2), "chips": report["chips_written"],
           "chips_per_s": round(report["chips_written"] / seconds, 3),
           "peak_rss_mib": max(report["peak_rss_mib_per_rank"])}
    shutil.rmtree(out)
    return row


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default=os.path.join(ROOT, "configs/demo.yaml"))
    p.add_argument("--world", default=os.path.join(ROOT, "out/demo/world"))
    p.add_argument("--exe", default=os.path.join(ROOT, "build/pipeline/eo-pipeline"))
    p.add_argument("--latency", default="0,20,50,100")
    p.add_argument("--rate-mbps", type=float, default=100)
    p.add_argument("--out", default=os.path.join(ROOT, "bench/results/remote.json"))
    args = p.parse_args()
    world = os.path.abspath(args.world)
    if not os.path.exists(os.path.join(world, "catalog.jsonl")):
        sys.exit("no catalog.jsonl in %s: run synth (or the demo) first" % world)
    config_text = open(args.config).read()
    work = tempfile.mkdtemp(prefix="eo_remote_bench_")
    rows = []
    try:
        local = os.path.join(work, "local")
        os.makedirs(local)
        row = prepare(args.exe, config_text, os.path.join(world, "catalog.jsonl"), local)
        row.update({"inputs": "local disk"})
        rows.append(row)
        print(json.dumps(row), flush=True)
        for latency in [float(x) for x in args.latency.split(",")]:
            folder = os.path.join(work, "remote_%g" % latency)
            os.makedirs(folder)
            proc, port, log = serve(world, folder, latency, args.rate_mbps)
            try:
                catalog = os.path.join(folder, "catalog.jsonl")
                base = "/vsicurl/http://127.0.0.1:%d/" % port
                with open(os.path.join(world, "catalog.jsonl")) as src, open(catalog, "w") as dst:
                    for line in src:
                        rec = json.loads(line)
                        rec["path"] = base + rec["path"]
                        if rec.get("mask"):
                            rec["mask"]["path"] = base + rec["mask"]["path"]
                        dst.write(json.dumps(rec) + "\n")
                row = prepare(args.exe, config_text, catalog, folder)
            finally:
                proc.terminate()
                proc.wait()
            requests = [json.loads(x) for x in open(log)]
            row.update({"inputs": "HTTP", "latency_ms": latency, "rate_mbps_per_connection": args.rate_mbps,
                        "requests": len(requests), "bytes_mb": round(sum(
                            int(r["range"].split("=")[1].split("-")[1]) - int(r["range"].split("=")[1].split("-")[0]) + 1
                            for r in requests if r["range"]) / 1e6, 1),
                        "chips_per_s_vs_local": round(row["chips_per_s"] / rows[0]["chips_per_s"], 3)})
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {**stamp(" ".join(["/usr/bin/python3", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])),
              "config": os.path.relpath(os.path.abspath(args.config), ROOT), "ranks": 1, "runs": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print("written", args.out)


if __name__ == "__main__":
    main()
