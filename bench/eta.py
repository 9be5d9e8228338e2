"""How well the nominal cost model (``atlas.pipeline.estimate.relative_cost``, which orders the workers'
queue, balances shards and gives the workers' bar its time left) matches the seconds a build took.

    python bench/eta.py --store /tmp/demo/store [--preset demo]

Reads the store's ledger (every batch's seconds and job keys) and the preset's plan, and prints JSON: per
(method, target kind) the jobs, their measured seconds, their nominal seconds and the ratio of the two. A
cost model that is right up to the machine's speed gives the same ratio on every row; a row above the
others is charged too little (its jobs take longer than the bar expects), a row below too much.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit  # noqa: E402

from atlas.config import PRESETS  # noqa: E402
from atlas.pipeline.estimate import relative_cost  # noqa: E402
from atlas.pipeline.planner import make_plan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--preset", default="demo")
    args = ap.parse_args()
    jobs = {j.key: j for j in make_plan(PRESETS.get(args.preset)()).jobs}
    rows = collections.defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "nominal": 0.0})
    for path in sorted((Path(args.store) / "ledger").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            keys = [k for k in record.get("keys", []) if k in jobs]
            if not keys or not isinstance(record.get("seconds"), (int, float)):
                continue
            first = jobs[keys[0]]
            row = rows[f"{first.method} {first.target.kind}"]
            row["jobs"] += len(keys)
            row["seconds"] += record["seconds"]
            row["nominal"] += relative_cost([jobs[k] for k in keys])
    total_s = sum(r["seconds"] for r in rows.values())
    total_n = sum(r["nominal"] for r in rows.values())
    out = {name: {**{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()},
                  "measured_over_nominal": round(r["seconds"] / r["nominal"], 2) if r["nominal"] else None}
           for name, r in sorted(rows.items())}
    emit({"benchmark": "eta", "store": args.store, "preset": args.preset, "rows": out,
          "total": {"seconds": round(total_s, 1), "nominal": round(total_n, 1),
                    "measured_over_nominal": round(total_s / total_n, 2) if total_n else None}})


if __name__ == "__main__":
    main()
