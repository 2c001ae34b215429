#!/usr/bin/env python3
"""Reference implementation of `cbpipe validate` in plain Python.

It applies the same per-record rules as src/validate/validator.cc (DESIGN.md
section 3) so the benchmark can check that cbpipe accepts and rejects exactly
the same records, and compare throughput with a straightforward, idiomatic
implementation: the csv module for CSV, json for JSON Lines, string
operations and integers for amounts (never a float), a set for duplicate case
ids. The currency and reason-code tables are read from src/domain/data/, the
same files cbpipe compiles in.

    py_validate.py [--format auto|csv|jsonl] [--now EPOCH] [--json] INPUT...

The present is --now, else $CBPIPE_NOW (epoch seconds or ISO 8601), else the
clock. Exit status: 0 all valid, 1 some rejected, 2 an input unreadable.
"""

import argparse
import csv
import json
import os
import re
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = os.path.join(HERE, "..", "src", "domain", "data")

# --- Field names (src/domain/record.cc) ------------------------------------

FIELDS = [
    "case_id", "network", "arn", "pan", "merchant_id", "transaction_date",
    "chargeback_date", "amount", "currency", "reason_code", "stage",
    "transaction_id", "merchant_name", "mcc", "reason_text", "due_date",
    "transaction_amount", "status",
]
ALIASES = {name: name for name in FIELDS}
ALIASES.update({
    "case_number": "case_id", "dispute_id": "case_id",
    "chargeback_id": "case_id", "card_network": "network",
    "card_brand": "network", "scheme": "network",
    "acquirer_reference_number": "arn", "card_number": "pan",
    "masked_pan": "pan", "mid": "merchant_id",
    "dispute_date": "chargeback_date", "chargeback_amount": "amount",
    "dispute_amount": "amount", "currency_code": "currency",
    "reason": "reason_code", "dispute_stage": "stage",
    "respond_by": "due_date",
})
SENSITIVE = {
    "cvv", "cvv2", "cvc", "cvc2", "cid", "cav2", "cvn", "csc", "cvd",
    "securitycode", "cardsecuritycode", "cardverificationvalue", "track",
    "track1", "track2", "trackdata", "track1data", "track2data", "magstripe",
    "magstripedata", "pin", "pinblock",
}


def normalise_name(name):
    name = name.strip()
    return name.lower().replace(" ", "_").replace("-", "_").replace(".", "_")


def field_from_name(name):
    return ALIASES.get(normalise_name(name))


def is_sensitive_name(name):
    return normalise_name(name).replace("_", "") in SENSITIVE


# --- Networks (src/domain/network.cc) --------------------------------------

NETWORK_ALIASES = {
    "VI": "visa", "VISA": "visa", "MC": "mastercard",
    "MASTERCARD": "mastercard", "MASTER CARD": "mastercard", "AX": "amex",
    "AMEX": "amex", "AMERICAN EXPRESS": "amex", "DI": "discover",
    "DS": "discover", "DISC": "discover", "DISCOVER": "discover",
}
IIN_RANGES = [  # (prefix length, low, high, network)
    (1, 4, 4, "visa"), (2, 51, 55, "mastercard"),
    (4, 2221, 2720, "mastercard"), (2, 34, 34, "amex"), (2, 37, 37, "amex"),
    (4, 6011, 6011, "discover"), (3, 644, 649, "discover"),
    (2, 65, 65, "discover"), (6, 622126, 622925, "discover"),
]
ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz",
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DIGITS = frozenset("0123456789")


def parse_network(text):
    text = text.strip(" ")
    if not text or len(text) > 16:
        return None
    return NETWORK_ALIASES.get(text.translate(ASCII_UPPER))


def network_from_pan(pan):
    pan = pan.lstrip(" ")
    prefix = ""
    for c in pan:
        if len(prefix) == 6:
            break
        if c in DIGITS:
            prefix += c
        elif c not in " -":
            break
    for length, low, high, network in IIN_RANGES:
        if len(prefix) >= length and low <= int(prefix[:length]) <= high:
            return network
    return None


# --- ARN, PAN (src/domain/rules.cc) ----------------------------------------

def all_digits(s):
    return bool(s) and s.isascii() and s.isdigit()


def luhn_valid(digits):
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def classify_pan(pan):
    """'full', 'masked' or 'invalid'."""
    digits = []
    only_digits_and_separators = True
    for c in pan:
        if c in DIGITS:
            if len(digits) == 19:
                only_digits_and_separators = False
                break
            digits.append(c)
        elif c not in " -\t":
            only_digits_and_separators = False
            break
    if only_digits_and_separators:
        full = len(digits) >= 12 and luhn_valid("".join(digits))
        return "full" if full else "invalid"
    n = len(pan)
    i = 0
    while i < n and pan[i] in DIGITS:
        i += 1
    leading = i
    if i == n or pan[i] not in "*Xx":
        return "invalid"
    mask = pan[i]
    while i < n and pan[i] == mask:
        i += 1
    mask_length = i - leading
    trailing_start = i
    while i < n and pan[i] in DIGITS:
        i += 1
    trailing = i - trailing_start
    if i != n or leading > 6 or trailing > 4:
        return "invalid"
    if leading > 0:
        return "masked" if 12 <= n <= 19 else "invalid"
    return "masked" if mask_length >= 4 and n <= 19 else "invalid"


# --- Money -------------------------------------------------------------------

AMOUNT_RE = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?")
MAX_MINOR_UNITS = 10 ** 15


def parse_amount(text, exponent):
    """None when valid, else 'invalid', 'precision', 'not_positive' or
    'too_large' (the order of src/domain/rules.cc ParseAmount)."""
    m = AMOUNT_RE.fullmatch(text)
    if m is None:
        return "invalid"
    sign, whole, fraction = m.groups()
    if sign == "-":
        return "not_positive"
    fraction = fraction or ""
    if len(fraction) > exponent:
        return "precision"
    value = int(whole + fraction + "0" * (exponent - len(fraction)))
    if value > MAX_MINOR_UNITS:
        return "too_large"
    if value == 0:
        return "not_positive"
    return None


# --- Dates (src/domain/dates.cc) ---------------------------------------------

_TIME_TAIL = r"(?:[.,][0-9]+)?"
_OFFSET = r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?"
ISO_EXTENDED = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})" + _TIME_TAIL + r")?"
    + _OFFSET + r")?")
ISO_BASIC = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})"
    r"(?:[Tt ]([0-9]{2})([0-9]{2})(?:([0-9]{2})" + _TIME_TAIL + r")?"
    + _OFFSET + r")?")
DAYS_IN_MONTH = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_from_civil(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_date(text):
    """(has_time, epoch_days, epoch_seconds) or None."""
    m = ISO_EXTENDED.fullmatch(text) or ISO_BASIC.fullmatch(text)
    if m is None:
        return None
    y, mo, d, hh, mm, ss, offset = m.groups()
    y, mo, d = int(y), int(mo), int(d)
    if y < 1 or not 1 <= mo <= 12:
        return None
    dim = 29 if mo == 2 and is_leap(y) else DAYS_IN_MONTH[mo]
    if not 1 <= d <= dim:
        return None
    days = days_from_civil(y, mo, d)
    if hh is None:
        return (False, days, days * 86400)
    h, mi, s = int(hh), int(mm), int(ss or 0)
    if h > 23 or mi > 59 or s > 59:
        return None
    offset_minutes = 0
    if offset and offset not in "Zz":
        digits = offset[1:].replace(":", "")
        om = int(digits[2:])
        if om > 59:
            return None
        offset_minutes = int(digits[:2]) * 60 + om
        if offset_minutes > 18 * 60:
            return None
        if offset[0] == "-":
            offset_minutes = -offset_minutes
    seconds = days * 86400 + h * 3600 + mi * 60 + s - offset_minutes * 60
    return (True, days, seconds)


# --- Stages (src/domain/record.cc) -------------------------------------------

STAGES = {
    "retrieval", "first_chargeback", "representment", "pre_arbitration",
    "arbitration", "second_presentment", "request_for_information", "rfi",
    "chargeback",
}


def parse_stage(text):
    return normalise_name(text) in STAGES


# --- Reference tables ----------------------------------------------------------

def load_tables(data_dir):
    currencies = {}
    with open(os.path.join(data_dir, "currencies.csv"), newline="",
              encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code = row["code"].strip()
            units = row["minor_units"].strip()
            if (len(code) == 3 and code.isascii() and code.isupper()
                    and len(units) == 1 and units.isdigit()
                    and code not in currencies):
                currencies[code] = int(units)
    reasons = {n: set() for n in ("visa", "mastercard", "amex", "discover")}
    with open(os.path.join(data_dir, "reason_codes.csv"), newline="",
              encoding="utf-8") as f:
        for row in csv.DictReader(f):
            network = parse_network(row["network"].strip(" \t"))
            code = row["code"].strip(" \t")
            if (network and code and len(code) <= 15
                    and row["status"].strip(" \t") in ("current", "legacy")):
                reasons[network].add(code.translate(ASCII_UPPER))
    return currencies, reasons


# --- The validator -------------------------------------------------------------

def trim(s):
    return s.lstrip(" \t").rstrip(" \t\r\n")


class Validator:
    def __init__(self, currencies, reasons, now, pan_policy="mask"):
        self.currencies = currencies
        self.reasons = reasons
        self.now = now
        self.today_limit = now // 86400 + 1
        self.pan_policy = pan_policy
        self.seen = set()

    def validate(self, rec, sensitive, malformed):
        """`rec`: canonical field -> text. Returns the list of error codes."""
        errors = []
        add = errors.append
        if malformed:
            add("BAD_FORMAT")
        for _ in sensitive:
            add("SENSITIVE_DATA")
        get = rec.get

        def required(field):
            v = trim(get(field, ""))
            if not v:
                add("MISSING_FIELD")
            return v

        case_id = required("case_id")
        if case_id:
            if case_id in self.seen:
                add("DUPLICATE_CASE")
            else:
                self.seen.add(case_id)

        pan = trim(get("pan", ""))
        if pan:
            kind = classify_pan(pan)
            if kind == "full":
                if self.pan_policy == "reject":
                    add("PAN_NOT_MASKED")
            elif kind == "invalid":
                add("BAD_FORMAT")

        network = None
        network_text = trim(get("network", ""))
        if network_text:
            network = parse_network(network_text)
            if network is None:
                add("NETWORK_UNKNOWN")
            elif pan:
                from_pan = network_from_pan(pan)
                if from_pan and from_pan != network:
                    add("NETWORK_MISMATCH")
        elif pan:
            network = network_from_pan(pan)
            if network is None:
                add("NETWORK_UNKNOWN")
        else:
            add("MISSING_FIELD")

        arn = trim(get("arn", ""))
        if network in ("visa", "mastercard"):
            if not arn:
                add("MISSING_FIELD")
            elif len(arn) != 23 or not all_digits(arn):
                add("ARN_FORMAT")
            elif not luhn_valid(arn):
                add("ARN_CHECK_DIGIT")
        elif network and arn:
            if not (8 <= len(arn) <= 30 and all_digits(arn)):
                add("ARN_FORMAT")

        required("merchant_id")

        currency_text = required("currency")
        exponent = None
        if currency_text:
            if len(currency_text) == 3:
                exponent = self.currencies.get(
                    currency_text.translate(ASCII_UPPER))
            if exponent is None:
                add("CURRENCY_UNKNOWN")

        def check_amount(text):
            problem = parse_amount(text, 4 if exponent is None else exponent)
            if problem == "precision":
                if exponent is not None:
                    add("AMOUNT_PRECISION")
            elif problem:
                add("AMOUNT_INVALID")

        amount = required("amount")
        if amount:
            check_amount(amount)
        txn_amount = trim(get("transaction_amount", ""))
        if txn_amount:
            check_amount(txn_amount)

        reason = required("reason_code")
        if reason and network:
            key = reason.strip(" \t")
            if len(key) > 15 or key.translate(ASCII_UPPER) not in \
                    self.reasons[network]:
                add("UNKNOWN_REASON_CODE")

        txn_text = required("transaction_date")
        cb_text = required("chargeback_date")
        txn = cb = None
        if txn_text:
            txn = parse_date(txn_text)
            if txn is None:
                add("DATE_INVALID")
        if cb_text:
            cb = parse_date(cb_text)
            if cb is None:
                add("DATE_INVALID")
        if txn and cb:
            if txn[0] and cb[0]:
                before = cb[2] < txn[2]
            else:
                before = cb[1] < txn[1]
            if before:
                add("DATE_ORDER")
        if cb:
            future = cb[2] > self.now if cb[0] else cb[1] > self.today_limit
            if future:
                add("DATE_FUTURE")
        due = trim(get("due_date", ""))
        if due and parse_date(due) is None:
            add("DATE_INVALID")

        stage = trim(get("stage", ""))
        if stage and not parse_stage(stage):
            add("BAD_FORMAT")

        mcc = trim(get("mcc", ""))
        if mcc and not (len(mcc) == 4 and all_digits(mcc)):
            add("BAD_FORMAT")
        return errors


# --- Readers -------------------------------------------------------------------

def read_csv(path):
    """Yields (fields, sensitive names, malformed) per record."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        header = None
        for row in rows:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            header = row
            break
        if header is None:
            raise ValueError("no header")
        columns = []  # (index, field) for known columns
        sensitive_columns = []
        taken = set()
        for i, name in enumerate(header):
            if is_sensitive_name(name):
                sensitive_columns.append((i, name))
                continue
            field = field_from_name(name)
            if field and field not in taken:
                taken.add(field)
                columns.append((i, field))
        width = len(header)
        for row in rows:
            if not row or (len(row) == 1 and not row[0] and width > 1):
                continue
            rec = {field: row[i] for i, field in columns if i < len(row)}
            sensitive = [name for i, name in sensitive_columns
                         if i < len(row) and row[i]]
            yield rec, sensitive, len(row) != width


def read_jsonl(path):
    with open(path, encoding="utf-8-sig") as f:
        loads = json.loads
        for line in f:
            if not line.strip():
                continue
            try:
                obj = loads(line, parse_float=str, parse_int=str)
            except ValueError:
                yield {}, [], True
                continue
            if not isinstance(obj, dict):
                yield {}, [], True
                continue
            rec = {}
            sensitive = []
            malformed = False
            for key, value in obj.items():
                if is_sensitive_name(key):
                    if value is not None and value != "":
                        sensitive.append(key)
                    continue
                field = field_from_name(key)
                if field is None or value is None:
                    continue
                if isinstance(value, str):
                    rec[field] = value
                elif isinstance(value, bool):
                    rec[field] = "true" if value else "false"
                else:  # object or array
                    malformed = True
            yield rec, sensitive, malformed


def detect_format(path):
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head.startswith(b"{") else "csv"


def now_epoch(arg):
    if arg is not None:
        return arg
    fixed = os.environ.get("CBPIPE_NOW", "")
    if fixed:
        if fixed.isdigit():
            return int(fixed)
        parsed = parse_date(fixed)
        if parsed is None:
            sys.exit("CBPIPE_NOW must be epoch seconds or ISO 8601")
        return parsed[2]
    return int(time.time())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--format", default="auto",
                        choices=["auto", "csv", "jsonl"])
    parser.add_argument("--now", type=int, help="epoch seconds")
    parser.add_argument("--pan-policy", default="mask",
                        choices=["mask", "reject"])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary")
    args = parser.parse_args()

    currencies, reasons = load_tables(args.data_dir)
    now = now_epoch(args.now)
    results = []
    status = 0
    for path in args.inputs:
        fmt = args.format if args.format != "auto" else detect_format(path)
        validator = Validator(currencies, reasons, now, args.pan_policy)
        reader = read_csv if fmt == "csv" else read_jsonl
        records = accepted = 0
        codes = Counter()
        start = time.perf_counter()
        try:
            for rec, sensitive, malformed in reader(path):
                records += 1
                errors = validator.validate(rec, sensitive, malformed)
                if errors:
                    codes.update(errors)
                else:
                    accepted += 1
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            print(f"{path}: UNREADABLE: {e}", file=sys.stderr)
            status = 2
            continue
        seconds = time.perf_counter() - start
        rejected = records - accepted
        if rejected and status == 0:
            status = 1
        results.append({
            "input": path, "format": fmt, "records": records,
            "accepted": accepted, "rejected": rejected,
            "errors_by_code": dict(sorted(codes.items())),
            "seconds": round(seconds, 3),
        })
    if args.json:
        print(json.dumps({"inputs": results}, indent=2))
    else:
        for r in results:
            print(f"{r['input']} ({r['format']}): {r['records']} records, "
                  f"{r['accepted']} accepted, {r['rejected']} rejected "
                  f"in {r['seconds']:.2f} s")
            for code, n in r["errors_by_code"].items():
                print(f"  {code} {n}")
    return status


if __name__ == "__main__":
    sys.exit(main())
