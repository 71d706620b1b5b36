#!/usr/bin/env python3
"""Run hhq's measures in DuckDB: the SQL `hhq compile --sql --extracts` prints, adapted as little
as possible, over the same Parquet extracts; write a summary.csv shaped like hhq's and timings.

  python3 bench/duckdb_suite.py --hhq BIN --data DIR --period 2025 --out OUTDIR \\
      [--threads 2] [--memory-limit 4GB] [--blocks table|view] [--compare HHQ_SUMMARY_CSV]

Every adaptation is listed (printed and in timings.json) with why DuckDB needs it.
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
    import pyarrow as pa
    import yaml
except ImportError as e:
    sys.exit(f"duckdb_suite.py: {e}. Install its dependencies, then run it with that Python:\n"
             "  python3 -m venv bench/.venv && bench/.venv/bin/pip install -r bench/requirements.txt\n"
             "  bench/.venv/bin/python bench/duckdb_suite.py ...")

ROOT = Path(__file__).resolve().parent.parent
EXTRACTS = ["claims", "contacts", "members", "enrollment"]

# Session settings that give DuckDB DataFusion's semantics (always applied).
SETTINGS = [
    ("SET integer_division = true",
     "INT / INT truncates in DataFusion (quarter = (month + 2) / 3); DuckDB's `/` is float division "
     "and CAST(2.67 AS INT) rounds, so June would fall in Q3"),
    ("SET default_null_order = 'nulls_last_on_asc_first_on_desc'",
     "DataFusion sorts like PostgreSQL (NULLs largest: last ASC, first DESC); DuckDB puts NULLs last "
     "both ways; a precaution (today's DESC sort keys are never NULL), for row_number() picks and "
     "ordered aggregates"),
]
# Functions DuckDB lacks, defined under DataFusion's name: (name, SQL, why). Listed when used.
MACROS = [
    ("to_char", "CREATE MACRO to_char(d, f) AS strftime(d, f)",
     "DataFusion's to_char(date, '%Y-%m') takes a chrono format, which is DuckDB's strftime"),
    ("hhq_age", "CREATE MACRO hhq_age(b, d) AS CAST(date_part('year', d) - date_part('year', b) AS INT) "
     "- CASE WHEN date_part('month', d) * 100 + date_part('day', d) "
     "< date_part('month', b) * 100 + date_part('day', b) THEN 1 ELSE 0 END",
     "hhq's age in whole years (src/engine/udf.rs), as the SQL it stands for"),
    ("hhq_month", "CREATE MACRO hhq_month(d) AS strftime(d, '%Y-%m')",
     "hhq's month label (src/engine/udf.rs): `2025-03`"),
    ("hhq_quarter", "CREATE MACRO hhq_quarter(d) AS strftime(d, '%Y') || 'Q' || CAST(quarter(d) AS VARCHAR)",
     "hhq's quarter label (src/engine/udf.rs): `2025Q1`"),
    ("hhq_first_id", "CREATE MACRO hhq_first_id(d, id) AS "
     "min(CASE WHEN d IS NOT NULL AND id IS NOT NULL THEN {'d': d, 'id': id} END)['id']",
     "hhq's aggregate (src/engine/pick.rs): the id of the earliest date, the least of that day's; "
     "DuckDB's minimum of a struct orders by its fields in turn"),
    ("hhq_latest_span", "CREATE MACRO hhq_latest_span(s, e, h, m, p) AS "
     "arg_min({'hhp_id': h, 'mco_id': m, 'population': p}, "
     "CASE WHEN s IS NOT NULL AND e IS NOT NULL THEN {'e': DATE '9999-12-31' - e, 's': DATE '9999-12-31' - s, "
     "'h': coalesce(h, chr(1114111)), 'm': coalesce(m, chr(1114111)), 'p': coalesce(p, chr(1114111))} END)",
     "hhq's aggregate (src/engine/pick.rs): the interval ending last, then starting last, then by "
     "partner, MCO and population, nulls last; DuckDB's arg_min with a struct key"),
    ("hhq_loop_standing", "CREATE MACRO hhq_loop_standing(a, b) AS list_filter(list(a), x -> false)",
     "hhq's aggregate (src/engine/loops.rs): the version that stands in each loop of replacements; "
     "an empty list here, since the synthetic data hold no loop (a DuckDB macro cannot walk a graph)"),
    ("make_array", "CREATE MACRO make_array(x) AS [x]",
     "DataFusion's make_array(x) is DuckDB's list literal [x] (only the one-argument form is used)"),
]
# Text rewrites, applied to every statement in order: (name, pattern, replacement, why).
REWRITES = [
    ("date_plus_months", re.compile(r"([\w.]+) \+ INTERVAL '(\d+) months?'"),
     r"CAST(\1 + INTERVAL '\2 months' AS DATE)",
     "DATE + INTERVAL is a DATE in DataFusion but a TIMESTAMP in DuckDB; cast back to DATE"),
    ("date_plus_days", re.compile(r"INTERVAL '(\d+) days?'"), r"\1",
     "DATE +/- INTERVAL 'n days' is a DATE in DataFusion but a TIMESTAMP in DuckDB, and then "
     "`s - prev_t - 1` or `first_s - (anchor - 365 days)` become interval arithmetic; "
     "DATE +/- n (days) is a DATE in DuckDB"),
    ("first_value_aggregate", re.compile(r"\bfirst_value\("), "first(",
     "DataFusion has first_value(x ORDER BY y) as an aggregate; in DuckDB first_value is a window "
     "function only and the aggregate (same NULL-respecting semantics) is first(x ORDER BY y)"),
    ("last_value_aggregate", re.compile(r"\blast_value\("), "last(",
     "as first_value: the ordered aggregate is DuckDB's last(x ORDER BY y)"),
    ("right_anti_join", re.compile(r"FROM (\w+) (\w+)\s+RIGHT ANTI JOIN (\w+) (\w+) ON"),
     r"FROM \3 \4 ANTI JOIN \1 \2 ON",
     "DuckDB has anti joins from the left only: `a RIGHT ANTI JOIN b` (rows of b matching no "
     "row of a) is its `b ANTI JOIN a`"),
]


def value_sets():
    """The value sets of measures/valuesets/*.csv: name -> (codes, prefixes), as hhq reads them
    (src/measure/valueset.rs: a code ending in `*` is a prefix)."""
    sets = {}
    for f in sorted((ROOT / "measures" / "valuesets").glob("*.csv")):
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                codes, prefixes = sets.setdefault(row["value_set"], (set(), set()))
                code = row["code"].strip()
                (prefixes.add(code[:-1]) if code.endswith("*") else codes.add(code))
    return sets


def list_lookup(m):
    """hhq_value_set_contains(list, 'name', ...) over a list: whether any element is in any of
    the sets, as src/compile/lookup.rs; in DuckDB a list_filter with the sets' IN lists."""
    column = m.group(1)
    codes, prefixes = set(), set()
    for name in re.findall(r"'(\w+)'", m.group(2)):
        codes |= set(VALUE_SETS[name][0])
        prefixes |= set(VALUE_SETS[name][1])
    quote = lambda vs: ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(vs))
    tests = [f"x IN ({quote(codes)})"] if codes else []
    for n in sorted({len(p) for p in prefixes}):
        tests.append(f"left(x, {n}) IN ({quote(p for p in prefixes if len(p) == n)})")
    return f"(len(list_filter({column}, lambda x: {' OR '.join(tests) or 'false'})) > 0)"


VALUE_SETS = value_sets()
REWRITES.append(
    ("value_set_over_list", re.compile(r"hhq_value_set_contains\((\w+)((?:, '\w+')+)\)"),
     list_lookup,
     "hhq's `any_in_value_set(list, 'set', ...)` is its lookup function over a list (any element "
     "in any of the sets), which DuckDB has not: a list_filter with the sets' codes and prefixes "
     "as IN lists"))


def episode_starts(lists, days):
    """hhq_episode_starts(dates DATE[], days INT) -> DATE[], as src/engine/udf.rs: for each date
    (the list in any order), the date of the counted episode it belongs to; in date order a date
    less than `days` after the last counted one belongs to it, the next one `days` or more after
    starts a new episode."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    if isinstance(days, pa.ChunkedArray):
        days = days.combine_chunks()
    n = days[0].as_py() if len(days) else 1
    if n is None or n <= 0:
        raise ValueError("hhq_episode_starts: days must be positive")
    offsets = lists.offsets.to_pylist()  # into the unsliced child, like `values` below
    dates = lists.values.cast(pa.int32()).to_pylist()
    out = list(dates)
    for r in range(len(lists)):
        row = dates[offsets[r]:offsets[r + 1]]
        if any(d is None for d in row):
            raise ValueError("hhq_episode_starts: a date in the list is null")
        start, starts = None, {}
        for d in sorted(set(row)):
            if start is None or d - start >= n:
                start = d
            starts[d] = start
        for k in range(offsets[r], offsets[r + 1]):
            out[k] = starts[dates[k]]
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                    pa.array(out, pa.int32()).cast(pa.date32()),
                                    mask=lists.is_null())


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
    return [s for s in out if s]


VIEW = re.compile(r"^(?:--[^\n]*\n)*CREATE VIEW (\w+) AS\b")


def compile_measure(args, mid, used):
    """hhq's script for one measure: ([(view name, statement)], final statement)."""
    cmd = [args.hhq, "compile", mid, "--sql", "--extracts", "--period", args.period,
           "--measures", str(args.measures_dir), "--queries", str(args.queries_dir)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0 and "--extracts" in p.stderr:
        # An hhq from before `--extracts`: every row is read (no row rule sets any aside).
        p = subprocess.run([c for c in cmd if c != "--extracts"], cwd=ROOT, capture_output=True, text=True)
        used["no_extract_views"] = ("this hhq lacks `compile --extracts`: each extract view is "
                                    "`SELECT * FROM <x>__all`, without hhq's row rules")
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    views, final = [], []
    for s in split_statements(p.stdout):
        m = VIEW.match(s)
        (views.append((m.group(1), s)) if m else final.append(s))
    if len(final) != 1:
        sys.exit(f"{mid}: expected one statement after the views, found {len(final)}")
    if "no_extract_views" in used and not any(v == "claims" for v, _ in views):
        views = [(x, f"CREATE VIEW {x} AS SELECT * FROM {x}__all") for x in EXTRACTS] + views
    return views, final[0]


def adapt(sql, used):
    for name, pattern, repl, why in REWRITES:
        sql, k = pattern.subn(repl, sql)
        if k:
            used[name] = why
    return sql


def parquet_source(data, name):
    d = data / name
    return f"{d}/*.parquet" if d.is_dir() else str(data / f"{name}.parquet")


# --- The result table: hhq's summary.csv from the measure's summary (src/results.rs) ----------

SCALE = {"percent": 100.0, "per_1000_member_months": 1000.0, "per_1000_members": 1000.0}


def model(doc, supplied=frozenset()):
    """What each component reports, as src/compile/mod.rs reads the measure YAML."""
    comps = doc["components"]
    skipped = {c["name"] for c in comps if c.get("needs") and c["needs"] not in supplied}
    for c in comps:  # ratios over a left-out component are left out too (one pass, as hhq)
        r = c.get("ratio")
        if r and (r["numerator"] in skipped or r["denominator"] in skipped):
            skipped.add(c["name"])
    index, outputs = {}, []
    for c in comps:
        if "numerator" in c and c["name"] not in skipped:
            # A component-level `where:` counts a subset of the events: num_i over den_i.
            index[c["name"]] = (len(index), "first" in c["numerator"],
                                doc.get("basis") == "events" and c.get("where") is not None)
    kind = {c["name"]: c for c in comps}

    def source(name):
        c = kind[name]
        if "denominator" in c:
            return ("den",)
        if "enrollees" in c:
            return ("out",) if (c["enrollees"] or {}).get("outliers") else ("enr",)
        return ("num", index[name][0])

    for c in comps:
        if c["name"] in skipped:
            continue
        if "numerator" in c:
            i, first, subset = index[c["name"]]
            out = ("median", i) if first else ("rate", ("num", i), ("sub", i) if subset else ("den",))
        elif "ratio" in c:
            out = ("rate", source(c["ratio"]["numerator"]), source(c["ratio"]["denominator"]))
        elif "denominator" in c:
            out = ("rate", ("den",), ("den",))
        else:
            e = ("out",) if (c["enrollees"] or {}).get("outliers") else ("enr",)
            out = ("rate", e, ("enr",))
        outputs.append((c["name"], c["unit"], out))
    population = any("enrollees" in c for c in comps)
    return index, outputs, population


def population_sql(doc, summary, ctes, start, end):
    """hhq's population query (src/compile/mod.rs `population_sql`), which `hhq compile` does not
    print: members of the programme in the period with enrollee and outlier counts by stratum.
    Its strata CASEs and age bands are taken from the compiled statement."""
    strat = re.search(r"SELECT (.*) AS stratifier,\n\s*(.*) AS stratum,", summary)
    sets = re.search(r"GROUP BY GROUPING SETS \((.*)\)\nORDER BY", summary).group(1)
    band = re.search(r"SELECT \*, (CASE WHEN age IS NULL THEN 'unknown'.*?) AS age_band FROM \(", ctes).group(1)
    program = {"medicaid": "medicaid_enrollment"}.get((doc.get("enrollment") or {}).get("in"), "hh_enrollment")
    on = f"DATE '{end}'"
    attributes = (
        f"CAST(date_part('year', {on}) - date_part('year', p.birth_date) AS INT) - CASE WHEN date_part('month', {on}) * 100 + date_part('day', {on}) < date_part('month', p.birth_date) * 100 + date_part('day', p.birth_date) THEN 1 ELSE 0 END AS age,\n"
        "coalesce(p.sex, 'unknown') AS sex, coalesce(p.race, 'unknown') AS race, coalesce(p.ethnicity, 'unknown') AS ethnicity,\n"
        "coalesce(p.county_fips, 'unknown') AS county,\n"
        "CASE WHEN p.rural IS NULL THEN 'unknown' WHEN p.rural THEN 'rural' ELSE 'urban' END AS rural,\n"
        f"to_char({on}, '%Y-%m') AS month,\n"
        f"to_char({on}, '%Y') || 'Q' || CAST((date_part('month', {on}) + 2) / 3 AS INT) AS quarter")
    return f"""WITH spans AS (
  SELECT c.*, row_number() OVER (PARTITION BY c.member_id ORDER BY c.end_date DESC, c.start_date DESC, c.hhp_id, c.mco_id, c.population) AS pick
  FROM {program} c WHERE c.start_date <= {on} AND c.end_date >= DATE '{start}'
),
people AS (
  SELECT *, {band} AS age_band FROM (
    SELECT s.member_id, coalesce(s.mco_id, 'FFS') AS mco, coalesce(s.hhp_id, 'none') AS hhp,
      coalesce(s.population, 'unknown') AS population,
      {attributes}
    FROM spans s LEFT JOIN members p ON p.member_id = s.member_id WHERE s.pick = 1
  )
)
SELECT {strat.group(1)} AS stratifier,
  {strat.group(2)} AS stratum,
  count(*) AS enrollees, sum(CASE WHEN o.member_id IS NULL THEN 0 ELSE 1 END) AS outliers
FROM people u LEFT JOIN (SELECT DISTINCT member_id FROM detail WHERE exclusion = 'outlier') o ON o.member_id = u.member_id
WHERE u.age_band IS NOT NULL
GROUP BY GROUPING SETS ({sets})
ORDER BY stratifier, stratum"""


def result_rows(mid, doc, start, end, summary, population):
    """src/results.rs `from_batches`: one row per component and stratum, every age band and the
    total present, sorted as hhq sorts."""
    index, outputs, _ = model(doc)
    n = len(index)
    strata = {}
    blank = lambda: {"den": 0.0, "num": [0.0] * n, "sub": [0.0] * n, "med": [None] * n, "enr": 0.0, "out": 0.0}
    num = lambda v: 0.0 if v is None else float(v)
    for r in summary:
        s = strata.setdefault((r["stratifier"], r["stratum"]), blank())
        s["den"] = num(r["denominator"])
        for i in range(n):
            s["num"][i] = num(r[f"num_{i}"])
            s["sub"][i] = num(r.get(f"den_{i}"))
            s["med"][i] = None if r.get(f"median_{i}") is None else float(r[f"median_{i}"])
    for r in population:
        s = strata.setdefault((r["stratifier"], r["stratum"]), blank())
        s["enr"], s["out"] = num(r["enrollees"]), num(r["outliers"])
    bands = list(doc.get("age_bands") or [])
    if "age_band" in (doc.get("stratify") or []):
        for b in bands:
            strata.setdefault(("age_band", b), blank())
    strata.setdefault(("total", "total"), blank())
    value = lambda s, src: s[src[0]] if len(src) == 1 else s[src[0]][src[1]]
    rows = []
    for (stratifier, stratum), s in strata.items():
        for ci, (name, unit, out) in enumerate(outputs):
            if out[0] == "median":
                numerator, denominator, rate = s["num"][out[1]], s["den"], s["med"][out[1]]
            else:
                numerator, denominator = value(s, out[1]), value(s, out[2])
                rate = numerator if unit == "count" else (
                    numerator / denominator * SCALE.get(unit, 1.0) if denominator > 0 else None)
            rank = {"total": 0, "age_band": 1, "mco": 2, "hhp": 3, "population": 4}.get(stratifier, 5)
            band = bands.index(stratum) if stratifier == "age_band" and stratum in bands else len(bands)
            key = (mid, ci, name, start, end, rank, stratifier, band if stratifier == "age_band" else 0, stratum)
            rows.append((key, [mid, name, start, end, stratifier, stratum, numerator, denominator, rate, unit]))
    return [r for _, r in sorted(rows, key=lambda kv: kv[0])]


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
    lines = [HEADER] + [",".join([csv_field(r[0]), csv_field(r[1]), r[2], r[3], csv_field(r[4]), csv_field(r[5]),
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
    docs = {}
    for f in sorted(args.measures_dir.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        if isinstance(doc, dict) and "id" in doc and "components" in doc:
            docs[doc["id"]] = doc
    used, views, finals = {}, None, {}
    for mid in sorted(docs):
        v, finals[mid] = compile_measure(args, mid, used)
        if views is None:
            views = v
        elif v != views:
            sys.exit(f"{mid}: its extract and building-block views differ from {sorted(docs)[0]}'s")
    views = [(name, adapt(sql, used)) for name, sql in views]
    plans = {}
    for mid, stmt in finals.items():
        stmt = adapt(stmt, used)
        period = re.search(r", period (\d{4}-\d\d-\d\d)\.\.(\d{4}-\d\d-\d\d),", stmt)
        if not period:
            sys.exit(f"{mid}: no `-- {mid} ..., period START..END, ...` header in hhq's SQL")
        # The statement is the detail's CTEs followed by the aggregate over `detail`.
        cut = stmt.rindex("\nSELECT ")
        ctes, summary = stmt[:cut], stmt[cut + 1:]
        pop = population_sql(docs[mid], summary, ctes, *period.groups()) if model(docs[mid])[2] else None
        plans[mid] = (stmt, ctes, summary, pop, period.groups())
    if any(p[3] for p in plans.values()):
        used["population_query"] = ("hhq runs a population query (enrollees, outliers) over the "
                                    "materialised detail that `compile` does not print; rebuilt from "
                                    "src/compile/mod.rs, and the detail is kept in a temp table for it")
    sql_text = "\n".join(s for _, s in views) + "\n".join(p[0] + (p[3] or "") for p in plans.values())
    for name, _, why in MACROS:
        if re.search(rf"\b{name}\(", sql_text):
            used[name] = why
    block_names = [n for n, _ in views if n not in EXTRACTS]
    # The blocks measures read directly (as hhq's Measure::blocks), comments aside.
    code = [re.sub(r"--[^\n]*", "", p[0]) for p in plans.values()]
    read = [n for n in block_names if any(re.search(rf"\b{n}\b", c) for c in code)]
    # And those marked `-- hhq: keep`, which hhq computes once per run however many blocks read
    # them (superseded_claims, claim_substance_dx): as views DuckDB would compute them in each.
    read += [n for n, sql in views if n in block_names and n not in read
             and re.search(r"^--\s*hhq:\s*keep\b", sql, re.M)]

    # 2. DuckDB: sources, semantics, views (blocks materialised when asked), then each measure.
    t0 = time.perf_counter()
    config = {"threads": args.threads}
    if args.memory_limit:
        config["memory_limit"] = args.memory_limit
    con = duckdb.connect(config=config)
    for sql, _ in SETTINGS:
        con.execute(sql)
    for name, sql, _ in MACROS:
        con.execute(sql)
    con.create_function("hhq_episode_starts", episode_starts, [duckdb.sqltype("DATE[]"), duckdb.sqltype("INTEGER")],
                        duckdb.sqltype("DATE[]"), type="arrow")
    # hhq registers an empty risk-weight table when none is supplied (src/engine/mod.rs).
    con.execute("CREATE TABLE risk_weights (variable VARCHAR, value VARCHAR, weight DOUBLE)")
    for x in EXTRACTS:
        con.execute(f"CREATE VIEW {x}__all AS SELECT * FROM read_parquet('{parquet_source(args.data.resolve(), x)}')")
    for name, sql in views:
        if args.blocks == "table" and name in read:
            sql = VIEW.sub(lambda m: m.group(0).replace("CREATE VIEW", "CREATE TEMP TABLE"), sql)
        con.execute(sql)
    setup_s = time.perf_counter() - t0

    timings, results = {}, {}
    for mid, (stmt, ctes, summary, pop, (start, end)) in plans.items():
        t = time.perf_counter()
        # As hhq: the member-level detail once, every column of it (hhq writes it), then the
        # aggregate and any population query over it. Run as one aggregate statement, DuckDB
        # would skip the detail columns the summary does not read (evidence ids, labels).
        con.execute(f"CREATE TEMP TABLE detail AS {ctes}\nSELECT * FROM detail")
        res = []
        for q in (summary,) if pop is None else (summary, pop):
            cur = con.execute(q)
            names = [d[0] for d in cur.description]
            res.append([dict(zip(names, r)) for r in cur.fetchall()])
        con.execute("DROP TABLE detail")
        summary_rows, pop_rows = res[0], res[1] if pop is not None else []
        timings[mid] = time.perf_counter() - t
        results[mid] = (summary_rows, pop_rows)
    total_s = time.perf_counter() - t0
    rows = [r for mid, (stmt, ctes, summary, pop, (start, end)) in plans.items()
            for r in result_rows(mid, docs[mid], start, end, *results[mid])]

    # 3. Outputs.
    args.out.mkdir(parents=True, exist_ok=True)
    write_summary(args.out / "summary.csv", rows)
    adaptations = [f"setting: {s}: {why}" for s, why in SETTINGS] + [f"{k}: {v}" for k, v in used.items()]
    adaptations.append("hhq_episode_starts: hhq's one UDF, as a DuckDB arrow UDF (src/engine/udf.rs)")
    (args.out / "timings.json").write_text(json.dumps({
        "setup_s": round(setup_s, 4), "measures": {k: round(v, 4) for k, v in timings.items()},
        "total_s": round(total_s, 4), "threads": args.threads, "blocks": args.blocks,
        "materialised": read if args.blocks == "table" else [],
        "duckdb_version": duckdb.__version__, "adaptations": adaptations}, indent=2) + "\n")
    print("adaptations:", *adaptations, sep="\n  ", file=sys.stderr)
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
