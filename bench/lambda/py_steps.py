#!/usr/bin/env python3
"""The Python reference as Lambda steps: what a Python deployment of the
same state machine (deploy/aws/cbpipe.asl.json) would run, measured by
bench_lambda --python the way it measures the cbpipe function
(bench/README.md, "lambda/").

One process per invocation, as a cold start: the interpreter starts, this
module imports boto3 and the reference's code (bench/py_run.py and
bench/py_validate.py, whose validation, formatting, batching and checking
are reused as they are), then runs the handler named by _HANDLER on the
event read from stdin and writes its result as JSON on stdout (the AWS
Python runtime would read and post them through the runtime API instead).

    _HANDLER=scan py_steps.py <event.json >result.json

The steps and their JSON are shaped like the cbpipe handlers' (the state
machine's): start (an SQS batch of S3 events -> one StartExecution per new
object, named by its content), scan (S3 input -> validate, split into
files per network and batches of 4 -> upload files, manifests and rejects;
returns the counts and batches), verify (one batch: read its files back
from S3, SHA-256, rows and totals against the manifest; returns one deliver
input per destination), deliver (one destination's files of one batch:
download, copy to the file:// destination with fsync and rename, a
DynamoDB ledger entry conditionally put before and updated after), notify
(one SNS message per batch), settle (fails when a file was not delivered).

S3 through boto3 with its defaults as a Python developer would use them:
download_file / upload_file (TransferConfig: multipart and ranged GETs
above 8 MB, 8 MB parts, 10 threads), get_object / put_object for the
manifests. Path-style addressing only because the endpoint is moto on
127.0.0.1 (AWS_ENDPOINT_URL); on AWS it would be the default.

Environment: _HANDLER, AWS_ENDPOINT_URL, AWS_REGION and credentials,
PY_BENCH_BUCKET, PY_BENCH_INPUT_PREFIX (the raw objects' prefix, as
service.object_store), PY_BENCH_WORK_PREFIX (where this side writes),
PY_BENCH_TABLE (DynamoDB: pk, sk), PY_BENCH_TOPIC_ARN,
PY_BENCH_STATE_MACHINE_ARN, PY_BENCH_OUTBOX (a folder per network: the
file:// destinations), TMPDIR; PY_BENCH_INIT_FILE, where it writes when
init ended (CLOCK_MONOTONIC) and the process's CPU time until then, and
at the end its peak resident set (VmHWM).

Exit status: 0 with the result on stdout; 3 on MemoryError (the harness
then tries the next memory size, as for a process the cgroup killed); 1 on
any other error (traceback on stderr).
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

import boto3
import botocore.config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import py_run  # noqa: E402  (the reference `run`: generation and checks)
import py_validate as pv  # noqa: E402

ENV = os.environ.get
BUCKET = ENV("PY_BENCH_BUCKET", "bench")
INPUT_PREFIX = ENV("PY_BENCH_INPUT_PREFIX", "raw")
WORK_PREFIX = ENV("PY_BENCH_WORK_PREFIX", "py")
CONFIG = botocore.config.Config(s3={"addressing_style": "path"})


def client(service):
    return boto3.client(service, config=CONFIG)


def load_exponents():
    currencies, _ = pv.load_tables(pv.DEFAULT_DATA_DIR)
    py_run.EXPONENTS.update(currencies)


def header(event):
    return {k: event[k] for k in ("run_id", "trace_id", "now_ms")}


def start(event):
    """SQS batch of S3 events -> one execution per created object."""
    sfn = client("stepfunctions")
    failures = []
    for record in event["Records"]:
        try:
            body = json.loads(record["body"])
            for r in body.get("Records", []):
                if not r.get("eventName", "").startswith("ObjectCreated"):
                    continue
                bucket = r["s3"]["bucket"]["name"]
                key = urllib.parse.unquote_plus(r["s3"]["object"]["key"])
                if bucket != BUCKET or not key.startswith(INPUT_PREFIX + "/"):
                    raise ValueError(f"s3://{bucket}/... is not an input")
                etag = r["s3"]["object"].get("eTag", "")
                name = hashlib.sha256(
                    f"{bucket}/{key}\n{etag}".encode()).hexdigest()
                run = {"run_id": name, "trace_id": name[:32],
                       "now_ms": int(time.time() * 1000),
                       "input_key": key[len(INPUT_PREFIX) + 1:],
                       "input_name": key, "name_by_content": True}
                try:
                    sfn.start_execution(
                        stateMachineArn=ENV("PY_BENCH_STATE_MACHINE_ARN"),
                        name=name, input=json.dumps(run))
                except sfn.exceptions.ExecutionAlreadyExists:
                    pass
        except Exception as e:  # noqa: BLE001 (reported per message)
            print(f"start: message {record.get('messageId')}: {e!r}",
                  file=sys.stderr)
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def scan(event):
    """Input from S3 -> validated, split, batched; everything to S3."""
    s3 = client("s3")
    tmp = tempfile.mkdtemp()
    local = os.path.join(tmp, "input")
    s3.download_file(BUCKET, f"{INPUT_PREFIX}/{event['input_key']}", local)
    fmt = pv.detect_format(local)
    input_id = py_run.sha256_file(local)[:16]
    work = os.path.join(tmp, "work")
    records, accepted, rejected, files, latest, rejects = py_run.generate(
        local, fmt, work, input_id, event["now_ms"] // 1000)
    os.remove(local)  # /tmp is small on Lambda
    batches = py_run.make_batches(files, work, input_id, latest)
    out = dict(event, records=records, accepted=accepted, rejected=rejected,
               input_id=input_id, batches=[])
    for batch_id, folder, batch_files in batches:
        prefix = f"{WORK_PREFIX}/batches/{batch_id}"
        entries = []
        for f in batch_files:
            s3.upload_file(f.path, BUCKET, f"{prefix}/{f.name}")
            os.remove(f.path)
            entries.append({"destination": f.network, "name": f.name,
                            "records": f.records, "bytes": f.bytes,
                            "sha256": f.sha256, "totals": f.totals})
        s3.upload_file(os.path.join(folder, "manifest.json"), BUCKET,
                       f"{prefix}/manifest.json")
        out["batches"].append({"id": batch_id,
                               "manifest": f"{prefix}/manifest.json",
                               "files": entries})
    out["rejects_key"] = f"{WORK_PREFIX}/runs/{input_id}/rejects.csv"
    s3.upload_file(rejects, BUCKET, out["rejects_key"])
    shutil.rmtree(tmp)
    return out


def manifest_files(s3, key, destination=None):
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return [e for e in manifest["files"]
            if destination is None or e["destination"] == destination]


def stored_file(entry, path):
    """A manifest entry as the py_run.OutputFile its checks take."""
    f = py_run.OutputFile.__new__(py_run.OutputFile)
    f.network, f.seq, f.name = entry["network"], entry["file_seq"], entry["name"]
    f.layout = py_run.LAYOUTS[entry["layout"]]
    f.columns, f.records = entry["columns"], entry["records"]
    f.bytes, f.sha256 = entry["bytes"], entry["sha256"]
    f.totals = entry["totals"]
    f.path = path
    return f


def verify(event):
    """One batch: every file read back from S3 and checked."""
    s3 = client("s3")
    load_exponents()
    batch = event["batch"]
    folder = batch["manifest"].rsplit("/", 1)[0]
    tmp = tempfile.mkdtemp()
    deliveries = {}
    for entry in manifest_files(s3, batch["manifest"]):
        path = os.path.join(tmp, entry["name"])
        s3.download_file(BUCKET, f"{folder}/{entry['name']}", path)
        problem = py_run.verify(stored_file(entry, path))
        os.remove(path)
        if problem:
            raise RuntimeError(f"verification failed: {problem}")
        d = deliveries.setdefault(entry["destination"], dict(
            header(event), batch={"id": batch["id"],
                                  "manifest": batch["manifest"]},
            destination=entry["destination"], files=[]))
        d["files"].append({k: entry[k] for k in
                           ("destination", "name", "records", "bytes",
                            "totals")})
    shutil.rmtree(tmp)
    return {"id": batch["id"], "manifest": batch["manifest"],
            "deliveries": list(deliveries.values())}


def deliver(event):
    """One destination's files of one batch to its file:// folder, with a
    DynamoDB ledger: intent (conditional put), copy, delivered."""
    s3 = client("s3")
    table = boto3.resource("dynamodb", config=CONFIG).Table(
        ENV("PY_BENCH_TABLE"))
    conditional = table.meta.client.exceptions.ConditionalCheckFailedException
    batch, destination = event["batch"], event["destination"]
    folder = batch["manifest"].rsplit("/", 1)[0]
    outbox = os.path.join(ENV("PY_BENCH_OUTBOX"), destination)
    os.makedirs(outbox, exist_ok=True)
    tmp = tempfile.mkdtemp()
    files = []
    for entry in manifest_files(s3, batch["manifest"], destination):
        name = entry["name"]
        key = {"pk": f"delivery#{destination}", "sk": name}
        status = "delivered"
        try:
            table.put_item(
                Item=dict(key, state="intent", kind="delivery",
                          order=f"{int(time.time() * 1000):016d}",
                          size=entry["bytes"], sha256=entry["sha256"],
                          batch_id=batch["id"], run_id=event["run_id"]),
                ConditionExpression="attribute_not_exists(pk) OR #s <> :d",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":d": "delivered"})
        except conditional:
            status = "already_delivered"
        if status == "delivered":
            path = os.path.join(tmp, name)
            s3.download_file(BUCKET, f"{folder}/{name}", path)
            target = os.path.join(outbox, name)
            py_run.copy_durably(path, target)
            os.remove(path)
            if os.path.getsize(target) != entry["bytes"]:
                raise RuntimeError(f"{target}: wrong size after the copy")
            table.update_item(
                Key=key, UpdateExpression="SET #s = :d, updated_at = :t",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":d": "delivered",
                                           ":t": int(time.time())})
        files.append({"destination": destination, "name": name,
                      "records": entry["records"], "bytes": entry["bytes"],
                      "totals": entry["totals"], "status": status,
                      "attempts": 1})
    shutil.rmtree(tmp)
    return {"id": batch["id"], "destination": destination, "files": files}


def outcomes(event):
    """(batch id, [file results]) of the batches Map's result."""
    for b in event["deliveries"]:
        files = [f for d in b.get("deliveries", []) for f in d["files"]]
        yield b.get("id"), files


def notify(event):
    """One SNS message per batch."""
    sns = client("sns")
    for batch_id, files in outcomes(event):
        ok = all(f["status"] != "failed" for f in files)
        totals = {}
        for f in files:
            for currency, minor in f["totals"].items():
                totals[currency] = totals.get(currency, 0) + minor
        sns.publish(
            TopicArn=ENV("PY_BENCH_TOPIC_ARN"),
            Subject="batch delivered" if ok else "batch failed",
            Message=json.dumps({
                "event": "batch_delivered" if ok else "batch_failed",
                "run_id": event["run_id"], "batch_id": batch_id,
                "records": sum(f["records"] for f in files),
                "files": len(files), "totals": totals}))
    return event


def settle(event):
    """The run succeeds only when every file was delivered."""
    failed = sum(f["status"] == "failed"
                 for _, files in outcomes(event) for f in files)
    if failed:
        raise RuntimeError(f"{failed} file(s) not delivered")
    return event


HANDLERS = {"start": start, "scan": scan, "verify": verify,
            "deliver": deliver, "notify": notify, "settle": settle}


def main():
    # The end of init (interpreter and imports): when and how much CPU, for
    # the harness to tell init from the handler (PY_BENCH_INIT_FILE).
    stats = {"monotonic": time.monotonic(), "cpu_s": time.process_time()}
    write_stats(stats)
    handler = HANDLERS[os.environ["_HANDLER"]]
    event = json.load(sys.stdin)
    try:
        result = handler(event)
    except MemoryError:
        return 3
    json.dump(result, sys.stdout)
    # The peak resident set of this process's own memory: VmHWM (the
    # rusage of a forked child also counts its parent's before the exec).
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                stats["hwm_kb"] = int(line.split()[1])
    write_stats(stats)
    return 0


def write_stats(stats):
    if ENV("PY_BENCH_INIT_FILE"):
        with open(ENV("PY_BENCH_INIT_FILE"), "w") as f:
            json.dump(stats, f)


if __name__ == "__main__":
    sys.exit(main())
