#!/usr/bin/env python3
"""Reference implementation of `cbpipe run` (file:// destinations) in Python.

The baseline of bench/run_bench.sh: what one would write in plain Python to
do the same job as `cbpipe run --work-dir OUTDIR INPUT` with the built-in
default config (one file:// destination per network, built-in layouts):

1. SHA-256 of the input (the input id is its first 16 hex digits);
2. read it with the csv module (json for JSON Lines) and apply the same
   per-record checks as cbpipe validate, imported from bench/py_validate.py;
3. write every rejected record's errors to runs/<input id>/rejects.csv;
4. split the accepted records per network, each written in its built-in
   layout (docs/layouts.md: same columns, dates, amounts, quoting of the
   identifiers, CRLF, count_and_total trailers), hashing with hashlib while
   writing, rolling over to a new file before one would exceed
   max_file_bytes (50 MiB, as cbpipe's default), fsync on close;
5. group the files into batches of 4 (each network's first file, then the
   second files, ...) under batches/<batch id>/ with a manifest.json;
6. verify each file as cbpipe's verifier does: read it back, SHA-256 and
   size, parse it again with the csv module, check the header and every
   row's width, count the rows and recompute the per-currency totals against
   the trailer and the manifest;
7. deliver: shutil.copyfile to outbox/<network>/<name>.part, fsync, rename,
   fsync the folder, check the size, with a SQLite ledger (WAL,
   synchronous=FULL) recording intent and delivery as cbpipe's does.

The data files are meant to be byte-identical to cbpipe's (the benchmark
compares their SHA-256); the rejects file holds the same rejected records
but not cbpipe's field names and messages (py_validate.py only returns error
codes).

    py_run.py [--format auto|csv|jsonl] [--now EPOCH] [--json] INPUT OUTDIR

Exit status: 0 all accepted, 1 some rejected, 2 unreadable input or a
failed verification.
"""

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import py_validate as pv  # noqa: E402  (the same checks as cbpipe validate)

MAX_FILE_BYTES = 52428800  # [output] max_file_bytes default
MAX_FILES_PER_BATCH = 4    # [output] max_files_per_batch default
NETWORKS = ["visa", "mastercard", "amex", "discover"]  # config order
CRLF = "\r\n"

STAGE_NAMES = {  # src/domain/record.cc ParseStage -> StageName
    "retrieval": "retrieval", "first_chargeback": "first_chargeback",
    "representment": "representment", "pre_arbitration": "pre_arbitration",
    "arbitration": "arbitration", "second_presentment": "representment",
    "request_for_information": "retrieval", "rfi": "retrieval",
    "chargeback": "first_chargeback",
}

# Built-in layouts (src/output/layout.cc): header cells, the identifier
# columns (always quoted), the amount format, the trailer.
LAYOUTS = {
    "visa": dict(
        header=["CASE_ID", "ARN", "PAN", "MERCHANT_ID", "TRANSACTION_DATE",
                "CHARGEBACK_DATE", "AMOUNT", "CURRENCY", "REASON_CODE",
                "STAGE"],
        ids=(0, 1, 3), amount=6, currency=7, trailer=False),
    "mastercard": dict(
        header=["claim_id", "acquirer_reference_data", "pan_masked",
                "merchant_id", "transaction_date", "chargeback_date",
                "amount_minor_units", "currency", "reason_code", "cycle"],
        ids=(0, 1, 3), amount=6, currency=7, trailer=True),
    "amex": dict(
        header=["CASE_NUMBER", "SE_NUMBER", "MERCHANT_NAME", "CARD_NUMBER",
                "REFERENCE_NUMBER", "CHARGE_DATE", "DISPUTE_DATE",
                "DISPUTE_AMOUNT", "CURRENCY_CODE", "REASON_CODE",
                "DISPUTE_STAGE"],
        ids=(0, 1, 4), amount=7, currency=8, trailer=True),
    "discover": dict(
        header=["DISPUTE_ID", "MERCHANT_NUMBER", "MCC", "CARD_NUMBER",
                "ACQUIRER_REFERENCE", "TRANSACTION_DATE", "DISPUTE_DATE",
                "RESPONSE_DUE_DATE", "DISPUTE_AMOUNT", "CURRENCY",
                "REASON_CODE", "DISPUTE_STAGE"],
        ids=(0, 1, 4), amount=8, currency=9, trailer=True),
}

# A cell needs quoting when it holds the delimiter, a quote or a line break,
# or needs the formula guard (first character = + - @ TAB CR). Searched once
# per row over the cells joined by NUL (which never occurs in valid text).
NEEDS_QUOTING = re.compile(r'[,"\r\n]|\x00[=+\-@\t]')
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DIGIT_RUN = re.compile(r"[0-9]{12,19}")


def quote(cell):
    guard = "'" if cell.startswith(FORMULA_START) else ""
    return '"' + guard + cell.replace('"', '""') + '"'


def csv_cell(cell, always_quote):
    if (always_quote or cell.startswith(FORMULA_START)
            or any(c in cell for c in ',"\r\n')):
        return quote(cell)
    return cell


def csv_row(cells, ids):
    return ",".join(csv_cell(c, i in ids) for i, c in enumerate(cells)) + CRLF


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_durably(source, target):
    """Copy to target.part, fsync, rename to target, fsync its folder."""
    temp = target + ".part"
    shutil.copyfile(source, temp)
    fd = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, target)
    fsync_dir(os.path.dirname(target))


def mask_pan(pan):
    digits = "".join(c for c in pan if c in pv.DIGITS)
    if len(digits) < 12:
        return "*" * len(digits)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def redact_card_numbers(text):
    def mask(m):
        run = m.group(0)
        return mask_pan(run) if pv.classify_pan(run) == "full" else run
    # Whole digit runs only, as cbpipe: a longer run is left alone.
    return re.sub(r"[0-9]+", lambda m: mask(m) if 12 <= len(m.group(0)) <= 19
                  else m.group(0), text)


def decimal(minor, exponent):
    if exponent == 0:
        return str(minor)
    unit = 10 ** exponent
    return f"{minor // unit}.{minor % unit:0{exponent}d}"


def minor_units(text, exponent):
    """Validated amount text (py_validate.AMOUNT_RE) -> integer minor units."""
    whole, _, fraction = text.partition(".")
    return int(whole + fraction + "0" * (exponent - len(fraction)))


def compact_date(text):
    """Validated ISO 8601 date (extended or basic) -> ('YYYY', 'MM', 'DD')."""
    if text[4:5] == "-":
        return text[0:4], text[5:7], text[8:10]
    return text[0:4], text[4:6], text[6:8]


class OutputFile:
    """One generated CSV: written as rows arrive, hashed while writing."""

    def __init__(self, network, seq, path, layout):
        self.network, self.seq, self.path = network, seq, path
        self.layout = layout
        self.columns = len(layout["header"])
        self.f = open(path, "wb")
        self.sha = hashlib.sha256()
        self.records = 0
        self.totals = {}  # currency -> minor units
        self.pending = []
        self.pending_bytes = 0
        header = csv_row(layout["header"], ()).encode()
        self.header_bytes = len(header)
        self.bytes = 0
        self._write(header)
        self.trailer_len = len(self.trailer()) if layout["trailer"] else 0

    def _write(self, data):
        self.sha.update(data)
        self.f.write(data)
        self.bytes += len(data)

    def trailer(self, extra=None):
        totals = self.totals
        count = self.records
        if extra is not None:
            totals = dict(totals)
            currency, minor = extra
            totals[currency] = totals.get(currency, 0) + minor
            count += 1
        cells = ";".join(f"{c}={decimal(totals[c], EXPONENTS[c])}"
                         for c in sorted(totals))
        return ("TRAILER," + str(count) + "," + cells
                + "," * (self.columns - 3) + CRLF).encode()

    def fits(self, row_bytes, currency, minor):
        size = self.bytes + self.pending_bytes + row_bytes
        if not self.layout["trailer"]:
            return size <= MAX_FILE_BYTES
        # The exact trailer only when the quick bound says it might not fit.
        if size + self.trailer_len + 256 <= MAX_FILE_BYTES:
            return True
        return size + len(self.trailer((currency, minor))) <= MAX_FILE_BYTES

    def add(self, line, row_bytes, currency, minor):
        self.pending.append(line)
        self.pending_bytes += row_bytes
        self.records += 1
        self.totals[currency] = self.totals.get(currency, 0) + minor
        if len(self.pending) >= 2048:
            self.flush()
        if self.layout["trailer"] and self.records % 64 == 0:
            self.trailer_len = len(self.trailer())

    def flush(self):
        if self.pending:
            data = "".join(self.pending).encode()
            self.pending.clear()
            self.pending_bytes = 0
            self._write(data)

    def close(self):
        self.flush()
        if self.layout["trailer"]:
            self._write(self.trailer())
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        self.sha256 = self.sha.hexdigest()


class Router:
    """Formats accepted records in their network's layout and rolls files."""

    def __init__(self, staging):
        self.staging = staging
        self.current = {}
        self.closed = {n: [] for n in NETWORKS}

    def add(self, network, cells, currency, minor):
        layout = LAYOUTS[network]
        ids = layout["ids"]
        probe = "\x00" + "\x00".join(cells)
        if NEEDS_QUOTING.search(probe) is None:
            # The common case: only the identifiers are quoted.
            for i in ids:
                cells[i] = '"' + cells[i] + '"'
            line = ",".join(cells) + CRLF
        else:
            line = csv_row(cells, ids)
        row_bytes = len(line) if line.isascii() else len(line.encode())
        f = self.current.get(network)
        if f is not None and not f.fits(row_bytes, currency, minor):
            f.close()
            self.closed[network].append(f)
            f = None
        if f is None:
            seq = len(self.closed[network]) + 1
            f = OutputFile(network, seq, os.path.join(
                self.staging, f"{network}_f{seq:03d}.csv"), layout)
            self.current[network] = f
        f.add(line, row_bytes, currency, minor)

    def finish(self):
        for network, f in self.current.items():
            f.close()
            self.closed[network].append(f)
        files = [f for n in NETWORKS for f in self.closed[n]]
        files.sort(key=lambda f: (f.seq, NETWORKS.index(f.network)))
        return files


EXPONENTS = {}


def generate(path, fmt, work_dir, input_id, now):
    """Steps 2-4: read, check, reject or route. Returns counts and files."""
    currencies, reasons = pv.load_tables(pv.DEFAULT_DATA_DIR)
    EXPONENTS.update(currencies)
    validator = pv.Validator(currencies, reasons, now)
    validate = validator.validate
    trim = pv.trim
    upper = pv.ASCII_UPPER
    parse_network = pv.parse_network
    network_from_pan = pv.network_from_pan

    run_dir = os.path.join(work_dir, "runs", input_id)
    staging = os.path.join(work_dir, "staging", input_id)
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(staging, exist_ok=True)
    router = Router(staging)
    records = accepted = 0
    latest = ""
    rejects_path = os.path.join(run_dir, "rejects.csv")
    with open(rejects_path, "w", newline="", encoding="utf-8") as rf:
        rejects = csv.writer(rf, lineterminator=CRLF)
        rejects.writerow(["position", "case_id", "field", "code", "message"])
        reader = pv.read_csv if fmt == "csv" else pv.read_jsonl
        first = 2 if fmt == "csv" else 1  # position: the line (header: 1)
        for position, (rec, sensitive, malformed) in enumerate(
                reader(path), first):
            records += 1
            errors = validate(rec, sensitive, malformed)
            get = rec.get
            if errors:
                case_id = trim(get("case_id", ""))
                for code in errors:
                    rejects.writerow([position, case_id, "", code, ""])
                continue
            accepted += 1
            # The validated record, normalised as cbpipe's Record is.
            pan = trim(get("pan", ""))
            network_text = trim(get("network", ""))
            network = (parse_network(network_text) if network_text
                       else network_from_pan(pan))
            if pan and not ("*" in pan or "X" in pan or "x" in pan):
                pan = mask_pan(pan)  # a full card number: policy "mask"
            currency = trim(get("currency", "")).translate(upper)
            exponent = currencies[currency]
            minor = minor_units(trim(get("amount", "")), exponent)
            ty, tm, td = compact_date(trim(get("transaction_date", "")))
            cy, cm, cd = compact_date(trim(get("chargeback_date", "")))
            cb_compact = cy + cm + cd
            if cb_compact > latest:
                latest = cb_compact
            stage = STAGE_NAMES[pv.normalise_name(trim(get("stage", ""))
                                                  or "first_chargeback")]
            reason = trim(get("reason_code", "")).translate(upper)
            merchant_name = trim(get("merchant_name", ""))
            if DIGIT_RUN.search(merchant_name):
                merchant_name = redact_card_numbers(merchant_name)
            case_id = trim(get("case_id", ""))
            arn = trim(get("arn", ""))
            merchant_id = trim(get("merchant_id", ""))
            if network == "visa":
                cells = [case_id, arn, pan, merchant_id, ty + tm + td,
                         cb_compact, decimal(minor, exponent), currency,
                         reason, stage.upper()]
            elif network == "mastercard":
                cells = [case_id, arn, pan, merchant_id,
                         f"{ty}-{tm}-{td}", f"{cy}-{cm}-{cd}", str(minor),
                         currency, reason, stage]
            elif network == "amex":
                cells = [case_id, merchant_id, merchant_name, pan, arn,
                         f"{ty}-{tm}-{td}", f"{cy}-{cm}-{cd}",
                         decimal(minor, exponent), currency, reason,
                         stage.upper()]
            else:
                due = trim(get("due_date", ""))
                if due:
                    due = "".join(compact_date(due))
                cells = [case_id, merchant_id, trim(get("mcc", "")), pan, arn,
                         ty + tm + td, cb_compact, due,
                         decimal(minor, exponent), currency, reason,
                         stage.upper()]
            router.add(network, cells, currency, minor)
        rf.flush()
        os.fsync(rf.fileno())
    files = router.finish()
    return records, accepted, records - accepted, files, latest, rejects_path


def make_batches(files, work_dir, input_id, date):
    """Step 5: batches of MAX_FILES_PER_BATCH with their manifests."""
    batches = []
    for start in range(0, len(files), MAX_FILES_PER_BATCH):
        seq = len(batches) + 1
        batch_id = f"{input_id}-b{seq:03d}"
        folder = os.path.join(work_dir, "batches", batch_id)
        os.makedirs(folder, exist_ok=True)
        entries = []
        for f in files[start:start + MAX_FILES_PER_BATCH]:
            f.name = (f"{f.network}_{date}_{input_id}_b{seq:03d}"
                      f"_f{f.seq:03d}.csv")
            final = os.path.join(folder, f.name)
            os.rename(f.path, final)
            f.path = final
            entries.append({
                "bytes": f.bytes, "columns": f.columns,
                "destination": f.network, "file_seq": f.seq,
                "layout": f.network, "name": f.name, "network": f.network,
                "records": f.records, "sha256": f.sha256,
                "totals": dict(sorted(f.totals.items())),
                "trailer": "count_and_total" if f.layout["trailer"]
                else "none"})
        manifest = {"batch_id": batch_id, "files": entries,
                    "input_id": input_id, "seq": seq, "version": 1}
        path = os.path.join(folder, "manifest.json")
        with open(path, "w", encoding="utf-8") as mf:
            json.dump(manifest, mf, indent=2, sort_keys=True)
            mf.flush()
            os.fsync(mf.fileno())
        fsync_dir(folder)
        batches.append((batch_id, folder, files[start:start +
                                                 MAX_FILES_PER_BATCH]))
    return batches


def verify(f):
    """Step 6: what cbpipe's VerifyBatch checks, via the csv module."""
    if (os.path.getsize(f.path) != f.bytes
            or sha256_file(f.path) != f.sha256):
        return f"{f.name}: size or SHA-256 differs from the manifest"
    layout = f.layout
    with open(f.path, newline="", encoding="utf-8") as fh:
        return verify_rows(f, csv.reader(fh, strict=True))


def verify_rows(f, rows):
    layout = f.layout
    if next(rows, None) != layout["header"]:
        return f"{f.name}: header differs from the layout"
    amount_col, currency_col = layout["amount"], layout["currency"]
    minor_col = f.network == "mastercard"
    count = 0
    totals = {}
    trailer = None
    for row in rows:
        if len(row) != f.columns:
            return f"{f.name}: row {count + 2} has {len(row)} cells"
        if trailer is not None:
            return f"{f.name}: a row after the trailer"
        if layout["trailer"] and row[0] == "TRAILER":
            trailer = row
            continue
        count += 1
        currency = row[currency_col]
        text = row[amount_col]
        minor = int(text) if minor_col else minor_units(
            text, EXPONENTS[currency])
        totals[currency] = totals.get(currency, 0) + minor
    if count != f.records or totals != f.totals:
        return f"{f.name}: rows or totals differ from the manifest"
    if layout["trailer"]:
        expected = f.trailer().decode().rstrip(CRLF).split(",")
        if trailer != expected:
            return f"{f.name}: trailer differs"
    return None


def deliver(batches, work_dir):
    """Step 7: copy to the file:// folders with fsync; SQLite ledger."""
    db = sqlite3.connect(os.path.join(work_dir, "ledger.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS deliveries (destination TEXT NOT "
               "NULL, remote_name TEXT NOT NULL, size INTEGER NOT NULL, "
               "sha256 TEXT NOT NULL, batch_id TEXT NOT NULL, state TEXT NOT "
               "NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (destination, "
               "remote_name))")
    db.commit()
    for batch_id, _, files in batches:
        for f in files:
            folder = os.path.join(work_dir, "outbox", f.network)
            os.makedirs(folder, exist_ok=True)
            target = os.path.join(folder, f.name)
            if os.path.exists(target):
                raise RuntimeError(f"{target} exists")
            db.execute("INSERT OR REPLACE INTO deliveries VALUES "
                       "(?, ?, ?, ?, ?, 'intent', ?)",
                       (f.network, f.name, f.bytes, f.sha256, batch_id,
                        int(time.time())))
            db.commit()
            copy_durably(f.path, target)
            if os.path.getsize(target) != f.bytes:
                raise RuntimeError(f"{target}: wrong size after the copy")
            db.execute("UPDATE deliveries SET state = 'delivered', "
                       "updated_at = ? WHERE destination = ? AND "
                       "remote_name = ?", (int(time.time()), f.network,
                                           f.name))
            db.commit()
    db.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input")
    parser.add_argument("outdir", help="work dir (like cbpipe --work-dir)")
    parser.add_argument("--format", default="auto",
                        choices=["auto", "csv", "jsonl"])
    parser.add_argument("--now", type=int, help="epoch seconds")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary")
    args = parser.parse_args()

    start = time.perf_counter()
    now = pv.now_epoch(args.now)
    fmt = args.format if args.format != "auto" else pv.detect_format(
        args.input)
    work_dir = args.outdir
    os.makedirs(work_dir, exist_ok=True)
    input_id = sha256_file(args.input)[:16]
    try:
        records, accepted, rejected, files, latest, rejects_path = generate(
            args.input, fmt, work_dir, input_id, now)
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        print(f"{args.input}: UNREADABLE: {e}", file=sys.stderr)
        return 2
    batches = make_batches(files, work_dir, input_id, latest)
    problems = [p for f in files if (p := verify(f))]
    if problems:
        for p in problems:
            print(f"verification failed: {p}", file=sys.stderr)
        return 2
    deliver(batches, work_dir)
    seconds = time.perf_counter() - start

    summary = {
        "input": args.input, "input_id": input_id, "format": fmt,
        "records": records, "accepted": accepted, "rejected": rejected,
        "rejects_file": rejects_path,
        "files": [{"batch": b, "network": f.network, "file_seq": f.seq,
                   "name": f.name, "records": f.records, "bytes": f.bytes,
                   "sha256": f.sha256} for b, _, fs in batches for f in fs],
        "seconds": round(seconds, 3),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.input} ({fmt}): {records} records, {accepted} "
              f"accepted, {rejected} rejected in {seconds:.2f} s")
        for f in summary["files"]:
            print(f"  {f['batch']} {f['name']} {f['records']} records "
                  f"{f['bytes']} bytes")
    return 1 if rejected else 0


if __name__ == "__main__":
    sys.exit(main())
