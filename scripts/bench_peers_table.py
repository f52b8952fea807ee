"""Helpers of scripts/bench-peers (standard library only).

merge-rss FILE        a row of `timed` (JSON on stdin) with the peak RSS of the
                      dask.distributed worker processes that the peer probed
                      into FILE ({"main_mib", "workers_mib": [...], "probe_s",
                      ...}): rss_mib becomes the largest process, all_rss_mib
                      the sum of the processes' peaks, and the probe's seconds
                      are taken off the wall time.
hardware ARGS         the "At the speed of the hardware" table of
                      `--layout all`: docs/performance-data/hardware.md, .json
                      and .svg, from the peers-zstd, peers-lz4, timeseries-zstd
                      and s3-zstd JSON of the same command and the alternated
                      `zarrforge bench --json` runs (see main()).
"""
import argparse
import datetime
import glob
import json
import os
import statistics
import subprocess
import sys


def merge_rss(path):
    row = json.loads(sys.stdin.read())
    w = json.load(open(path))
    workers = [float(x) for x in w.get("workers_mib", [])]
    main = float(w.get("main_mib", 0.0))
    row["workers_rss_mib"] = [round(x, 1) for x in workers]
    row["rss_mib"] = round(max([row["rss_mib"], main] + workers), 1)
    row["all_rss_mib"] = round(main + sum(workers), 1)
    row["seconds"] = round(row["seconds"] - float(w.get("probe_s", 0.0)), 3)
    for k, v in w.items():
        if k not in ("main_mib", "workers_mib", "probe_s"):
            row[k] = v
    print(json.dumps(row))


# The rows of the table, in its order.
ALIGNED = "aligned layout (time=24,lat=181,lon=360)"
TS = "time-series layout (time=384,lat=19,lon=36; exchange)"
XR_THREADS = "xarray + Dask (threads, 2 workers)"
ZF2 = "zarrforge, 2 ranks"
ZF_SOURCE = "zarrforge, 2 ranks, --codec source"
ZF_TS = "zarrforge, 2 ranks (exchange)"
XR_S3 = "xarray + Dask to_zarr via s3fs (threads, 2 workers)"
TS_RSS_LIMIT = 512.0


def fmt_x(v):
    return "-" if v is None else f"{v:.2f}×"


def median_or_none(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Data:
    """The JSON a `--layout all` command wrote (older files: not this command's)."""

    def __init__(self, data_dir, since):
        self.data_dir, self.since, self.notes = data_dir, since, []

    def load(self, name):
        p = os.path.join(self.data_dir, name)
        if not os.path.exists(p):
            self.notes.append(f"{name}: missing")
            return None
        if os.path.getmtime(p) < self.since:
            self.notes.append(f"{name}: not written by this command (its layout failed)")
            return None
        return json.load(open(p))


def rows_of(doc):
    """{label: {"seconds", "rss_mib", "all_rss_mib", "runs"}} of a peers,
    time-series or S3 JSON (each format the script has written)."""
    out = {}
    if not doc:
        return out
    for label, med in doc.get("median", {}).items():
        rss = all_rss = None
        if isinstance(med, list):  # time-series: [seconds, rss]
            sec, rss = med[0], med[1]
        elif isinstance(med, dict):
            sec, rss, all_rss = med.get("seconds"), med.get("rss_mib"), med.get("all_rss_mib")
        else:
            sec = med
        runs = doc.get("runs", {}).get(label, [])
        runs = [r["seconds"] if isinstance(r, dict) else r for r in runs]
        out[label] = {"seconds": sec, "rss_mib": rss, "all_rss_mib": all_rss, "runs": runs}
    for label, v in doc.get("rss_mib", {}).items():
        if label in out and out[label]["rss_mib"] is None:
            out[label]["rss_mib"] = v
    for label, v in doc.get("all_rss_mib", {}).items():
        if label in out:
            out[label]["all_rss_mib"] = v
    return out


def bench_summary(paths):
    """Medians of alternated `zarrforge bench --json` runs: the wall (convert
    seconds), the codec floor, the I/O floor and the bound (their max) when
    the binary reports them, and wall / bound (wall / codec floor before)."""
    runs = []
    for p in sorted(paths):
        try:
            b = json.load(open(p))
        except Exception as e:  # a failed run: left out, said
            runs.append({"file": os.path.basename(p), "error": str(e)[:200]})
            continue
        wall = (b.get("convert") or {}).get("seconds")
        io = b.get("io_floor_s")
        ratio = b.get("bound_ratio", b.get("floor_ratio"))
        runs.append({"file": os.path.basename(p), "wall_s": wall, "floor_s": b.get("floor_s"),
                     "floor_ratio": b.get("floor_ratio"), "io_floor_s": io, "bound_s": b.get("bound_s"),
                     "bound_ratio": b.get("bound_ratio"), "binds": b.get("binds"), "ratio": ratio,
                     "io_ratio": wall / io if wall and io else None,
                     "peak_rss_mib": b.get("peak_rss_mib"), "gb_per_s": b.get("gb_per_s"),
                     "environment": (b.get("convert") or {}).get("environment"),
                     "topology": (b.get("convert") or {}).get("topology")})
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return None
    s = {k: median_or_none(r[k] for r in ok)
         for k in ("wall_s", "floor_s", "floor_ratio", "io_floor_s", "bound_s", "bound_ratio", "ratio", "io_ratio",
                   "peak_rss_mib")}
    binds = [r["binds"] for r in ok if r.get("binds")]
    s["binds"] = max(set(binds), key=binds.count) if binds else None
    s["bound_kind"] = "max(codec floor, I/O floor)" if s["bound_ratio"] is not None else "codec floor"
    s["runs"] = runs
    return s


def verdict(conds):
    """met / not met / n/a from [(value, op, goal)]: not met when a measured
    value misses its goal, else n/a when one is missing."""
    known = [(v, op, g) for v, op, g in conds if v is not None]
    if not all((v >= g) if op == ">=" else (v <= g) for v, op, g in known):
        return "not met"
    return "met" if len(known) == len(conds) else "n/a"


def floor_ratio(b):
    """A bench's wall over its floor, and the line that says where it came from."""
    if not b:
        return None, "not measured"
    bound = b["bound_s"] if b["bound_s"] is not None else b["floor_s"]
    det = f"wall {b['wall_s']:.2f} s / {b['bound_kind']} {bound:.2f} s" + (
        f" (binds: {b['binds']})" if b["binds"] else "")
    return b["ratio"], det


def hardware(a):
    since = a.since
    data = Data(a.data_dir, since)
    pz, pl = rows_of(data.load("peers-zstd.json")), rows_of(data.load("peers-lz4.json"))
    s3doc = data.load("s3-zstd.json")
    ts, s3 = rows_of(data.load("timeseries-zstd.json")), rows_of(s3doc)
    bench = {k: bench_summary(glob.glob(os.path.join(a.bench_dir, f"hw-bench-{k}-*.json")))
             for k in ("aligned", "timeseries", "source")}
    for k, b in bench.items():
        if b is None:
            data.notes.append(f"zarrforge bench ({k}): no successful run")

    def sec(rows, label):
        r = rows.get(label)
        return r["seconds"] if r else None

    def speedup(peer, zf):
        return peer / zf if peer and zf else None

    def pair(peer_label, peer, zf_label, zf):
        if peer is None or zf is None:
            return "not measured"
        return f"{peer_label} {peer:.2f} s / {zf_label} {zf:.2f} s"

    def reach(met, peer, bound_s, goal, what):
        """The largest speed-up these cores allow (the peer's time over a
        bound no run can beat), a line that says so, and the verdict: out
        of reach when even the bound misses the goal."""
        if not peer or not bound_s:
            return None, "", met
        most = peer / bound_s
        line = f"; at most {most:.2f}× here ({what} {bound_s:.2f} s)"
        return most, line, ("out of reach" if met == "not met" and most < goal else met)

    rows = []
    # 1. aligned zstd vs xarray + Dask (threads)
    p, z = sec(pz, XR_THREADS), sec(pz, ZF2)
    r = speedup(p, z)
    met = verdict([(r, ">=", 2.0)])
    most, line, met = reach(met, p, (bench["aligned"] or {}).get("floor_s"), 2.0,
                            "the codec floor of `zarrforge bench`")
    rows.append({"job": f"{ALIGNED}, zstd:3", "versus": "vs xarray + Dask (threads)", "goal": "≥ 2×",
                 "measured": fmt_x(r), "detail": pair("xarray + Dask", p, "zarrforge", z) + line,
                 "met": met, "value": r, "goal_value": 2.0, "op": ">=", "reachable": most})
    # 2. aligned zstd: wall / floor
    r, det = floor_ratio(bench["aligned"])
    rows.append({"job": f"{ALIGNED}, zstd:3", "versus": "wall / floor from `zarrforge bench`", "goal": "≤ 1.1×",
                 "measured": fmt_x(r), "detail": det, "met": verdict([(r, "<=", 1.1)]), "value": r,
                 "goal_value": 1.1, "op": "<="})
    # 3. aligned lz4 vs xarray + Dask
    p, z = sec(pl, XR_THREADS), sec(pl, ZF2)
    r = speedup(p, z)
    rows.append({"job": f"{ALIGNED}, blosc lz4 + shuffle", "versus": "vs xarray + Dask", "goal": "≥ 3×",
                 "measured": fmt_x(r), "detail": pair("xarray + Dask", p, "zarrforge", z),
                 "met": verdict([(r, ">=", 3.0)]), "value": r, "goal_value": 3.0, "op": ">="})
    # 4. --codec source vs xarray + Dask lz4, and wall / I/O floor
    p, z = sec(pl, XR_THREADS), sec(pl, ZF_SOURCE)
    r = speedup(p, z)
    b = bench["source"]
    io = b["io_ratio"] if b else None
    io_text = "n/a" if io is None else f"{io:.2f}×"
    det = pair("xarray + Dask lz4", p, "zarrforge --codec source", z)
    if b and b["io_floor_s"] is not None:
        det += f"; bench wall {b['wall_s']:.2f} s / I/O floor {b['io_floor_s']:.2f} s"
    elif b:
        det += "; the bench reports no I/O floor (io_floor_s)"
    rows.append({"job": "`--codec source` (pass-through)", "versus": "vs xarray + Dask lz4",
                 "goal": "≥ 10×, and ≤ 1.2× its I/O floor", "measured": f"{fmt_x(r)}; {io_text} its I/O floor",
                 "detail": det, "met": verdict([(r, ">=", 10.0), (io, "<=", 1.2)]), "value": r, "goal_value": 10.0,
                 "op": ">=", "io_ratio": io})
    # 5. time-series vs the fastest peer, zarrforge at <= 512 MiB per rank
    z = ts.get(ZF_TS)
    peers = {k: v for k, v in ts.items() if k != ZF_TS and v["seconds"]}
    fastest = min(peers, key=lambda k: peers[k]["seconds"]) if peers else None
    r = speedup(peers[fastest]["seconds"], z["seconds"]) if fastest and z else None
    zrss = z["rss_mib"] if z else None
    det = "not measured" if r is None else (
        f"fastest peer: {fastest} {peers[fastest]['seconds']:.2f} s / zarrforge {z['seconds']:.2f} s; "
        f"zarrforge's largest rank {zrss:.0f} MiB (limit {TS_RSS_LIMIT:.0f}); peers: "
        + ", ".join(f"{k} {v['seconds']:.2f} s, {v['rss_mib']:.0f} MiB"
                    + (f" (all processes {v['all_rss_mib']:.0f} MiB)" if v.get("all_rss_mib") else "")
                    for k, v in peers.items() if v.get("rss_mib") is not None))
    rows.append({"job": TS, "versus": "vs the fastest peer (threads, distributed P2P, rechunker), at ≤ 512 MiB per rank",
                 "goal": "≥ 2.5×", "measured": fmt_x(r) + ("" if zrss is None else f" at {zrss:.0f} MiB per rank"),
                 "detail": det, "met": verdict([(r, ">=", 2.5), (zrss, "<=", TS_RSS_LIMIT)]), "value": r,
                 "goal_value": 2.5, "op": ">=", "fastest_peer": fastest})
    # 6. time-series: wall / floor
    r, det = floor_ratio(bench["timeseries"])
    rows.append({"job": TS, "versus": "wall / floor from `zarrforge bench`", "goal": "≤ 1.3×",
                 "measured": fmt_x(r), "detail": det, "met": verdict([(r, "<=", 1.3)]), "value": r,
                 "goal_value": 1.3, "op": "<="})
    # 7. S3
    p, z = sec(s3, XR_S3), sec(s3, ZF2)
    r = speedup(p, z)
    s3_bound = (s3doc or {}).get("bound") or {}
    most, line, met = reach(verdict([(r, ">=", 2.0)]), p, s3_bound.get("bound_s"), 2.0,
                            "the codec floor plus the S3 server's CPU seconds, over the cores,")
    rows.append({"job": "S3 output", "versus": "vs xarray + Dask via s3fs", "goal": "≥ 2×", "measured": fmt_x(r),
                 "detail": pair("xarray + Dask via s3fs", p, "zarrforge", z) + line, "met": met,
                 "value": r, "goal_value": 2.0, "op": ">=", "reachable": most})

    # Where it ran.
    env = topo = None
    for b in bench.values():
        for run in (b or {}).get("runs", []):
            env, topo = env or run.get("environment"), topo or run.get("topology")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=a.root).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=a.root).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    commit_text = commit + (" with uncommitted changes" if dirty else "")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    met = sum(r["met"] == "met" for r in rows)
    lines = [
        "# At the speed of the hardware",
        "",
        f"`{a.command}`: {date}, commit {commit_text}; medians of {a.runs} alternated run(s); the command took"
        f" {a.elapsed / 60:.1f} min. {met} of {len(rows)} goals met"
        + (f", {out} out of reach on these cores." if (out := sum(r["met"] == "out of reach" for r in rows)) else "."),
    ]
    if env and topo:
        lines.append("")
        lines.append(f"Machine: {topo.get('node_cores')} cores, {topo.get('node_pus')} PUs,"
                     f" {topo.get('numa_nodes')} NUMA node(s); output on {env.get('output_filesystem')};"
                     f" zarrforge {env.get('zarrforge')}, HDF5 {env.get('hdf5')}, netCDF {env.get('netcdf')},"
                     f" {env.get('mpi')}. zarrforge runs on 2 ranks (`mpirun -np 2`); the peers on the same 2 cores.")
    if a.versions:
        lines += ["", f"Peers: {a.versions}."]
    lines += [
        "",
        "| job | zarrforge vs peer | goal | measured | met | from (medians) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['job']} | {r['versus']} | {r['goal']} | {r['measured']} | {r['met']} | {r['detail']} |")
    lines += ["", "Ratios vs a peer: the peer's median wall seconds over zarrforge's (start-up included). Wall /"
              " floor: `zarrforge bench --json` (2 ranks) on the same dataset, the median over the runs of its"
              " `bound_ratio` (wall over the larger of the codec floor and the I/O floor) when the binary reports"
              " it, else `floor_ratio` (wall over the codec floor). The pass-through's I/O floor: the bench's"
              " convert seconds over its `io_floor_s` (n/a when the binary does not report it). \"at most\": the"
              " peer's time over a bound no run on these cores can beat (the codec floor; for S3 the codec"
              " floor's CPU seconds plus the S3 server's during the run, over the cores); a goal above it is"
              " out of reach here.", ""]
    lines += ["## The medians", "", "| source | measurement | median s | runs | peak RSS MiB (largest process) |"
              " all processes MiB |", "| --- | --- | --- | --- | --- | --- |"]
    for name, rs in (("peers-zstd", pz), ("peers-lz4", pl), ("timeseries-zstd", ts), ("s3-zstd", s3)):
        for label, v in rs.items():
            runs = ", ".join("%.2f" % x for x in v["runs"])
            rss = "-" if v["rss_mib"] is None else f"{v['rss_mib']:.0f}"
            all_rss = "-" if not v.get("all_rss_mib") else f"{v['all_rss_mib']:.0f}"
            lines.append(f"| [{name}]({name}.md) | {label} | {v['seconds']:.2f} | {runs} | {rss} | {all_rss} |")
    lines += ["", "`zarrforge bench --json`, 2 ranks (medians over the runs):", "",
              "| bench | wall s | codec floor s | I/O floor s | bound s | binds | wall / floor | runs (wall / floor) |"
              " peak RSS MiB |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    what = {"aligned": "zstd:3, --chunks time=24,lat=181,lon=360", "timeseries": "zstd:3, --chunks time=384,lat=19,lon=36",
            "source": "--codec source"}

    def f2(v):
        return "-" if v is None else f"{v:.2f}"
    for k, b in bench.items():
        if not b:
            lines.append(f"| {what[k]} | failed | - | - | - | - | - | - | - |")
            continue
        runs = ", ".join("failed" if "error" in r else f2(r["ratio"]) for r in b["runs"])
        lines.append(f"| {what[k]} | {f2(b['wall_s'])} | {f2(b['floor_s'])} | {f2(b['io_floor_s'])} |"
                     f" {f2(b['bound_s'])} | {b['binds'] or '-'} | {fmt_x(b['ratio'])} | {runs} |"
                     f" {'-' if b['peak_rss_mib'] is None else '%.0f' % b['peak_rss_mib']} |")
    if data.notes:
        lines += ["", "Not measured: " + "; ".join(data.notes) + "."]
    lines += ["", "![goals](hardware.svg)"]
    out = a.out
    open(out + ".md", "w").write("\n".join(lines) + "\n")
    json.dump({"date": date, "commit": commit, "dirty": bool(dirty), "command": a.command, "runs": a.runs,
               "elapsed_s": a.elapsed, "rows": rows, "medians": {"peers-zstd": pz, "peers-lz4": pl,
                                                                  "timeseries-zstd": ts, "s3-zstd": s3},
               "bench": bench, "notes": data.notes}, open(out + ".json", "w"), indent=1, default=str)
    svg(rows, out + ".svg")
    print("\n".join(lines))


SHORT = ["aligned, zstd:3: vs xarray + Dask", "aligned, zstd:3: wall / floor", "aligned, lz4: vs xarray + Dask",
         "--codec source: vs xarray + Dask lz4", "time series: vs the fastest peer", "time series: wall / floor",
         "S3: vs xarray + Dask via s3fs"]


def svg(rows, path):
    """Each goal as a bar: how far the measurement is from it (1 = just met;
    longer is better; a 'less than' goal is inverted)."""
    bars = []  # (label, value, goal, op, text)
    for short, r in zip(SHORT, rows):
        bars.append((f"{short} ({r['goal'].split(',')[0]})", r["value"], r["goal_value"], r["op"],
                     fmt_x(r["value"])))
        if "io_ratio" in r:
            bars.append(("--codec source: wall / I/O floor (≤ 1.2×)", r["io_ratio"], 1.2, "<=", fmt_x(r["io_ratio"])))
    w, bar, gap, left, top = 820, 22, 10, 330, 45
    h = top + len(bars) * (bar + gap) + 25
    vals = [None if not v else (v / g if op == ">=" else g / v) for _, v, g, op, _ in bars]
    hi = max([2.0] + [v for v in vals if v])
    scale = (w - left - 70) / hi
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           '<text x="10" y="20" font-weight="bold">At the speed of the hardware: each measurement against its goal'
           ' (the dashed line; longer is better)</text>']
    for i, ((label, _, _, _, text), v) in enumerate(zip(bars, vals)):
        y = top + i * (bar + gap)
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        if v is None:
            out.append(f'<text x="{left + 4}" y="{y + 15}">not measured</text>')
            continue
        color = "#2a7" if v >= 1 else "#c55"
        out.append(f'<rect x="{left}" y="{y}" width="{v * scale:.1f}" height="{bar}" fill="{color}"/>')
        out.append(f'<text x="{left + v * scale + 4:.1f}" y="{y + 15}">{escape(text)}</text>')
    x1 = left + scale
    out.append(f'<line x1="{x1:.1f}" y1="{top - 8}" x2="{x1:.1f}" y2="{h - 20}" stroke="#000" stroke-dasharray="4,3"/>')
    out.append(f'<text x="{x1:.1f}" y="{h - 6}" text-anchor="middle">goal</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "merge-rss":
        merge_rss(sys.argv[2])
        return
    ap = argparse.ArgumentParser(prog="bench_peers_table.py hardware")
    ap.add_argument("cmd", choices=["hardware"])
    ap.add_argument("--data-dir", required=True, help="docs/performance-data")
    ap.add_argument("--bench-dir", required=True, help="where the hw-bench-KIND-RUN.json files are")
    ap.add_argument("--out", required=True, help="output path without .md/.json/.svg")
    ap.add_argument("--since", type=float, required=True, help="epoch seconds: older JSON is not this command's")
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--elapsed", type=float, required=True, help="seconds the command took")
    ap.add_argument("--command", required=True)
    ap.add_argument("--versions", default="")
    ap.add_argument("--root", default=".")
    hardware(ap.parse_args())


if __name__ == "__main__":
    main()
