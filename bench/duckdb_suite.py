#!/usr/bin/env python3
"""Run hhq's measures in DuckDB: the script `hhq compile --sql --extracts` prints for each (DuckDB's
dialect, hhq's functions as macros), over the same Parquet extracts; write the summary.csv the
scripts give and timings.

  python3 bench/duckdb_suite.py --hhq BIN --data DIR --period 2025 --out OUTDIR \\
      [--threads 2] [--memory-limit 4GB] [--blocks table|view] [--compare HHQ_SUMMARY_CSV]

The scripts are run as written, but timed as hhq computes: the settings, macros, extract views
and building blocks once (the blocks a measure reads computed once as tables, as hhq run does),
then each measure's detail and summary.
"""
import argparse
import csv
import json
import math
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

try:
    import duckdb
except ImportError as e:
    sys.exit(f"duckdb_suite.py: {e}. Install its dependencies, then run it with that Python:\n"
             "  python3 -m venv bench/.venv && bench/.venv/bin/pip install -r bench/requirements.txt\n"
             "  bench/.venv/bin/python bench/duckdb_suite.py ...")

ROOT = Path(__file__).resolve().parent.parent
EXTRACTS = ["claims", "contacts", "members", "enrollment"]


def split_statements(script):
    """Split SQL on `;` outside quotes and `--` comments."""
    out, cur, i, n = [], [], 0, len(script)
    while i < n:
        ch = script[i]
        if ch in "'\"":
            j = script.index(ch, i + 1)
            while j + 1 < n and script[j + 1] == ch:  # doubled quote inside
                j = script.index(ch, j + 2)
            cur.append(script[i:j + 1])
            i = j + 1
        elif script.startswith("--", i):
            j = script.find("\n", i)
            j = n if j < 0 else j
            cur.append(script[i:j])
            i = j
        elif ch == ";":
            out.append("".join(cur).strip())
            cur, i = [], i + 1
        else:
            cur.append(ch)
            i += 1
    rest = "".join(cur).strip()
    if re.sub(r"--[^\n]*", "", rest).strip():
        out.append(rest)
    return [s for s in out if re.sub(r"--[^\n]*", "", s).strip()]


LEAD = r"^(?:\s*--[^\n]*\n)*\s*"
VIEW = re.compile(LEAD + r"CREATE OR REPLACE TEMP VIEW (\w+) AS\b")
MACRO = re.compile(LEAD + r"CREATE OR REPLACE TEMP MACRO (\w+)")
DETAIL = re.compile(LEAD + r"CREATE OR REPLACE TEMP TABLE hhq_detail AS\b")


def compile_measure(args, mid):
    """hhq's script for one measure, in parts: (settings, macros {name: sql}, views [(name, sql)],
    other setup, detail statement, summary statement)."""
    cmd = [args.hhq, "compile", mid, "--sql", "--extracts", "--period", args.period,
           "--data", str(args.data), "--measures", str(args.measures_dir), "--queries", str(args.queries_dir)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0 and "is not reportable for" in p.stderr:
        # A measure whose look-back or follow-up the data do not cover: hhq run leaves it out.
        print(f"duckdb: {mid} left out, as hhq run leaves it: {p.stderr.strip()}", file=sys.stderr)
        return None
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    settings, macros, views, setup, detail = [], {}, [], [], None
    statements = split_statements(p.stdout)
    for s in statements[:-1]:
        body = re.sub(r"^(?:\s*--[^\n]*\n)*\s*", "", s)
        if body.startswith("SET "):
            settings.append(body)
        elif m := MACRO.match(s):
            macros.setdefault(m.group(1), []).append(body)
        elif m := VIEW.match(s):
            views.append((m.group(1), s))
        elif DETAIL.match(s):
            detail = s
        else:
            setup.append(s)
    if detail is None:
        sys.exit(f"{mid}: no `CREATE OR REPLACE TEMP TABLE hhq_detail` in hhq's script")
    return settings, macros, views, setup, detail, statements[-1]


def rust_f64(x):
    """A number as Rust's `{}` prints an f64: shortest round-trip digits, never an exponent."""
    if x is None:
        return ""
    if math.isnan(x) or math.isinf(x):
        return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == int(x):
        return ("-" if str(x).startswith("-") else "") + str(abs(int(x)))
    r = repr(x)
    return format(Decimal(r), "f") if "e" in r else r


def csv_field(s):
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s


HEADER = "measure,component,period_start,period_end,stratifier,stratum,numerator,denominator,rate,unit"


def write_summary(path, rows):
    lines = [HEADER] + [",".join([csv_field(r[0]), csv_field(r[1]), str(r[2]), str(r[3]), csv_field(r[4]), csv_field(r[5]),
                                  rust_f64(r[6]), rust_f64(r[7]), rust_f64(r[8]), csv_field(r[9])]) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def compare(ours, theirs):
    """Rows differing between two summary.csv files (numbers within 1e-9 relative)."""
    def load(p):
        with open(p, newline="") as f:
            return {tuple(r[k] for k in HEADER.split(",")[:6]): r for r in csv.DictReader(f)}
    a, b = load(ours), load(theirs)
    close = lambda x, y: x == y or (x != "" and y != "" and abs(float(x) - float(y)) <= 1e-9 * max(abs(float(x)), abs(float(y))))
    diffs = []
    for k in sorted(set(a) | set(b)):
        ra, rb = a.get(k), b.get(k)
        if ra is None or rb is None:
            diffs.append(f"{','.join(k)}: only in {'hhq' if ra is None else 'duckdb'}")
        elif ra["unit"] != rb["unit"] or not all(close(ra[c], rb[c]) for c in ("numerator", "denominator", "rate")):
            fmt = lambda r: f"{r['numerator']}/{r['denominator']} rate {r['rate'] or '-'} {r['unit']}"
            diffs.append(f"{','.join(k)}: duckdb {fmt(ra)}, hhq {fmt(rb)}")
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hhq", required=True, help="the hhq binary (its `compile` prints the SQL)")
    ap.add_argument("--data", required=True, type=Path, help="directory of the four Parquet extracts")
    ap.add_argument("--period", default="2025")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", help="DuckDB memory_limit (default: DuckDB's own)")
    ap.add_argument("--blocks", choices=["table", "view"], default="table",
                    help="table: compute each building block a measure reads, and each marked "
                         "`hhq: keep`, once, in setup, as hhq run does (Engine::materialize); "
                         "view: leave every block a view")
    ap.add_argument("--measures-dir", type=Path, default=Path("measures"))
    ap.add_argument("--queries-dir", type=Path, default=Path("queries"))
    ap.add_argument("--compare", type=Path, help="hhq's summary.csv to check the results against")
    args = ap.parse_args()
    args.measures_dir, args.queries_dir = args.measures_dir.resolve(), args.queries_dir.resolve()
    args.hhq = str(Path(args.hhq).resolve())

    # 1. All SQL, before any timing.
    ids = []
    for f in sorted(args.measures_dir.glob("*.yaml")):
        m = re.search(r"^id:\s*([\w-]+)\s*$", f.read_text(), re.M)
        if m and re.search(r"^components:", f.read_text(), re.M):
            ids.append(m.group(1))
    settings, macros, views, setup, plans = None, {}, None, None, {}
    for mid in sorted(ids):
        compiled = compile_measure(args, mid)
        if compiled is None:
            continue
        st, mac, v, su, detail, summary = compiled
        if views is None:
            settings, views, setup = st, v, su
        elif v != views:
            sys.exit(f"{mid}: its extract and building-block views differ from the first measure's")
        macros.update(mac)
        plans[mid] = (detail, summary)
    block_names = [n for n, _ in views if n not in EXTRACTS and not n.endswith("__all")]
    # The blocks measures read directly (as hhq's Measure::blocks), comments aside.
    code = [re.sub(r"--[^\n]*", "", d) for d, _ in plans.values()]
    read = [n for n in block_names if any(re.search(rf"\b{n}\b", c) for c in code)]
    # And those marked `-- hhq: keep`, which hhq computes once per run however many blocks read
    # them (superseded_claims, claim_substance_dx): as views DuckDB would compute them in each.
    read += [n for n, sql in views if n in block_names and n not in read
             and re.search(r"^--\s*hhq:\s*keep\b", sql, re.M)]

    # 2. DuckDB: settings, macros, extract views and blocks (materialised when asked), then each
    # measure: its detail made whole (every column, as hhq writes it), then its summary.
    t0 = time.perf_counter()
    config = {"threads": args.threads}
    if args.memory_limit:
        config["memory_limit"] = args.memory_limit
    con = duckdb.connect(config=config)
    for sql in settings + [m for ms in macros.values() for m in ms] + setup:
        con.execute(sql)
    for name, sql in views:
        if args.blocks == "table" and name in read:
            sql = VIEW.sub(lambda m: m.group(0).replace("TEMP VIEW", "TEMP TABLE"), sql)
        try:
            con.execute(sql)
        except duckdb.Error as e:
            sys.exit(f"duckdb: building block {name}: {e}")
    setup_s = time.perf_counter() - t0

    timings, rows, header = {}, [], None
    for mid, (detail, summary) in plans.items():
        t = time.perf_counter()
        try:
            con.execute(detail)
        except duckdb.Error as e:
            sys.exit(f"duckdb: {mid}'s detail: {e}")
        cur = con.execute(summary)
        header = [d[0] for d in cur.description]
        rows += cur.fetchall()
        con.execute("DROP TABLE hhq_detail")
        timings[mid] = time.perf_counter() - t
    total_s = time.perf_counter() - t0

    # 3. Outputs.
    if header is not None and ",".join(header) != HEADER:
        sys.exit(f"the scripts' summary columns are {header}, not {HEADER}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_summary(args.out / "summary.csv", rows)
    (args.out / "timings.json").write_text(json.dumps({
        "setup_s": round(setup_s, 4), "measures": {k: round(v, 4) for k, v in timings.items()},
        "total_s": round(total_s, 4), "threads": args.threads, "blocks": args.blocks,
        "materialised": read if args.blocks == "table" else [],
        "duckdb_version": duckdb.__version__, "macros": sorted(macros)}, indent=2) + "\n")
    print(f"duckdb: {len(timings)} measures in {total_s:.2f} s (setup {setup_s:.2f} s, {args.threads} threads, "
          f"blocks as {args.blocks}s)")
    if args.compare:
        diffs = compare(args.out / "summary.csv", args.compare)
        if diffs:
            print(f"{len(diffs)} row(s) differ from {args.compare}:", *diffs[:20], sep="\n  ")
            sys.exit(1)
        print(f"same results as {args.compare} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
