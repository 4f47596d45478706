"""The README's tables of measured numbers, written from the benchmarks' JSON in
bench/results/, so that no number outlives its run. In README.md each such table sits
between two markers,

    <!-- table: NAME -->
    ...
    <!-- /table -->

and everything between them is this script's: the table, then a line saying which
benchmark made its numbers, when, from which commit, on which machine and with which
command (bench/provenance.py stamps those into every JSON). A table whose JSON has no
stamp cannot be written: rerun its benchmark.

    /usr/bin/python3 bench/readme_tables.py            # rewrite README.md's tables
    /usr/bin/python3 bench/readme_tables.py --check    # exit 1 if one differs (the test suite)
"""
import argparse
import csv
import difflib
import json
import os
import re
import statistics as st
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_fewshot import best_means  # noqa: E402  the best model per target, features and N
RESULTS = os.path.join(ROOT, "bench", "results")  # --results changes it


class Missing(Exception):
    pass


def load(name):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        raise Missing(f"bench/results/{name} does not exist")
    with open(path) as f:
        return json.load(f)


def source(name, result):
    """The line under a table: where its numbers come from."""
    absent = [k for k in ("date", "commit", "machine", "command") if k not in result]
    if absent:
        raise Missing(f"bench/results/{name} has no {', '.join(absent)}: rerun its benchmark "
                      "(its script stamps them through bench/provenance.py)")
    m = result["machine"]
    if not isinstance(m, dict) or not {"cores", "cpu", "memory_gib"} <= set(m):
        raise Missing(f"bench/results/{name} has an older stamp (no cores, CPU and memory): rerun its benchmark")
    machine = f"{m['cores']} cores, {m['cpu']}, {m['memory_gib']:g} GiB"
    return (f"<sub>`{result['command']}` → `bench/results/{name}`, {result['date'][:10]}, "
            f"commit {result['commit']}, {machine}.</sub>")


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def n(x):
    """A whole number with thousands separators."""
    return f"{x:,.0f}"


def seconds(s):
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    whole = round(s)
    return f"{whole // 60} min {whole % 60} s"


# Each table: a function of nothing that returns the markdown between its markers.

def startup():
    r = load("startup.json")
    before = r.get("before")
    header = ["call"] + ([f"before ({before['commit']}): time", "peak memory"] if before else []) + ["now: time", "peak memory"]
    rows = []
    for i, c in enumerate(r["calls"]):
        row = [c['command']]
        if before:
            b = before["calls"][i]
            row += [f"{b['median_seconds']:.3f} s", f"{b['median_peak_rss_mib']:.0f} MiB"]
        row += [f"**{c['median_seconds']:.3f} s**", f"**{c['median_peak_rss_mib']:.0f} MiB**"]
        rows.append(row)
    libs = ["shared libraries loaded"] + ([str(before["shared_libraries_loaded"]), ""] if before else [])
    rows.append(libs + [str(r["shared_libraries_loaded"]), ""])
    return table(header, rows) + ["", source("startup.json", r)]


def plan():
    r = load("plan.json")
    rows = [["tiles / chips planned", f"{n(r['tiles'])} / {n(r['chips'])} ({100 * r['land_fraction']:.1f}% of Earth's land)"],
            [f"wall-clock time, best of {len(r['runs'])}", f"{r['best_wall_s']:.2f} s"],
            ["peak resident memory", f"{r['max_peak_rss_mib']:.1f} MiB"],
            ["static imbalance at 64 ranks", f"{r['imbalance_64_ranks']:.3f}"]]
    return table(["what", "value"], rows) + ["", source("plan.json", r)]


def demo_steps():
    r = load("demo.json")
    s = r["seconds"]
    each = {"pretrain": f" ({r['pretrain_steps']} steps, {r['pretrain_seconds_per_step']:.2f} s each)"}
    rows = [[step, seconds(s[step]) + each.get(step, "")]
            for step in ("plan", "synth", "prepare", "pretrain", "run", "status") if step in s]
    rows.append(["**the main job**", f"**{seconds(r['main_job_seconds'])}**"])
    if "fewshot" in s:
        rows.append(["then `fewshot`", seconds(s["fewshot"])])
    gflops = r["machine"].get("numpy_float32_matmul_gflops")
    tail = [f"<sub>A float32 matrix product ran at {gflops:g} GFLOP/s (numpy) on that machine.</sub>"] if gflops else []
    return table(["step", "wall-clock"], rows) + ["", source("demo.json", r)] + tail


def composite_memory():
    r = load("composite_memory.json")
    rows = [[x["scenes_per_season"], f"{x['world_mib']} MB", f"{x['peak_rss_mib']} MiB", f"{x['wall_s']:.1f} s"] for x in r["runs"]]
    return table(["scenes per season (S2 and S1 each)", "world on disk", "peak resident memory", "prepare wall-clock"],
                 rows) + ["", source("composite_memory.json", r)]


def remote():
    r = load("remote.json")
    rows = []
    for x in r["runs"]:
        http = x["inputs"] != "local disk"
        rows.append([f"HTTP, {x['latency_ms']:g} ms" if http else "local disk", f"{x['seconds']:.1f} s",
                     f"{x['chips_per_s']:.2f}", f"{x['chips_per_s_vs_local']:.2f}" if http else "1",
                     f"{n(x['peak_rss_mib'])} MiB", n(x["requests"]) if http else "",
                     f"{x['bytes_mb'] / 1000:.2f} GB" if http else ""])
    return table(["inputs", "wall-clock", "chips/s", "against local", "peak memory", "requests", "fetched"],
                 rows) + ["", source("remote.json", r)]


def prepare():
    r = load("prepare.json")
    w, p = r["warp_chip_vs_gdalwarp"], r["prepare_mpirun_np2"]
    rows = [["warp + chip, ours (1 thread)", f"{w['ours']['megasamples_per_s']:.2f} M samples/s"],
            ["`gdalwarp`, same warps (1 thread)", f"{w['gdalwarp']['megasamples_per_s']:.2f} M samples/s "
             f"({w['gdalwarp']['megasamples_per_s_without_startup']:.2f} without its "
             f"{1000 * w['gdalwarp']['startup_s_each']:.0f} ms start-up per call)"],
            ["ratio ours / `gdalwarp` (target ≥ 0.9)", f"**{w['ratio']:.2f}** ({w['ratio_without_gdalwarp_startup']:.2f} "
             "without `gdalwarp`'s start-up)"],
            [f"`mpirun -np 2 prepare` ({p['tiles']} tiles, {n(p['chips'])} chips)", f"{p['wall_s']:.1f} s"],
            ["peak memory per rank while preparing", ", ".join(f"{m} MiB" for m in p["peak_rss_mib_per_rank"])]]
    return table(["what", "value"], rows) + ["", source("prepare.json", r)]


def warp_rates():
    r = load("warp_rates.json")
    c = r["cases"]
    what = {"aligned": "on the tile's grid (S2, S1 RTC): a read", "other-zone": "neighbouring UTM zone: lattice warp",
            "geographic": "EPSG:4326 at 0.0001 degrees: lattice warp"}
    goal = {"aligned": r["goals_msamples_per_s"]["aligned"], "other-zone": r["goals_msamples_per_s"]["other_crs"],
            "geographic": r["goals_msamples_per_s"]["other_crs"]}
    met = lambda k: c[k]["ours_msamples_per_s"] >= goal[k]  # noqa: E731
    rows = [[what[k], (f"**{c[k]['ours_msamples_per_s']:.1f}**" if met(k) else f"{c[k]['ours_msamples_per_s']:.1f}")
             + f" (goal {goal[k]})", f"{c[k]['gdalwarp_msamples_per_s']:.1f}",
             f"{c[k]['ours_over_gdalwarp']:.1f}", f"{c[k]['peak_rss_mib']:.0f} MiB"] for k in what]
    comp = sorted((k for k in c if k.startswith("composite-")), key=lambda k: int(k.split("-")[1]))
    if comp:
        rows.append([f"composite of {' / '.join(k.split('-')[1] for k in comp)} S2 scenes with SCL masks, per input sample",
                     " / ".join(f"{c[k]['ours_msamples_per_s']:.0f}" for k in comp), "", "",
                     " / ".join(f"{c[k]['peak_rss_mib']:.0f}" for k in comp) + " MiB"])
    copy = [c[k]["copy_msamples_per_s"] for k in c]
    return (table(["source", "ours, M samples/s per core", "`gdalwarp`", "ours / `gdalwarp`", "peak memory"], rows)
            + ["", f"A memory copy, measured in the same run: {min(copy) / 1000:.1f}-{max(copy) / 1000:.1f} G samples/s.", "",
               source("warp_rates.json", r)])


def data_path():
    r = load("data_path.json")
    rows = [[k, f"{m['megasamples_out_per_s']:.1f} M", n(m["aligned_reads"]), f"{m['source_files_decoded_megasamples']:.0f} M"]
            for k, m in sorted(r["modalities"].items())]
    rows.append(["**all**", f"**{r['all']['megasamples_out_per_s']:.1f} M**", "", ""])
    decode = r["decode_whole_files"]["megasamples_per_s"]
    ours = r.get("decode_whole_files_tiff_blocks", {}).get("megasamples_per_s")
    return (table(["modality", "output samples/s, one core", "rows read on the tile's grid", "source samples decoded"], rows)
            + ["", f"Decoding the files alone: GDAL {decode:.0f} M samples/s" + (f", our decoder {ours:.0f} M" if ours else "")
               + f"; a memory copy {r['copy_megasamples_per_s'] / 1000:.1f} G samples/s ({r['tiles']} tiles of "
               f"{r['pixel_size_m']:g} m).", "", source("data_path.json", r)])


def paper_data_path():
    r = load("paper_data_path.json")
    columns = [(f"{name.split('_')[0]} S2 scenes a season", w) for name, w in r["worlds"].items()]

    def cell(w, part, key, fmt):
        x = w.get(part, {}).get(key)
        return "not run" if x is None else fmt.format(x)
    rows = []
    for label, part, key, fmt in (
            ("from sources (`run`): useful chips/s per core", "from_sources", "useful_chips_per_s_per_core", "{:.2f}"),
            ("from sources (`run`): useful M samples/s per core (goal 30)", "from_sources", "useful_megasamples_per_s_per_core", "{:.2f}"),
            ("from sources (`run`): cores per GPU (goal ≤ 16)", "from_sources", "cores_per_gpu", "{:.0f}"),
            ("the same with the build before issue 31: M samples/s per core", "from_sources_before", "useful_megasamples_per_s_per_core", "{:.2f}"),
            ("from sources: fraction of the copy bandwidth", "from_sources", "fraction_of_copy_bandwidth", "{:.4f}"),
            ("from sources: source blocks decoded (taken from the cache)", "from_sources", "source_blocks",
             "{0[decoded]:,} ({0[reused]:,})"),
            ("from chip stores (`run`): useful M samples/s per core", "from_chip_stores", "useful_megasamples_per_s_per_core", "{:.1f}"),
            ("from chip stores: cores per GPU (goal ≤ 8)", "from_chip_stores", "cores_per_gpu", "{:.1f}"),
            ("`prepare` (sources to chip stores): wall-clock", "prepare", "wall_s", "{:.0f} s"),
            ("peak memory, `run` from sources", "from_sources", "peak_rss_mib", "{:.0f} MiB"),
            ("peak memory, `prepare`", "prepare", "peak_rss_mib", "{:.0f} MiB")):
        rows.append([label] + [cell(w, part, key, fmt) for _, w in columns])
    return (table(["one 10 m tile (256 chips of 448 x 448 px, 24 channels), 1 rank, 1 warper thread"] + [c for c, _ in columns], rows)
            + ["", f"Cores per GPU at {r['gpu_chips_per_s_assumed']} chips/s of the paper model (assumed: no GPU was "
               f"measured here), {r['samples_per_chip']:,} useful samples a chip; {r['s1_scenes_per_season']} S1 scenes a season."
               + (f" A memory copy, measured in the same run: {r['copy_msamples_per_s'] / 1000:.1f} G samples/s."
                  if "copy_msamples_per_s" in r else ""),
               "", source("paper_data_path.json", r)])


def run_data_path():
    r = load("run_data_path.json")
    label = {"before": "an older build, from sources", "sources": "from sources", "chip_stores": "from chip stores"}
    rows = []
    for k, x in r["runs"].items():
        s = x["stage_seconds_all_ranks"]
        rows.append([label.get(k, k), f"{x['chips_per_second']:.1f}", f"{s['read_warp_chip']:.1f}",
                     f"{s['model_waiting_for_data']:.1f} s", ", ".join(f"{m} MiB" for m in x["peak_rss_mib_per_rank"])])
    notes = f"Chip stores over sources: {r['chip_stores_over_sources']:.2f}x"
    if "chips_per_second_after_over_before" in r:
        notes += f"; from sources over the older build: {r['chips_per_second_after_over_before']:.2f}x"
    notes += (f". The cube from chip stores equals the cube from sources: "
              f"{'all' if r['cube_from_chip_stores_identical'] else 'not all'} {r['cube_files_compared']} files byte for byte.")
    return (table([f"`run` of the demo, 2 ranks ({n(next(iter(r['runs'].values()))['chips_embedded'])} chips)", "chips/s",
                   "read+warp+chip, rank-seconds", "model waiting", "peak memory per rank"], rows)
            + ["", notes, "", source("run_data_path.json", r)])


def journal_startup():
    r = load("journal_startup.json")
    by = defaultdict(dict)
    for c in r["cases"]:
        by[c["past_runs"]][c["journal"]] = c
    rows = []
    for runs, c in sorted(by.items()):
        old, new = c["one file per rank per run"], c["compacted"]
        rows.append([n(runs), n(old["files_in_journal"]), f"{old['read_cold_s']:.3f} s", n(new["files_in_journal"]),
                     f"{new['read_cold_s']:.3f} s", f"{new['status_cold_s']:.2f} s"])
    return table(["past runs", "files (before)", "read, before", "files (now)", "read, now", "`status`, now"],
                 rows) + ["", source("journal_startup.json", r)]


def model():
    r = load("model.json")
    f = r["forward"]
    rows = []
    for name in ("nano", "tiny", "small", "base"):
        p = f["presets"][name]
        every = ", ".join(f"{x:.2f}" for x in p["fraction_of_matmul_every_round"])
        frac = f"{p['fraction_of_matmul']:.2f} ({every})"
        rows.append([name, p["input"], f"{p['parameters_per_encoder'] / 1e6:.2f}M", f"{p['chips_per_s']:.3g}",
                     f"{p['gflops']:.0f}", f"**{frac}**" if name != "nano" and p["fraction_of_matmul"] >= 0.6 else frac])
    matmul = [p["matmul_gflops"] for p in f["presets"].values()]
    step = r["training_step_nano_2_ranks_batch_16"]
    return (table(["preset", "input px", "parameters per encoder", "chips/s (24 channels)", "GFLOP/s",
                   "fraction of matmul (target ≥ 0.6 from tiny), every round"], rows)
            + ["", f"The float32 matrix product of 2048 x 2048 matrices ran at {min(matmul):.0f}-{max(matmul):.0f} GFLOP/s "
               f"in the same run ({f['threads']} threads). A training step of the demo's model (2 ranks x 16 chips, "
               f"{r['training_steps']} steps): data {1000 * step['data']:.1f} ms, forward {1000 * step['forward']:.0f} ms, "
               f"backward {1000 * step['backward']:.0f} ms, allreduce {1000 * step['allreduce']:.0f} ms.",
               "", source("model.json", r)])


def run():
    r = load("run.json")
    s1 = r["stage_seconds_np1"]
    m32, m256 = r["memory_run_nano_np1_cache_32mb"], r["memory_run_nano_np1_cache_256mb"]
    rows = [["pure forward, 2 threads", f"{r['pure_forward_chips_per_s_2_threads']:.2f} chips/s"],
            ["`run`, 1 rank / 2 ranks", f"{r['run_np1_chips_per_s']:.2f} / {r['run_np2_chips_per_s']:.2f} chips/s"],
            ["efficiency (target ≥ 0.85), 1 rank / 2 ranks",
             " / ".join(f"**{e:.2f}**" if e >= 0.85 else f"{e:.2f}" for e in (r["efficiency_np1"], r["efficiency_np2"]))],
            ["2 ranks over 1 rank", f"{r['scaling_np2_over_np1']:.2f}"],
            ["time per stage, 1 rank", f"read+warp+chip {s1['read_warp_chip']:.1f} s (on the prefetch thread), embed "
             f"{s1['embed']:.1f} s, model waiting for data {s1['model_waiting_for_data']:.1f} s, write {s1['write']:.2f} s"],
            ["peak memory per rank, 2 ranks", ", ".join(f"{m} MiB" for m in r["peak_rss_mib_per_rank_np2"])],
            [f"resident memory after tiles 1..{m32['tiles']}, 32 MB cache", ", ".join(map(str, m32["rss_mib_after_each_tile"])) + " MiB"],
            ["the same, 256 MB cache", ", ".join(map(str, m256["rss_mib_after_each_tile"])) + " MiB"]]
    return table(["what", "value"], rows) + ["", source("run.json", r)]


def bold_better(ours, theirs, fmt, higher=True):
    """The two cells, the better one in bold."""
    ours_wins = ours >= theirs if higher else ours <= theirs
    return [f"**{fmt(ours)}**" if ours_wins else fmt(ours), fmt(theirs) if ours_wins else f"**{fmt(theirs)}**"]


def ms(v):
    return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def similar():
    r = load("similar.json")
    c = {x["dim"]: x for x in r["cases"]}
    d = sorted(c)

    def cells(f):
        return [cell for dim in d for cell in f(c[dim])]
    rows = [
        ["exact in memory (`serve`), 256 queries at once: queries/s"]
        + cells(lambda x: bold_better(x["ours_in_memory"]["batch_queries_per_second"],
                                      x["python_faiss"]["exact_queries_per_second"], lambda v: f"{v:,.0f}")),
        ["exact in memory, one query at a time"]
        + cells(lambda x: bold_better(x["ours_in_memory"]["single_median_ms"],
                                      1000 / x["python_faiss"]["exact_single_queries_per_second"], ms, higher=False)),
        ["the vectors in memory; read in"]
        + cells(lambda x: [f"{x['ours_in_memory']['bytes'] / 2**20:,.0f} MiB; {x['ours_in_memory']['load_seconds']:.1f} s",
                           f"{x['python_faiss']['peak_rss_mib']:,.0f} MiB peak; {x['python_faiss']['load_seconds']:.1f} s"]),
        ["exact from disk (`similar`), 64 a pass: queries/s; peak memory"]
        + cells(lambda x: [f"{x['ours_exact']['queries_per_second']:.3g}; {x['ours_exact']['peak_rss_mib']:.0f} MiB", ""]),
        ["exact from disk, one query a pass"]
        + cells(lambda x: [f"{x['ours_exact']['single_median_ms'] / 1000:.2g} s"
                           if x['ours_exact']['single_median_ms'] >= 1000 else ms(x['ours_exact']['single_median_ms']), ""]),
        [f"index {c[d[0]]['ours_index']['factory']} nprobe {c[d[0]]['ours_index']['nprobe']}: queries/s"]
        + cells(lambda x: bold_better(x["ours_index"]["queries_per_second"], x["python_faiss"]["index_queries_per_second"],
                                      lambda v: f"{v:,.0f}")),
        ["index: build; recall@10"]
        + cells(lambda x: [f"{x['ours_index']['build_seconds']:.1f} s; {x['ours_index']['recall_at_k']:.3f}",
                           f"{x['python_faiss']['index_build_seconds']:.1f} s; {x['python_faiss']['index_recall_at_k']:.3f}"]),
        ["index, one query at a time"] + cells(lambda x: [f"{x['ours_index']['single_median_ms']:.2f} ms", ""]),
        ["the same top 10 as ours exactly"]
        + cells(lambda x: [f"{100 * x['ours_in_memory']['batch_recall_at_k']:.0f}%",
                           f"{100 * x['python_faiss']['exact_agrees_with_ours']:.0f}%"]),
    ]
    header = [f"{c[d[0]]['make']['chips'] / 1e6:.0f}M chips, {r['threads']['faiss_omp']} threads each side"]
    header += [h for dim in d for h in (f"{dim} dims: ours", "numpy + faiss")]
    ratios = "; ".join(
        f"{dim} dims {c[dim]['ours_in_memory']['batch_queries_per_second'] / c[dim]['python_faiss']['exact_queries_per_second']:.1f}x "
        f"in a batch and {1000 / c[dim]['python_faiss']['exact_single_queries_per_second'] / c[dim]['ours_in_memory']['single_median_ms']:.1f}x "
        "one at a time" for dim in d)
    sweep = "; ".join(f"{s['nprobe']}: {s['queries_per_second']:,.0f} q/s, recall {s['recall_at_k']:.3f}"
                      for s in c[d[0]]["ours_index"]["nprobe_sweep"])
    return table(header, rows) + ["", f"Our exact search in memory against FAISS's flat index: {ratios}. "
                                  f"The index at {d[0]} dims by nprobe: {sweep}.", "", source("similar.json", r)]


def trees():
    r = load("fewshot.json")
    rows = []
    for x in r["trees"]["cases"]:
        s = x["seconds_by_max_bin"]
        rows.append([{"gbt": "boosting (400 rounds, depth 4)", "rf": "forest (200 trees, depth 8)"}[x["model"]], x["rows"],
                     x["features"]] + [f"{s[b]:.2f} s" for b in ("256", "64", "32", "16")] + [f"{x['speedup_over_256']['32']:.1f}x"])
    for i in range(len(rows) - 1, 0, -1):  # a model's name once
        if rows[i][0] == rows[i - 1][0]:
            rows[i][0] = ""
    return (table(["model", "rows", "features", "256 bins", "64", "32", "16", "32 against 256"], rows)
            + ["", f"The demo's `fewshot` ({n(r['fits'])} fits) in the same run: {seconds(r['fewshot_seconds'])}.", "",
               source("fewshot.json", r)])


def serve():
    r = load("serve.json")
    t = r["pca_tiles"]
    rendered = [t[z]["rendered"] for z in t]
    cached = [t[z]["cached"] for z in t]
    tr = r["train"]
    span = lambda xs, k, f: f"{f(min(x[k] for x in xs))}-{f(max(x[k] for x in xs))}"  # noqa: E731
    rows = [[f"a PCA tile rendered ({sum(x['count'] for x in rendered)} tiles at zooms {', '.join(sorted(t, key=int))}; "
             "written to the cache)", span(rendered, "median_ms", lambda v: f"{v:.0f}") + " ms",
             f"{max(x['max_ms'] for x in rendered):.0f} ms", "50 ms"],
            ["the same tile again, from the cache", span(cached, "median_ms", lambda v: f"{v:.2f}") + " ms",
             f"{max(x['max_ms'] for x in cached):.2f} ms", "5 ms"],
            [f"a click: the chip at a place, then its 10 most similar ({r['click_to_similar']['count']} clicks)",
             f"{r['click_to_similar']['median_ms']:.1f} ms", f"{r['click_to_similar']['max_ms']:.1f} ms", "100 ms"],
            ["a tile of the search's heat layer", f"{r['heat_tile']['median_ms']:.1f} ms", f"{r['heat_tile']['max_ms']:.1f} ms", ""],
            [f"Train on {tr['labels']} labels, then the map's {tr['map_tiles_at_zoom_9']} tiles at zoom 9 "
             f"({tr['fit_and_map_tiles']['count']} runs)",
             f"{tr['fit_and_map_tiles']['median_ms'] / 1000:.2f} s (the fit {tr['fit']['median_ms'] / 1000:.2f} s)",
             f"{tr['fit_and_map_tiles']['max_ms'] / 1000:.2f} s", "2 s"]]
    return (table(["", "median", "slowest", "goal"], rows)
            + ["", f"On {n(r['embedded_chips'])} chips ({r['cube']}), {r['threads']} threads; the server's peak memory "
               f"{r['peak_rss_mib']:.0f} MiB. The {tr['labels']}-label map scored {tr['held_out']['accuracy']:.2f} held-out "
               f"accuracy (F1 {tr['held_out']['f1']:.2f}, {tr['test']} held-out chips).", "", source("serve.json", r)])


def trees200():
    r = load("trees200.json")
    b = r["best_with_all_training_chips_chosen_on_validation"]
    split = r["split"]["tree_cover"]
    m = r["map_test_scores"]["tree_cover"]
    zones = r["map_against_gdalwarp_average"]
    rows = [["`fewshot --labels` on the 200 labels, wall-clock", seconds(r["fewshot_seconds"])],
            ["labelled chips: training / validation / test", f"{split['train']} / {split['validation']} / {split['test']}"],
            ["the best features and model on the validation chips, with all training chips: test R²",
             f"{b['test_r2']:.2f} ({b['features']}, {b['model']}; validation R² {b['validation_r2']:.2f})"],
            ["the map (boosted trees on the fused embeddings): R² on the test chips", f"{m['r2']:.2f}"],
            ["the map against `gdalwarp -r average` of the tree-cover maps, which no label told it: R²",
             "; ".join(f"{z} {v['r2_against_gdalwarp_average']:.2f} ({n(v['chips'])} chips)" for z, v in sorted(zones.items()))]]
    return table(["what", "value"], rows) + ["", source("trees200.json", r)]


def suite():
    r = load("suite.json")
    rows = [["tests passed", f"{r['passed']} of {r['tests']}"],
            ["`bash scripts/test.sh` from a clean clone, build included", seconds(r["seconds"])],
            ["the tests alone (ctest, 2 at a time)", seconds(r["ctest_seconds"])]]
    return table(["what", "value"], rows) + ["", source("suite.json", r)]


def gpu_cpu():
    r = load("gpu_cpu.json")
    c, m = r["cpp"], r["pytorch_mirror"]
    rows = [[f"{c['preset']} preset, batch {c['batch']}, {c['dtype']} on the {c['device'].upper()}",
             f"{c['chips_per_s']:.2f} chips/s, {c['fraction_of_matmul']:.2f} of the matrix product's rate"],
            ["a training step", f"{c['training_step_s']:.1f} s"],
            ["the PyTorch mirror against the C++ encoder: largest difference", f"{m['max_abs_difference_to_cpp_float32']:.1e}"],
            [f"the mirror in PyTorch {m['torch']}, eager", f"{m['eager_chips_per_s']:.2f} chips/s"],
            ["compiled", m["compile"] if m["compiled_chips_per_s"] is None else f"{m['compiled_chips_per_s']:.2f} chips/s"]]
    return table(["`bench/gpu/run.sh` without a GPU", "value"], rows) + ["", source("gpu_cpu.json", r)]


# The few-shot tables: a run of the demo and its `fewshot` (bench/demo_bench.sh keeps its
# results.csv, probe.csv, loss.csv and stamp in bench/results/embeddings/demo/).
FEWSHOT_RUN = "embeddings/demo"
TARGETS = ["tree", "cropland", "built_up", "water", "tree_cover_pct"]
TARGET_NAMES = {"tree": "tree", "cropland": "cropland", "built_up": "built-up", "water": "water",
                "tree_cover_pct": "tree-cover %"}
SIZES = ["25", "50", "100", "250", "500", "all"]


def fewshot_run():
    """The run's stamp, and its sweep read by compare_fewshot.best_means with the best model
    chosen on the validation stripes and, for comparison, on the test stripes."""
    stamp = load(FEWSHOT_RUN + "/run.json")
    path = os.path.join(RESULTS, FEWSHOT_RUN, "results.csv")
    return stamp, {on: best_means(path, on) for on in ("validation", "test")}


def choose(runs, target, features, size, on="validation"):
    """Of the feature sets `features`, the one whose best model did best on the validation
    stripes (on="test": on the test stripes, which flatters it): its features, model, and
    mean test R² and spread over seeds."""
    best, fits = runs[on]
    f = max(features, key=lambda g: best[(target, g, size)][2])
    mean, model, _ = best[(target, f, size)]
    spread = st.pstdev([v for (t, g, m, n_, _seed), v in fits.items() if (t, g, m, n_) == (target, f, model, size)])
    return f, model, mean, spread


def fewshot_sizes():
    stamp, runs = fewshot_run()
    rows = [[TARGET_NAMES[t], f] + [f"{choose(runs, t, [f], size)[2]:.2f}" for size in SIZES]
            for t in TARGETS for f in ("s2rgb", "s1amp", "s1coh", "fused", "concat", "bands")]
    return table(["target", "features", "N = 25"] + SIZES[1:], rows) + ["", source(FEWSHOT_RUN + "/run.json", stamp)]


def fewshot_modalities():
    stamp, runs = fewshot_run()
    rows = []
    for t in TARGETS:
        cells = []
        for m in ("s2rgb", "s1amp", "s1coh"):
            e, b = choose(runs, t, [m], "250")[2], choose(runs, t, ["bands_" + m], "250")[2]
            e0, b0 = choose(runs, t, [m], "250", "test")[2], choose(runs, t, ["bands_" + m], "250", "test")[2]
            cells.append((f"**{e:.3f}** / {b:.3f}" if e >= b else f"{e:.3f} / **{b:.3f}**") + f" ({e0:.3f} / {b0:.3f})")
        rows.append([TARGET_NAMES[t]] + cells)
    return (table(["target", "s2rgb: embedding / its bands", "s1amp", "s1coh"], rows)
            + ["", source(FEWSHOT_RUN + "/run.json", stamp)])


def fewshot_claim():
    stamp, runs = fewshot_run()
    rows = []
    for t in TARGETS:
        f, m, e, s = choose(runs, t, ["fused", "concat"], "250")
        _, bm, b, bs = choose(runs, t, ["bands"], "250")
        e0, b0 = choose(runs, t, ["fused", "concat"], "250", "test")[2], choose(runs, t, ["bands"], "250", "test")[2]
        ratio = lambda g: 100 * choose(runs, t, [g], "250")[2] / choose(runs, t, [g], "all")[2]  # noqa: E731
        rows.append([TARGET_NAMES[t], (f"**{e:.3f}**" if e >= b else f"{e:.3f}") + f" ± {s:.3f} ({f}, {m})",
                     (f"**{b:.3f}**" if b > e else f"{b:.3f}") + f" ± {bs:.3f} ({bm})", f"{e0:.3f} / {b0:.3f}",
                     f"{ratio('fused'):.0f}% / {ratio('concat'):.0f}%"])
    return (table(["target", "embeddings at 250 chips", "band statistics at 250",
                   "chosen on test instead: embeddings / bands", "250 against all, fused / concat"], rows)
            + ["", source(FEWSHOT_RUN + "/run.json", stamp)])


def fewshot_probe():
    stamp = load(FEWSHOT_RUN + "/run.json")
    r2 = defaultdict(lambda: defaultdict(list))
    with open(os.path.join(RESULTS, FEWSHOT_RUN, "probe.csv")) as f:
        for r in csv.DictReader(f):
            r2[r["modality"]][r["statistic"]].append(float(r["r2"]))
    rows = [[m, f"{st.mean(r2[m]['mean']):.3f}", f"{min(r2[m]['mean']):.3f}", f"{st.mean(r2[m]['sd']):.3f}"]
            for m in ("s2rgb", "s1amp", "s1coh")]
    return (table(["embedding", "R² of its band means, mean", "lowest", "R² of its band spreads, mean"], rows)
            + ["", source(FEWSHOT_RUN + "/run.json", stamp)])


def fewshot_probe_components():
    """The probe by principal component: each modality's components grouped by their share
    of the variance, the mean R² of their scores and how many (fewshot's results.md)."""
    stamp = load(FEWSHOT_RUN + "/run.json")
    bins = [(0.1, "≥ 10%"), (0.01, "1-10%"), (0.001, "0.1-1%"), (0.0, "< 0.1%")]
    path = os.path.join(RESULTS, FEWSHOT_RUN, "probe_components.csv")
    if not os.path.exists(path):
        raise Missing(f"bench/results/{FEWSHOT_RUN}/probe_components.csv does not exist: rerun bench/demo_bench.sh")
    r2 = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for r in csv.DictReader(f):
            share = float(r["variance_share"])
            r2[r["modality"]][next(name for low, name in bins if share >= low)].append(float(r["r2"]))
    rows = [[m] + [f"{st.mean(r2[m][name]):.3f} ({len(r2[m][name])})" if r2[m][name] else "-" for _, name in bins]
            for m in ("s2rgb", "s1amp", "s1coh")]
    return (table(["embedding: components with this share of the variance"] + [name for _, name in bins], rows)
            + ["", source(FEWSHOT_RUN + "/run.json", stamp)])


TABLES = {f.__name__: f for f in (startup, plan, trees200, suite, gpu_cpu, demo_steps, composite_memory, remote, prepare, warp_rates, data_path, paper_data_path,
                                  run_data_path, journal_startup, model, run, similar, trees, serve, fewshot_sizes,
                                  fewshot_modalities, fewshot_claim, fewshot_probe, fewshot_probe_components)}
MARKER = re.compile(r"^<!-- table: (\S+) -->\n(.*?)^<!-- /table -->\n", re.M | re.S)


def regenerate(text):
    """README's text with every marked table written anew, and the problems met."""
    problems = []

    def write(m):
        name = m.group(1)
        if name not in TABLES:
            problems.append(f"README.md marks a table {name!r}, which this script does not know")
            return m.group(0)
        try:
            body = "\n".join(TABLES[name]())
        except Missing as e:
            problems.append(f"table {name}: {e}")
            return m.group(0)
        except (KeyError, TypeError) as e:  # a JSON of an older benchmark's shape
            problems.append(f"table {name}: its JSON has no {e}: rerun its benchmark")
            return m.group(0)
        return f"<!-- table: {name} -->\n{body}\n<!-- /table -->\n"
    return MARKER.sub(write, text), problems


def main():
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if a table differs from its JSON")
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    p.add_argument("--results", default=RESULTS, help="the benchmarks' JSON (default bench/results)")
    args = p.parse_args()
    RESULTS = args.results
    with open(args.readme) as f:
        text = f.read()
    new, problems = regenerate(text)
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check:
        if new != text:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), "README.md",
                                                       "README.md as bench/results says"))
            print("README.md's tables differ from bench/results: run /usr/bin/python3 bench/readme_tables.py",
                  file=sys.stderr)
            return 1
        print(f"README.md: {len(MARKER.findall(text))} tables agree with bench/results")
        return 1 if problems else 0
    if new != text:
        with open(args.readme, "w") as f:
            f.write(new)
    print(f"README.md: {len(MARKER.findall(new))} tables written")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
