#!/usr/bin/env python3
"""hhq at scale: the full measure suite, a rerun after one measure changes, and the state report
at three sizes, against DuckDB running the same SQL and against the scan floor, on the same
Parquet files.

    bench/scale.py [--sizes 10000,100000,1000000] [--no-duckdb] [--record]

For each size (members; one year of claims, 2025) it generates the extracts once with
`hhq synth` (kept under --data-root for reruns), then times, each as its own process under
GNU time (wall time and peak resident memory), with a run cache of its own (HHQ_CACHE_DIR,
emptied first):

  run      `hhq run --timings` with the cache empty: open and check the extracts, the
           data-quality profile, every shipped measure with every stratum, writing the result
           table and member detail (and keeping all of it in the cache)
  run (no cache)  the same with `--no-cache`: what the cache costs a first run
  rerun    `hhq run` again after one measure's rule changed (FUH-HH's continuous enrolment
           allows one gap): what an analyst editing a measure waits for
  report after run  `hhq report state --quarter 2025Q4` with the cache the runs left: the
           same measures for two years (one of them the run's) and three views, charts,
           HTML and PDF
  report   the same with `--no-cache`
  scan     `hhq scan`: reading just the columns the measures read (the floor)
  duckdb   bench/duckdb_suite.py: DuckDB (Python) running `hhq compile --sql --extracts` for
           every measure, its results compared with hhq's summary.csv

and prints one table with rows per second and the ratios the targets are stated in. With
--record the figures are appended to bench/results.csv (one row per size and run, with the
commit and the machine). See docs/benchmarks.md.

Environment: HHQ (binary; default $CARGO_TARGET_DIR/release/hhq, else target/release/hhq).
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"


def hhq_binary():
    if os.environ.get("HHQ"):
        return Path(os.environ["HHQ"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "hhq"


def timed(cmd, log, env=None):
    """Run cmd under GNU time; return (wall seconds, peak RSS MiB, stdout, stderr)."""
    started = time.monotonic()
    with open(log, "w") as err:
        proc = subprocess.run(
            ["/usr/bin/time", "-v", *map(str, cmd)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
        )
    wall = time.monotonic() - started
    stderr = Path(log).read_text()
    if proc.returncode != 0:
        tail = "\n".join(stderr.splitlines()[-15:])
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return wall, int(rss.group(1)) / 1024 if rss else float("nan"), proc.stdout, stderr


def duckdb_python():
    """The venv's python with duckdb installed (made on first use)."""
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {VENV} with duckdb ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    probe = subprocess.run([py, "-c", "import duckdb"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "-r", ROOT / "bench" / "requirements.txt"],
            check=True,
        )
    return py


def stages(stderr):
    """The `--timings` lines of hhq run: {stage: seconds}."""
    out = {}
    block = stderr.split("timings:\n", 1)
    if len(block) < 2:
        return out
    for line in block[1].splitlines():
        m = re.match(r"\s*([\d.]+) s  (.+)$", line)
        if not m:
            break
        out[m.group(2)] = float(m.group(1))
    return out


def rows_in(stderr):
    """Rows per extract from hhq run's `extracts:` line."""
    m = re.search(r"^extracts: (.+)$", stderr, re.M)
    return {name: int(n) for name, n in re.findall(r"(\w+) (\d+) rows", m.group(1))} if m else {}


def bench_size(hhq, members, args, results):
    data = Path(args.data_root) / f"m{members}"
    work = Path(args.work_root) / f"m{members}"
    work.mkdir(parents=True, exist_ok=True)
    if not (data / "claims.parquet").exists():
        print(f"[{members}] generating extracts into {data} ...", file=sys.stderr)
        wall, _, _, _ = timed(
            [hhq, "synth", "--members", members, "--seed", "1", "--start-year", "2025",
             "--years", "1", "--out", data],
            work / "synth.log",
        )
        print(f"[{members}] generated in {wall:.1f} s", file=sys.stderr)
    size_mb = sum(f.stat().st_size for f in data.rglob("*.parquet")) / 2**20
    row = {"members": members, "parquet_mib": round(size_mb, 1)}

    # A run cache of this size's own, empty; a copy of the library whose FUH-HH is then edited.
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {"HHQ_CACHE_DIR": str(cache)}
    library = work / "library"
    shutil.rmtree(library, ignore_errors=True)
    subprocess.run([hhq, "library", "--out", library], check=True, capture_output=True,
                   env={**os.environ, **env})
    measures = library / "measures"
    definitions = ["--measures", measures, "--queries", library / "queries"]

    print(f"[{members}] hhq run (no cache) ...", file=sys.stderr)
    wall, rss, _, _ = timed(
        [hhq, "run", "--data", data, "--period", "2025", "--out", work / "run-plain",
         "--no-cache", *definitions],
        work / "run-plain.log", env,
    )
    row.update(run_nocache_s=round(wall, 2), run_nocache_rss_mib=round(rss))

    print(f"[{members}] hhq run ...", file=sys.stderr)
    wall, rss, _, err = timed(
        [hhq, "run", "--data", data, "--period", "2025", "--out", work / "run", "--timings",
         *definitions],
        work / "run.log", env,
    )
    st = stages(err)
    rows = rows_in(err)
    total_rows = sum(rows.values())
    # The work DuckDB does too: blocks (superseded_claims among them, kept for the run before
    # the cut-off), each measure's detail and its summary rows.
    # Measures run side by side: their wall time together ("measures"), not the sum of each's.
    compute = (
        st.get("building blocks", 0)
        + st.get("blocks kept for the run", 0)
        + st.get("measures", 0)
        + sum(v for k, v in st.items() if k.startswith("summarise "))
    )
    row.update(
        claim_lines=rows.get("claims", 0),
        input_rows=total_rows,
        run_s=round(wall, 2),
        run_rss_mib=round(rss),
        run_rows_per_s=round(total_rows / wall),
        open_s=round(st.get("open extracts (schema, every page decoded, row rules)", 0), 2),
        profile_s=round(st.get("data-quality profile", 0), 2),
        measures_s=round(compute, 2),
        write_s=round(
            st.get("write outputs", 0)
            + sum(v for k, v in st.items() if k.startswith("write detail ")),
            2,
        ),
    )

    fuh = measures / "fuh-hh.yaml"
    text = fuh.read_text()
    rule = "continuous: {from: 0, to: 30, max_gaps: 0, max_gap_days: 0}"
    assert rule in text, "FUH-HH's continuous enrolment rule moved: edit bench/scale.py"
    fuh.write_text(text.replace(rule, rule.replace("max_gaps: 0, max_gap_days: 0",
                                                   "max_gaps: 1, max_gap_days: 45")))
    print(f"[{members}] hhq run after FUH-HH changed ...", file=sys.stderr)
    wall, rss, _, err = timed(
        [hhq, "run", "--data", data, "--period", "2025", "--out", work / "rerun", "--timings",
         *definitions],
        work / "rerun.log", env,
    )
    reused = re.search(r"run-measure (\d+) reused, (\d+) computed", err)
    assert reused and reused.group(2) == "1", f"the rerun computed more than FUH-HH: {reused}"
    row.update(rerun_s=round(wall, 2), rerun_rss_mib=round(rss),
               rerun_vs_run=round(wall / row["run_s"], 3))

    print(f"[{members}] hhq scan ...", file=sys.stderr)
    _, _, out, _ = timed([hhq, "scan", "--data", data, "--period", "2025"], work / "scan.log")
    floor = float(re.search(r"scan floor: \d+ rows in ([\d.]+) s", out).group(1))
    row["scan_floor_s"] = round(floor, 3)

    if not args.no_report and members <= args.report_max:
        print(f"[{members}] hhq report state after the runs ...", file=sys.stderr)
        wall, rss, _, _ = timed(
            [hhq, "report", "state", "--data", data, "--quarter", "2025Q4", "--out",
             work / "report-cached", *definitions],
            work / "report-cached.log", env,
        )
        row.update(report_after_run_s=round(wall, 2), report_after_run_rss_mib=round(rss))
        print(f"[{members}] hhq report state (no cache) ...", file=sys.stderr)
        wall, rss, _, _ = timed(
            [hhq, "report", "state", "--data", data, "--quarter", "2025Q4", "--out",
             work / "report", "--no-cache", *definitions],
            work / "report.log", env,
        )
        row.update(report_s=round(wall, 2), report_rss_mib=round(rss))

    if not args.no_duckdb:
        print(f"[{members}] duckdb ...", file=sys.stderr)
        py = duckdb_python()
        wall, rss, out, _ = timed(
            [py, ROOT / "bench" / "duckdb_suite.py", "--hhq", hhq, "--data", data,
             "--period", "2025", "--out", work / "duckdb", "--threads", str(os.cpu_count()),
             "--compare", work / "run" / "summary.csv"],
            work / "duckdb.log",
        )
        t = json.loads((work / "duckdb" / "timings.json").read_text())
        row.update(
            duckdb_s=round(t["total_s"], 2),
            duckdb_process_s=round(wall, 2),
            duckdb_rss_mib=round(rss),
            duckdb_version=t.get("duckdb_version", ""),
            results_match="yes",
        )
        row["hhq_vs_duckdb"] = round(row["measures_s"] / t["total_s"], 2)
    row["run_vs_floor"] = round(row["run_s"] / floor, 1)
    row["measures_vs_floor"] = round(row["measures_s"] / floor, 1)
    results.append(row)
    return row


def show(results):
    cols = [
        ("members", "members"), ("claim_lines", "claim lines"), ("parquet_mib", "MiB"),
        ("run_s", "run s"), ("run_rss_mib", "run RSS MiB"), ("run_rows_per_s", "rows/s"),
        ("run_nocache_s", "run (no cache) s"), ("rerun_s", "rerun s"),
        ("rerun_vs_run", "rerun/run"), ("rerun_rss_mib", "rerun RSS"),
        ("report_after_run_s", "report after run s"),
        ("report_after_run_rss_mib", "report after run RSS"),
        ("open_s", "open s"), ("profile_s", "profile s"), ("measures_s", "measures s"),
        ("write_s", "write s"), ("report_s", "report s"), ("report_rss_mib", "report RSS"),
        ("scan_floor_s", "floor s"), ("duckdb_s", "duckdb s"), ("duckdb_rss_mib", "duckdb RSS"),
        ("hhq_vs_duckdb", "measures/duckdb"), ("run_vs_floor", "run/floor"),
        ("measures_vs_floor", "measures/floor"),
    ]
    cols = [(k, h) for k, h in cols if any(k in r for r in results)]
    table = [[h for _, h in cols]] + [[str(r.get(k, "")) for k, _ in cols] for r in results]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    for line in table:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))


def record(results, hhq):
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    machine = f"{platform.machine()} {os.cpu_count()} cores {mem_gib()} GiB"
    path = ROOT / "bench" / "results.csv"
    fields = ["date", "commit", "machine"] + sorted({k for r in results for k in r})
    old = list(csv.DictReader(path.open())) if path.exists() else []
    for r in results:
        old.append({"date": datetime.date.today().isoformat(),
                    "commit": commit + ("+dirty" if dirty else ""), "machine": machine, **r})
    fields = list(dict.fromkeys([*fields, *(k for r in old for k in r)]))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(old)
    print(f"recorded in {path.relative_to(ROOT)}", file=sys.stderr)


def mem_gib():
    with open("/proc/meminfo") as f:
        kib = int(f.readline().split()[1])
    return round(kib / 2**20)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--data-root", default="/tmp/hhq-bench/data")
    p.add_argument("--work-root", default="/tmp/hhq-bench/work")
    p.add_argument("--no-duckdb", action="store_true")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--report-max", type=int, default=1_000_000,
                   help="time the report only up to this many members (default: every size; "
                        "the report runs in member passes as the run does)")
    p.add_argument("--record", action="store_true", help="append the figures to bench/results.csv")
    args = p.parse_args()
    hhq = hhq_binary()
    if not hhq.exists():
        sys.exit(f"no hhq binary at {hhq}: cargo build --release first, or set HHQ")
    print(f"binary {hhq}; {os.cpu_count()} cores, {mem_gib()} GiB", file=sys.stderr)
    results = []
    for members in [int(s) for s in args.sizes.split(",")]:
        bench_size(hhq, members, args, results)
        show(results)
    if args.record:
        record(results, hhq)


if __name__ == "__main__":
    main()
