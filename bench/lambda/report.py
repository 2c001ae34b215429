#!/usr/bin/env python3
"""The report of bench/lambda/run.sh: its JSON lines -> tables, cost, targets.

    report.py --asl deploy/aws/cbpipe.asl.json [--smoke] RESULTS.jsonl

Lines (bench_lambda and run.sh): setup, invoke (one per invocation, at each
memory size tried), execution, cold, python, python_memory, python_cold,
done. Exit status 0 when every run completed and every target is met (with
--smoke: every run completed), 1 otherwise, 2 on unreadable input.

Cost of one input, then scaled to 1M chargebacks (records): the prices are
AWS's published us-east-1 prices (bench/README.md cites them).
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
# Per input: S3's SendMessage of the event, the event source mapping's
# ReceiveMessage and DeleteMessage (empty polls of an idle queue are per
# hour, not per chargeback).
SQS_PER_INPUT = 3

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

    # --- The function, per handler.
    executions = by["execution"]
    if len(executions) < setup["runs"]:
        problems.append(f"{setup['runs'] - len(executions)} execution(s) did not complete")
    invokes = by["invoke"]
    ok = [i for i in invokes if i["ok"]]
    out = []
    w = out.append
    w(f"cbpipe Lambda benchmark: {setup['records']} records "
      f"({setup['input_bytes'] / 1e6:.1f} MB CSV), {len(executions)} execution(s), "
      f"started {setup['started']}, finished {done.get('finished', '?')}")
    w(f"load average before {setup['load_before']}, after {done.get('load_after', '?')}")
    w("")
    w("| handler | invocations / execution | duration ms (median) | process CPU ms, init + event (median) "
      "| peak RSS MB (VmHWM, max) "
      "| smallest memory that completes | killed at | S3 PUT/LIST / GET per invocation | other AWS calls |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    memory = {}
    for h in STEPS:
        got = [i for i in ok if i["handler"] == h]
        if not got:
            problems.append(f"{h}: no invocation completed")
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
        if limited and memory[h] > 512:
            problems.append(f"{h} needs more than 512 MB")
    errors = [i for i in invokes if not i["ok"] and "ended" not in i]
    for e in errors:
        problems.append(f"{e['handler']} answered an error: {e.get('error', '')[:200]}")
    w("")

    # --- Cold starts.
    cold = by["cold"]
    cold_ms = {}
    if cold:
        w("| cold start (fork of bootstrap -> first GET next), ms | median | min | max "
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
                row(h, cs)
        row("all handlers", [c for c in cold if c["ok"]])
        all_ms = [c["ms"] for c in cold if c["ok"]]
        if len(all_ms) < len(cold):
            problems.append(f"{len(cold) - len(all_ms)} cold start(s) did not reach next")
        w("")

    # --- Python.
    py = by["python"]
    py_mb = done.get("python_memory_mb", 0)
    py_cold = {k: median([c["ms"] for c in by["python_cold"] if c["what"] == k])
               for k in ("bare", "imports")}
    if py:
        w("| Python reference (bench/py_run.py, local disk) | median | runs |")
        w("| --- | --- | --- |")
        w(f"| wall s | {median([p['s'] for p in py]):.2f} | {len(py)} |")
        w(f"| CPU s | {median([p['cpu_s'] for p in py]):.2f} | {len(py)} |")
        w(f"| peak RSS MB (GNU time) | {max(p['rss_kb'] for p in py) / 1024:.1f} | max |")
        tried = ", ".join(f"{m['memory_mb']} MB {'ok' if m['ok'] else 'killed'}"
                          for m in by["python_memory"]) or "no cgroup"
        w(f"| smallest memory that completes | {py_mb or '?'} MB | {tried} |")
        w(f"| `python3 -c pass`, ms | {py_cold['bare']:.1f} | {len(by['python_cold']) // 2} |")
        w(f"| `python3 -c 'import boto3, csv, ...'`, ms | {py_cold['imports']:.1f} | {len(by['python_cold']) // 2} |")
        w("")
        for p, e in zip(py, executions):
            s = p["summary"]
            for k in ("records", "accepted", "rejected"):
                if k in s and s[k] != e[k]:
                    problems.append(f"Python {k} {s[k]} != cbpipe's {e[k]}")

    # --- Cost of one input, and per 1M chargebacks.
    if executions and py and memory:
        e = executions[0]
        records, batches = e["records"], e["batches"]
        # Deliveries: one per destination that has files in a batch.
        deliveries = round(len([i for i in ok if i["handler"] == "deliver"])
                           / len(executions))
        n_transitions = transitions(asl, {"batches": batches,
                                          "destinations": deliveries})
        gbs = []
        n_invocations = []
        s3 = []
        for x in {i["execution"] for i in ok}:
            mine = [i for i in ok if i["execution"] == x]
            # Billed: rounded up to 1 ms, the init (cold start) included,
            # every invocation taken as a cold one.
            gbs.append(sum(math.ceil(i["ms"] + cold_ms.get(i["handler"], 0)) / 1000
                           * memory[i["handler"]] / 1024 for i in mine))
            n_invocations.append(len(mine))
            s3.append((sum(i["s3_tier1"] for i in mine), sum(i["s3_tier2"] for i in mine)))
        cb_gbs = median(gbs)
        invocations = int(median(n_invocations))
        tier1 = median([a for a, _ in s3])
        tier2 = median([b for _, b in s3])
        py_s = median([p["s"] for p in py])
        py_gbs = (py_s + invocations * py_cold["imports"] / 1000) * (py_mb or 0) / 1024
        shared = {
            "Lambda requests": invocations * LAMBDA_REQUEST,
            "Step Functions transitions": n_transitions * SFN_TRANSITION,
            "S3 requests": tier1 * S3_TIER1 + tier2 * S3_TIER2,
            "SQS requests": SQS_PER_INPUT * SQS_REQUEST,
        }
        scale = 1e6 / records
        cb = {"Lambda GB-s": cb_gbs * LAMBDA_GB_S, **shared}
        pyc = {"Lambda GB-s": py_gbs * LAMBDA_GB_S, **shared}
        w(f"Cost of one input of {records} records ({batches} batch(es), "
          f"{e['files']} files, {deliveries} deliveries to 4 destinations): "
          f"{invocations} invocations, "
          f"{n_transitions} state transitions (from {args.asl}), "
          f"S3 {tier1:g} PUT/LIST + {tier2:g} GET, SQS {SQS_PER_INPUT}; "
          f"cbpipe {cb_gbs:.3f} GB-s, Python {py_gbs:.3f} GB-s "
          f"({py_s:.2f} s + {invocations} x {py_cold['imports']:.0f} ms imports at {py_mb} MB)")
        w("")
        w("| per 1M chargebacks, USD | cbpipe | Python | cbpipe / Python |")
        w("| --- | --- | --- | --- |")
        for k in cb:
            r = cb[k] / pyc[k] if pyc[k] else float("nan")
            w(f"| {k} | {cb[k] * scale:.6f} | {pyc[k] * scale:.6f} | {r:.3f} |")
        total_cb, total_py = sum(cb.values()) * scale, sum(pyc.values()) * scale
        ratio = total_cb / total_py
        compute_ratio = cb["Lambda GB-s"] / pyc["Lambda GB-s"] if pyc["Lambda GB-s"] else float("nan")
        w(f"| **total** | **{total_cb:.6f}** | **{total_py:.6f}** | **{ratio:.3f}** |")
        w("")
        # The same GB-s from CPU time alone (what the durations approach
        # on an idle machine with S3 answering at once): cbpipe's process
        # CPU (init included), Python's user + system time (imports left
        # out, in its favour).
        cpu_gbs = median([sum(i["process_cpu_ms"] / 1000 * memory[i["handler"]] / 1024
                              for i in ok if i["execution"] == x and "process_cpu_ms" in i)
                          for x in {i["execution"] for i in ok}])
        py_cpu_gbs = median([p["cpu_s"] for p in py]) * (py_mb or 0) / 1024
        if cpu_gbs and py_cpu_gbs:
            w(f"GB-s from CPU time instead of wall time: cbpipe {cpu_gbs:.3f}, Python "
              f"{py_cpu_gbs:.3f}, ratio {cpu_gbs / py_cpu_gbs:.3f}; total per 1M "
              f"chargebacks {(cpu_gbs * LAMBDA_GB_S + sum(shared.values())) * scale:.6f} "
              f"vs {(py_cpu_gbs * LAMBDA_GB_S + sum(shared.values())) * scale:.6f}")
            w("")
        targets = [
            ("cold start, median of all handlers", f"{median([c['ms'] for c in cold if c['ok']]):.1f} ms",
             "<= 50 ms", median([c["ms"] for c in cold if c["ok"]]) <= 50),
            ("every handler completes within 512 MB", ", ".join(f"{h} {m} MB" for h, m in memory.items()),
             "<= 512 MB", all(0 < m <= 512 for m in memory.values())),
            ("cost per 1M chargebacks, cbpipe / Python", f"{ratio:.3f} (Lambda GB-s alone: {compute_ratio:.3f})",
             "<= 0.100", ratio <= 0.1),
        ]
        w("| target | measured | wanted | met |")
        w("| --- | --- | --- | --- |")
        for name, got, want, met in targets:
            w(f"| {name} | {got} | {want} | {'yes' if met else 'NO'} |")
            if not met and not args.smoke:
                problems.append(f"target missed: {name}")
    else:
        problems.append("no cost: an execution, the Python runs or the memory sizes are missing")
    print("\n".join(out))
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
