#!/usr/bin/env python3
"""dashboardcheck.py: the Grafana dashboard queries only metrics and labels the worker exports.

usage: dashboardcheck.py DASHBOARD.json worker/pipeline.c
Metric names and types come from declare_metrics() in pipeline.c, label names from the label
strings it formats; pod and namespace are added by Prometheus. Every declared metric must have
a panel, and histogram suffixes (_bucket, _sum, _count) go only with histograms.
"""

import json
import re
import sys

SCRAPE_LABELS = {"pod", "namespace", "instance", "job", "container", "service"}


def main():
    dash_path, pipeline_c = sys.argv[1], sys.argv[2]
    with open(pipeline_c, encoding="utf-8") as f:
        src = f.read()
    declared = dict(re.findall(r'\{"(iw_[a-z_]+)",\s*IW_(COUNTER|GAUGE|HISTOGRAM)', src))
    labels = set(re.findall(r'([a-z_]+)=\\"', src)) | {"le"} | SCRAPE_LABELS
    with open(dash_path, encoding="utf-8") as f:
        dash = json.load(f)

    exprs, ids, problems = [], set(), []
    for p in dash.get("panels", []):
        if p.get("id") in ids:
            problems.append(f"panel id {p.get('id')} repeats")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            problems.append(f"panel {p.get('title')} has no gridPos")
        for t in p.get("targets", []):
            exprs.append((p.get("title"), t.get("expr", ""), t.get("legendFormat", "")))
    used = set()
    for title, expr, legend in exprs:
        for m in re.findall(r"\b(iw_[a-z_]+)", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            if m in declared:
                used.add(m)
            elif base in declared and declared[base] == "HISTOGRAM":
                used.add(base)
            else:
                problems.append(f"{title}: {m} is not a metric of pipeline.c")
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for lab in (x.strip() for x in group.split(",")):
                if lab and lab not in labels:
                    problems.append(f"{title}: label {lab} is not exported")
        for lab in re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", legend):
            if lab not in labels:
                problems.append(f"{title}: legend label {lab} is not exported")
    missing = sorted(set(declared) - used)
    if missing:
        problems.append("metrics without a panel: " + ", ".join(missing))
    if not declared:
        problems.append(f"no metric declarations found in {pipeline_c}")
    if problems:
        print("FAIL dashboard: " + "; ".join(problems))
        return 1
    print(f"ok   dashboard: {len(exprs)} queries over all {len(declared)} metrics of pipeline.c, "
          f"labels {', '.join(sorted(labels - SCRAPE_LABELS))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
