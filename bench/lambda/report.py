#!/usr/bin/env python3
"""The report of bench/lambda/run.sh: its JSON lines -> tables, cost, targets.

    report.py --asl deploy/aws/cbpipe.asl.json [--smoke] RESULTS.jsonl

Lines (bench_lambda and run.sh): setup, invoke and py_invoke (one per
invocation of the function / of the Python steps, at each memory size
tried), execution and py_execution, cold, python_cold, done. Exit status 0 when every run completed and every target is met (with
--smoke: every run completed), 1 otherwise, 2 on unreadable input.

Cost of one input for each side from its own measurements (invocations,
GB-s, S3 requests by tier; state transitions from the definition for its
batches and deliveries), then scaled to 1M chargebacks (records): the
prices are AWS's published us-east-1 prices (bench/README.md cites them).
"""

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict

LAMBDA_GB_S = 0.0000166667      # x86, per GB-second
LAMBDA_REQUEST = 0.20 / 1e6     # per invocation
SFN_TRANSITION = 0.025 / 1000   # Standard workflows
S3_TIER1 = 0.005 / 1000         # PUT, COPY, POST, LIST
S3_TIER2 = 0.0004 / 1000        # GET, HEAD
SQS_REQUEST = 0.40 / 1e6        # standard queue
# The other AWS calls (DynamoDB, SNS, StartExecution), each priced as a
# DynamoDB on-demand write: an upper bound (a read is $0.125 per 1M, an SNS
# publish $0.50, StartExecution is billed as transitions).
OTHER_CALL = 0.625 / 1e6
# Per input: S3's SendMessage of the event, the event source mapping's
# ReceiveMessage and DeleteMessage (empty polls of an idle queue are per
# hour, not per chargeback).
SQS_PER_INPUT = 3
# GB-s a CPU-second costs at least on Lambda: one vCPU at 1,769 MB
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
CPU_GBS_PER_CPU_S = 1769 / 1024

STEPS = ["start", "scan", "verify", "deliver", "notify", "settle"]


def transitions(asl, items):
    """State transitions of the happy path of `asl` (a States Language
    definition): every state entered from StartAt to an End, a Map's inner
    path entered items[map name] times in all (over the whole execution)."""
    def walk(machine, runs):
        states, name, n = machine["States"], machine["StartAt"], 0
        while name:
            state = states[name]
            n += runs
            if state["Type"] == "Map":
                inner = state.get("ItemProcessor") or state.get("Iterator")
                n += walk(inner, items[name])
            if state.get("End") or state["Type"] in ("Succeed", "Fail"):
                break
            name = state.get("Next")
        return n
    return walk(asl, 1)


def median(xs):
    return statistics.median(xs) if xs else float("nan")



def handler_table(w, title, invokes, executions, runs, problems, duration,
                  limit_mb=512):
    """A side's per-handler table; its smallest memory per handler and the
    completed invocations, or None when none completed."""
    if len(executions) < runs:
        problems.append(f"{title}: {runs - len(executions)} execution(s) did not complete")
    ok = [i for i in invokes if i["ok"]]
    w(f"{title}:")
    w("")
    w(f"| handler | invocations / execution | {duration} (median) | process CPU ms, init + event (median) "
      "| peak RSS MB (max) "
      "| smallest memory that completes | killed at | S3 PUT/POST/LIST / GET/HEAD per invocation | other AWS calls |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    memory = {}
    for h in STEPS:
        got = [i for i in ok if i["handler"] == h]
        if not got:
            problems.append(f"{title}: {h}: no invocation completed")
            continue
        per_exec = len(got) / max(1, len({i["execution"] for i in got}))
        killed = sorted({i["memory_mb"] for i in invokes
                         if i["handler"] == h and not i["ok"] and "ended" in i})
        memory[h] = max(i["memory_mb"] for i in got)
        limited = memory[h] > 0
        w(f"| {h} | {per_exec:g} | {median([i['ms'] for i in got]):.1f} "
          f"| {median([i.get('process_cpu_ms', float('nan')) for i in got]):.1f} "
          f"| {max(i['hwm_kb'] for i in got) / 1024:.1f} "
          f"| {str(memory[h]) + ' MB' if limited else 'unlimited (no cgroup)'} "
          f"| {', '.join(f'{k} MB' for k in killed) or '-'} "
          f"| {median([i['s3_tier1'] for i in got]):g} / {median([i['s3_tier2'] for i in got]):g} "
          f"| {median([i['api'] for i in got]):g} |")
        if limit_mb and limited and memory[h] > limit_mb:
            problems.append(f"{title}: {h} needs more than {limit_mb} MB")
    for e in [i for i in invokes if not i["ok"] and "ended" not in i]:
        problems.append(f"{title}: {e['handler']} answered an error: {e.get('error', '')[:300]}")
    w("")
    if not memory:
        return None
    return {"memory": memory, "ok": ok}


def cost(side, executions, asl, cold=None):
    """A side's figures for one input, from its own measurements (medians
    over its executions): invocations, GB-s three ways, S3 requests by
    tier, and the state transitions of its batches and deliveries.

    Each invocation is a cold start: its init (cbpipe: the handler's median
    cold start, wall and CPU, from `cold`; Python: init_ms and init_cpu_ms
    of the invocation itself) and its handler (the rest). GB-s at the
    handler's smallest memory M, rounded up to 1 ms:
    - wall: init + handler as measured here;
    - CPU: all its CPU-seconds x 1769/1024 (Lambda gives a function CPU in
      proportion to M, one vCPU at 1,769 MB: C CPU-seconds take at least
      C x 1769 / M s, C x 1.728 GB-s whatever M);
    - headline: init at its wall time here (init is not held to the CPU
      share: in Python's favour), plus the larger of the handler's wall
      time here and its CPU-bound duration on Lambda."""
    memory, ok = side["memory"], side["ok"]
    per = defaultdict(lambda: defaultdict(float))
    for i in ok:
        x = per[i["execution"]]
        m = memory[i["handler"]]
        gb = m / 1024
        cpu_ms = i.get("process_cpu_ms", 0)
        if cold is not None:  # cbpipe: ms leaves the init out
            init_ms = cold["ms"].get(i["handler"], 0)
            init_cpu = cold["cpu_ms"].get(i["handler"], 0)
            handler_ms = i["ms"]
        else:  # Python: ms is fork -> exit
            init_ms = i.get("init_ms", 0)
            init_cpu = i.get("init_cpu_ms", 0)
            handler_ms = i["ms"] - init_ms
        handler_cpu = max(0.0, cpu_ms - init_cpu)
        wall = math.ceil(init_ms + handler_ms) / 1000 * gb
        cpu = cpu_ms / 1000 * CPU_GBS_PER_CPU_S
        bound = math.ceil(init_ms + max(handler_ms, handler_cpu * 1769 / m)) / 1000 * gb
        x["gbs_wall"] += wall
        x["gbs_cpu"] += cpu
        x["gbs"] += bound
        x["cpu_s"] += i.get("process_cpu_ms", 0) / 1000
        x["invocations"] += 1
        x["tier1"] += i["s3_tier1"]
        x["tier2"] += i["s3_tier2"]
        x["api"] += i["api"]
        x["deliveries"] += i["handler"] == "deliver"
    c = {k: median([x[k] for x in per.values()]) for k in
         ("gbs_wall", "gbs_cpu", "gbs", "cpu_s", "invocations", "tier1", "tier2", "api",
          "deliveries")}
    c["invocations"] = int(c["invocations"])
    c["deliveries"] = round(c["deliveries"])
    c["batches"] = executions[0]["batches"]
    c["files"] = executions[0]["files"]
    c["transitions"] = transitions(asl, {"batches": c["batches"],
                                         "destinations": c["deliveries"]})
    c["memory"] = memory
    return c

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asl", required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("results")
    args = parser.parse_args()
    try:
        lines = [json.loads(l) for l in open(args.results) if l.strip()]
        asl = json.load(open(args.asl))
    except (OSError, ValueError) as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    by = defaultdict(list)
    for l in lines:
        by[l["kind"]].append(l)
    setup = by["setup"][0]
    done = by["done"][0] if by["done"] else {}
    problems = []

    out = []
    w = out.append
    executions, py_executions = by["execution"], by["py_execution"]
    w(f"cbpipe Lambda benchmark: {setup['records']} records "
      f"({setup['input_bytes'] / 1e6:.1f} MB CSV), {len(executions)} execution(s) of the "
      f"function, {len(py_executions)} of the Python steps, "
      f"started {setup['started']}, finished {done.get('finished', '?')}")
    w(f"load average before {setup['load_before']}, after {done.get('load_after', '?')}")
    w("")

    # --- Each side, per handler.
    cb = handler_table(w, "cbpipe (packaged function)", by["invoke"], executions,
                       setup["runs"], problems, "duration ms (event -> response)")
    py = handler_table(w, "Python (py_steps.py, boto3)", by["py_invoke"], py_executions,
                       setup["runs"], problems, "duration ms (fork -> exit, init included)",
                       limit_mb=None)
    for e, p in zip(executions, py_executions):
        for k in ("records", "accepted", "rejected", "batches", "files"):
            if p[k] != e[k]:
                problems.append(f"Python {k} {p[k]} != cbpipe's {e[k]}")
    same_bytes = None
    if executions and py_executions and "sha256" in executions[0]:
        same_bytes = executions[0]["sha256"] == py_executions[0]["sha256"]
        w(f"Same data files on both sides (sorted SHA-256 of every generated file): "
          f"{'yes' if same_bytes else 'NO'} ({len(executions[0]['sha256'])} files)")
        w("")

    # --- Cold starts.
    cold = by["cold"]
    cold_ms = {}
    py_cold = {k: median([c["ms"] for c in by["python_cold"] if c["what"] == k])
               for k in ("bare", "imports")}
    if cold:
        w("| cold start, ms | median | min | max "
          "| CPU (median) | waiting for a CPU (median) | starts |")
        w("| --- | --- | --- | --- | --- | --- | --- |")

        def row(name, cs):
            ms = [c["ms"] for c in cs]
            w(f"| {name} | {median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} "
              f"| {median([c.get('cpu_ms', 0) for c in cs]):.1f} "
              f"| {median([c.get('runq_ms', 0) for c in cs]):.1f} | {len(ms)} |")
        for h in STEPS:
            cs = [c for c in cold if c["handler"] == h and c["ok"]]
            if cs:
                cold_ms[h] = median([c["ms"] for c in cs])
                row(f"cbpipe {h} (fork of bootstrap -> first GET next)", cs)
        row("cbpipe, all handlers", [c for c in cold if c["ok"]])
        all_ms = [c["ms"] for c in cold if c["ok"]]
        if len(all_ms) < len(cold):
            problems.append(f"{len(cold) - len(all_ms)} cold start(s) did not reach next")
        for what, label in (("bare", "`python3 -c pass`"),
                            ("imports", "Python init: `import py_steps` (boto3, the reference)")):
            ms = [c["ms"] for c in by["python_cold"] if c["what"] == what]
            if ms:
                w(f"| {label} | {median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} | | | {len(ms)} |")
        w("")

    # --- Cost of one input, and per 1M chargebacks.
    if executions and py_executions and cb and py:
        e = executions[0]
        records = e["records"]
        scale = 1e6 / records
        cold_cpu = {h: median([c.get("cpu_ms", 0) for c in cold if c["handler"] == h and c["ok"]])
                    for h in cold_ms}
        sides = {"cbpipe": cost(cb, executions, asl, {"ms": cold_ms, "cpu_ms": cold_cpu}),
                 "Python": cost(py, py_executions, asl)}
        for name, c in sides.items():
            w(f"{name}, one input of {records} records: {c['batches']} batch(es), {c['files']} files, "
              f"{c['deliveries']} deliveries; {c['invocations']} invocations, "
              f"{c['transitions']} state transitions (from {args.asl}), "
              f"S3 {c['tier1']:g} PUT/POST/LIST + {c['tier2']:g} GET/HEAD, SQS {SQS_PER_INPUT}, "
              f"{c['api']:g} other AWS calls; "
              f"Lambda GB-s: {c['gbs_wall']:.3f} from wall time, {c['gbs_cpu']:.3f} from CPU time, "
              f"{c['gbs']:.3f} headline (init wall + max(handler wall, handler CPU x 1769/M)); "
              f"CPU {c['cpu_s']:.2f} s")
        w("")
        cbc, pyc = sides["cbpipe"], sides["Python"]

        def usd(c):
            return {
                "Lambda GB-s, init + max(wall, CPU-bound) (headline)": c["gbs"] * LAMBDA_GB_S,
                "Lambda requests": c["invocations"] * LAMBDA_REQUEST,
                "Step Functions transitions": c["transitions"] * SFN_TRANSITION,
                "S3 requests": c["tier1"] * S3_TIER1 + c["tier2"] * S3_TIER2,
                "SQS requests": SQS_PER_INPUT * SQS_REQUEST,
                "other AWS calls (DynamoDB, SNS; at most)": c["api"] * OTHER_CALL,
            }
        a, b = usd(cbc), usd(pyc)

        def ratio(x, y):
            return x / y if y else float("nan")
        w("| per 1M chargebacks, USD | cbpipe | Python | cbpipe / Python |")
        w("| --- | --- | --- | --- |")
        for k in a:
            w(f"| {k} | {a[k] * scale:.6f} | {b[k] * scale:.6f} | {ratio(a[k], b[k]):.3f} |")
        total_cb, total_py = sum(a.values()), sum(b.values())
        total = ratio(total_cb, total_py)
        w(f"| **total** | **{total_cb * scale:.6f}** | **{total_py * scale:.6f}** | **{total:.3f}** |")
        compute = "Lambda GB-s, init + max(wall, CPU-bound) (headline)"
        other = "other AWS calls (DynamoDB, SNS; at most)"
        decides_cb = a[compute] + a["S3 requests"] + a[other]
        decides_py = b[compute] + b["S3 requests"] + b[other]
        decides = ratio(decides_cb, decides_py)
        w(f"| what the implementation decides (compute, S3 requests, other calls) | {decides_cb * scale:.6f} "
          f"| {decides_py * scale:.6f} | {decides:.3f} |")
        for label, key in (("Lambda GB-s from wall time as measured here", "gbs_wall"),
                           ("Lambda GB-s from all CPU time (x 1.728 GB-s per CPU-s)", "gbs_cpu")):
            x, y = cbc[key] * LAMBDA_GB_S, pyc[key] * LAMBDA_GB_S
            rest_cb, rest_py = total_cb - a[compute], total_py - b[compute]
            w(f"| {label}; total with it | {x * scale:.6f}; {(x + rest_cb) * scale:.6f} "
              f"| {y * scale:.6f}; {(y + rest_py) * scale:.6f} "
              f"| {ratio(x, y):.3f}; {ratio(x + rest_cb, y + rest_py):.3f} |")
        w("")
        memory = cbc["memory"]
        cold_all = [c["ms"] for c in cold if c["ok"]]
        targets = [
            ("cold start, median of all handlers", f"{median(cold_all):.1f} ms",
             "<= 50 ms", bool(cold_all) and median(cold_all) <= 50),
            ("every handler completes within 512 MB", ", ".join(f"{h} {m} MB" for h, m in memory.items()),
             "<= 512 MB", all(0 < m <= 512 for m in memory.values())),
            ("cost per 1M chargebacks, cbpipe / Python", f"{total:.3f} in total "
             f"(what the implementation decides: {decides:.3f})", "<= 0.100", total <= 0.1),
        ]
        w("| target | measured | wanted | met |")
        w("| --- | --- | --- | --- |")
        for name, got, want, met in targets:
            w(f"| {name} | {got} | {want} | {'yes' if met else 'NO'} |")
            if not met and not args.smoke:
                problems.append(f"target missed: {name}")
    else:
        problems.append("no cost: an execution of either side or the memory sizes are missing")
    print("\n".join(out))
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
