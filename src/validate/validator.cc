#include "validate/validator.h"

#include <algorithm>
#include <string>

#include "common/text_safety.h"
#include "domain/dates.h"
#include "domain/pan.h"
#include "domain/rules.h"

namespace cbpipe {
namespace {

inline bool MayTrim(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// Called for every field of every record; nearly all are already trimmed.
inline std::string_view Trim(std::string_view s) {
  if (s.empty() || (!MayTrim(s.front()) && !MayTrim(s.back()))) return s;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' ||
                        s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Values are echoed in messages only when short and free of card numbers;
// a long value is cut so a report line stays readable.
// (Masked before it is cut, so a cut never leaves part of a card number
// unmasked.)
std::string Quote(std::string_view value) {
  std::string shown;
  if (value.size() <= 64) {
    shown.assign(value);
    MaskCardNumbersInPlace(&shown);
  } else {
    shown = MaskCardNumbers(value).substr(0, 64) + "...";
  }
  return "'" + shown + "'";
}

std::string DuplicateMessage(std::string_view case_id) {
  return "case_id " + Quote(case_id) + " appears earlier in this input";
}

class ErrorSink {
 public:
  ErrorSink(const RawRecord& raw, std::vector<RecordError>* errors)
      : raw_(raw), errors_(errors) {}

  // Whatever goes into a RecordError passes the one card-number masker: a
  // case id, a source column or JSON key name, or a reader's message may
  // hold one.
  void Add(std::string_view field, ErrorCode code, std::string message) {
    RecordError& e = errors_->emplace_back();
    e.position = raw_.position;
    e.case_id.assign(Trim(raw_.value(Field::kCaseId)));
    MaskCardNumbersInPlace(&e.case_id);
    e.field = std::string(field);
    MaskCardNumbersInPlace(&e.field);
    e.code = code;
    e.message = std::move(message);
    MaskCardNumbersInPlace(&e.message);
    ++count_;
  }
  void Add(Field field, ErrorCode code, std::string message) {
    Add(FieldName(field), code, std::move(message));
  }
  int count() const { return count_; }

 private:
  const RawRecord& raw_;
  std::vector<RecordError>* errors_;
  int count_ = 0;
};

std::string_view AmountProblemText(AmountProblem p) {
  switch (p) {
    case AmountProblem::kInvalid:
      return "is not a plain decimal number (digits with an optional "
             "'.', no exponent, no thousand separators)";
    case AmountProblem::kNotPositive: return "must be greater than zero";
    case AmountProblem::kTooLarge: return "exceeds 10^15 minor units";
    default: return "is invalid";
  }
}

// Parses an amount field into minor units, adding the error it finds.
bool CheckAmount(Field field, std::string_view text, const CurrencyInfo* cur,
                 ErrorSink& sink, int64_t* minor) {
  // Without a known currency the precision cannot be judged, but the
  // format still can: the widest exponent in ISO 4217 is 4.
  const int exponent = cur ? cur->minor_units : 4;
  ParsedAmount parsed = ParseAmount(text, exponent);
  if (parsed.problem == AmountProblem::kNone) {
    *minor = parsed.minor;
    return true;
  }
  if (parsed.problem == AmountProblem::kPrecision) {
    if (cur) {
      sink.Add(field, ErrorCode::kAmountPrecision,
               std::string(FieldName(field)) + " " + Quote(text) +
                   " has more decimals than " + std::string(cur->code) +
                   " allows (" + std::to_string(cur->minor_units) + ")");
    }
    return false;
  }
  sink.Add(field, ErrorCode::kAmountInvalid,
           std::string(FieldName(field)) + " " + Quote(text) + " " +
               std::string(AmountProblemText(parsed.problem)));
  return false;
}

// Date-only values are compared as calendar dates; two date-times by the
// instant they name.
int CompareDates(const DateTime& a, const DateTime& b) {
  if (a.has_time && b.has_time) {
    const int64_t x = a.EpochSeconds(), y = b.EpochSeconds();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  const int64_t x = a.EpochDays(), y = b.EpochDays();
  return x < y ? -1 : (x > y ? 1 : 0);
}

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMissingField: return "MISSING_FIELD";
    case ErrorCode::kBadFormat: return "BAD_FORMAT";
    case ErrorCode::kNetworkUnknown: return "NETWORK_UNKNOWN";
    case ErrorCode::kNetworkMismatch: return "NETWORK_MISMATCH";
    case ErrorCode::kArnCheckDigit: return "ARN_CHECK_DIGIT";
    case ErrorCode::kArnFormat: return "ARN_FORMAT";
    case ErrorCode::kUnknownReasonCode: return "UNKNOWN_REASON_CODE";
    case ErrorCode::kCurrencyUnknown: return "CURRENCY_UNKNOWN";
    case ErrorCode::kAmountInvalid: return "AMOUNT_INVALID";
    case ErrorCode::kAmountPrecision: return "AMOUNT_PRECISION";
    case ErrorCode::kDateInvalid: return "DATE_INVALID";
    case ErrorCode::kDateOrder: return "DATE_ORDER";
    case ErrorCode::kDateFuture: return "DATE_FUTURE";
    case ErrorCode::kDuplicateCase: return "DUPLICATE_CASE";
    case ErrorCode::kSensitiveData: return "SENSITIVE_DATA";
    case ErrorCode::kPanNotMasked: return "PAN_NOT_MASKED";
    case ErrorCode::kNoDestination: return "NO_DESTINATION";
    case ErrorCode::kRecordTooLarge: return "RECORD_TOO_LARGE";
    case ErrorCode::kPanInField: return "PAN_IN_FIELD";
    case ErrorCode::kControlCharacter: return "CONTROL_CHARACTER";
  }
  return "BAD_FORMAT";
}

Validator::Validator(ValidatorOptions options) : options_(std::move(options)) {}

bool Validator::Validate(const RawRecord& raw, Record* out,
                         std::vector<RecordError>* errors) {
  const size_t first_error = errors->size();
  DuplicateCheck check;
  const bool valid = ValidateAllButDuplicate(raw, out, errors, &check);
  return CheckDuplicate(check, *out, &seen_, errors, first_error) && valid;
}

bool Validator::ValidateAllButDuplicate(const RawRecord& raw, Record* out,
                                        std::vector<RecordError>* errors,
                                        DuplicateCheck* check) {
  const size_t first_error = errors->size();
  ErrorSink sink(raw, errors);
  Record& rec = *out;
  rec.position = raw.position;

  if (!raw.malformed.empty()) {
    sink.Add(raw.malformed_field.empty()
                 ? std::string_view("record")
                 : std::string_view(raw.malformed_field),
             ErrorCode::kBadFormat, raw.malformed);
  }
  for (const std::string& name : raw.sensitive_fields) {
    sink.Add(name, ErrorCode::kSensitiveData,
             "record carries sensitive authentication data ('" + name +
                 "'); such records are refused and the value is discarded");
  }

  auto required = [&](Field f) -> std::string_view {
    std::string_view v = Trim(raw.value(f));
    if (v.empty()) {
      sink.Add(f, ErrorCode::kMissingField,
               std::string(FieldName(f)) + " is required");
    }
    return v;
  };

  // case_id. The duplicate check is left to the caller (CheckDuplicate),
  // its error to go in this place.
  std::string_view case_id = required(Field::kCaseId);
  check->fingerprint = 0;
  check->error_index = static_cast<uint32_t>(errors->size() - first_error);
  if (!case_id.empty()) {
    check->fingerprint = DuplicateSet::Fingerprint(case_id);
    rec.case_id.assign(case_id);
  }

  // pan (optional); masked before anything else looks at it
  std::string_view pan = Trim(raw.value(Field::kPan));
  rec.pan_masked.clear();
  if (!pan.empty()) {
    switch (ClassifyPan(pan)) {
      case PanKind::kFull:
        if (options_.pan_policy == PanPolicy::kReject) {
          sink.Add(Field::kPan, ErrorCode::kPanNotMasked,
                   "pan holds a full card number and the policy is reject; "
                   "send it masked (first 6 and last 4 digits at most)");
        } else {
          rec.pan_masked = MaskPan(pan);
        }
        break;
      case PanKind::kMasked: rec.pan_masked.assign(pan); break;
      case PanKind::kInvalid:
        sink.Add(Field::kPan, ErrorCode::kBadFormat,
                 "pan is neither a valid card number nor a masked one "
                 "(first 6 and last 4 digits at most, '*' or 'X' between)");
        break;
    }
  }

  // network: given, or derived from the PAN's leading digits
  std::optional<Network> network;
  std::string_view network_text = Trim(raw.value(Field::kNetwork));
  if (!network_text.empty()) {
    network = ParseNetwork(network_text);
    if (!network) {
      sink.Add(Field::kNetwork, ErrorCode::kNetworkUnknown,
               "network " + Quote(network_text) +
                   " is not visa, mastercard, amex or discover");
    } else if (!pan.empty()) {
      std::optional<Network> from_pan = NetworkFromPan(pan);
      if (from_pan && *from_pan != *network) {
        sink.Add(Field::kNetwork, ErrorCode::kNetworkMismatch,
                 "network " + std::string(NetworkName(*network)) +
                     " disagrees with the card number, which is " +
                     std::string(NetworkName(*from_pan)));
      }
    }
  } else if (!pan.empty()) {
    network = NetworkFromPan(pan);
    if (!network) {
      sink.Add(Field::kNetwork, ErrorCode::kNetworkUnknown,
               "network is absent and the card number's leading digits "
               "match no network");
    }
  } else {
    sink.Add(Field::kNetwork, ErrorCode::kMissingField,
             "network is required when no card number is given");
  }
  if (network) rec.network = *network;

  // arn: 23 digits with a Luhn check digit for Visa and Mastercard
  std::string_view arn = Trim(raw.value(Field::kArn));
  rec.arn.clear();
  if (network) {
    const bool needs_arn =
        *network == Network::kVisa || *network == Network::kMastercard;
    if (needs_arn) {
      if (arn.empty()) {
        sink.Add(Field::kArn, ErrorCode::kMissingField,
                 "arn is required for " + std::string(NetworkName(*network)));
      } else {
        switch (CheckArn23(arn)) {
          case ArnProblem::kNone: rec.arn.assign(arn); break;
          case ArnProblem::kFormat:
            sink.Add(Field::kArn, ErrorCode::kArnFormat,
                     "arn " + Quote(arn) + " must be exactly 23 digits");
            break;
          case ArnProblem::kCheckDigit:
            sink.Add(Field::kArn, ErrorCode::kArnCheckDigit,
                     "arn " + Quote(arn) + " fails the Luhn check digit");
            break;
        }
      }
    } else if (!arn.empty()) {
      if (IsValidOptionalReference(arn)) {
        rec.arn.assign(arn);
      } else {
        sink.Add(Field::kArn, ErrorCode::kArnFormat,
                 "arn " + Quote(arn) + " must be 8 to 30 digits for " +
                     std::string(NetworkName(*network)));
      }
    }
  }

  // merchant_id
  std::string_view merchant = required(Field::kMerchantId);
  rec.merchant_id.assign(merchant);

  // currency, then the amounts that depend on its exponent
  std::string_view currency_text = required(Field::kCurrency);
  const CurrencyInfo* currency = nullptr;
  if (!currency_text.empty()) {
    char upper[4] = {0, 0, 0, 0};
    if (currency_text.size() == 3) {
      for (int i = 0; i < 3; ++i) {
        char c = currency_text[i];
        upper[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
      }
      currency = FindCurrency(std::string_view(upper, 3));
    }
    if (!currency) {
      sink.Add(Field::kCurrency, ErrorCode::kCurrencyUnknown,
               "currency " + Quote(currency_text) + " is not an ISO 4217 code");
    } else {
      rec.currency.assign(currency->code);
      rec.currency_exponent = currency->minor_units;
    }
  }
  std::string_view amount = required(Field::kAmount);
  if (!amount.empty()) {
    CheckAmount(Field::kAmount, amount, currency, sink, &rec.amount_minor);
  }
  rec.transaction_amount_minor.reset();
  std::string_view txn_amount = Trim(raw.value(Field::kTransactionAmount));
  if (!txn_amount.empty()) {
    int64_t minor = 0;
    if (CheckAmount(Field::kTransactionAmount, txn_amount, currency, sink,
                    &minor)) {
      rec.transaction_amount_minor = minor;
    }
  }

  // reason code, for the record's network
  std::string_view reason = required(Field::kReasonCode);
  if (!reason.empty() && network) {
    const ReasonCodeInfo* info = FindReasonCode(*network, reason);
    if (!info) {
      sink.Add(Field::kReasonCode, ErrorCode::kUnknownReasonCode,
               "reason code " + Quote(reason) + " is not a " +
                   std::string(NetworkName(*network)) + " reason code");
    } else {
      rec.reason_code.assign(info->code);
    }
  }

  // dates
  auto parse_date = [&](Field f, std::string_view text,
                        DateTime* value) -> bool {
    std::optional<DateTime> d =
        ParseDateTime(text, options_.extra_date_formats);
    if (!d) {
      sink.Add(f, ErrorCode::kDateInvalid,
               std::string(FieldName(f)) + " " + Quote(text) +
                   " is not a valid date (ISO 8601, e.g. 2025-03-01)");
      return false;
    }
    *value = *d;
    return true;
  };
  std::string_view txn_date = required(Field::kTransactionDate);
  std::string_view cb_date = required(Field::kChargebackDate);
  const bool txn_ok =
      !txn_date.empty() &&
      parse_date(Field::kTransactionDate, txn_date, &rec.transaction_date);
  const bool cb_ok =
      !cb_date.empty() &&
      parse_date(Field::kChargebackDate, cb_date, &rec.chargeback_date);
  if (txn_ok && cb_ok &&
      CompareDates(rec.chargeback_date, rec.transaction_date) < 0) {
    sink.Add(Field::kChargebackDate, ErrorCode::kDateOrder,
             "chargeback_date " + rec.chargeback_date.ToIso() +
                 " is before transaction_date " + rec.transaction_date.ToIso());
  }
  if (cb_ok) {
    // A date without a time is compared with today's date in UTC plus one
    // day, so a sender east of UTC is not refused for its local "today".
    const bool future =
        rec.chargeback_date.has_time
            ? rec.chargeback_date.EpochSeconds() > options_.now_epoch_seconds
            : rec.chargeback_date.EpochDays() >
                  options_.now_epoch_seconds / 86400 + 1;
    if (future) {
      sink.Add(Field::kChargebackDate, ErrorCode::kDateFuture,
               "chargeback_date " + rec.chargeback_date.ToIso() +
                   " is in the future");
    }
  }
  rec.due_date.reset();
  std::string_view due = Trim(raw.value(Field::kDueDate));
  if (!due.empty()) {
    DateTime d;
    if (parse_date(Field::kDueDate, due, &d)) rec.due_date = d;
  }

  // stage (optional, default first_chargeback)
  rec.stage = Stage::kFirstChargeback;
  std::string_view stage = Trim(raw.value(Field::kStage));
  if (!stage.empty()) {
    std::optional<Stage> s = ParseStage(stage);
    if (!s) {
      sink.Add(Field::kStage, ErrorCode::kBadFormat,
               "stage " + Quote(stage) +
                   " is not one of retrieval, first_chargeback, "
                   "representment, pre_arbitration, arbitration");
    } else {
      rec.stage = *s;
    }
  }

  // mcc (optional): 4 digits
  std::string_view mcc = Trim(raw.value(Field::kMcc));
  if (!mcc.empty() && !(mcc.size() == 4 && AllDigits(mcc))) {
    sink.Add(Field::kMcc, ErrorCode::kBadFormat,
             "mcc " + Quote(mcc) + " must be 4 digits");
  }
  rec.mcc.assign(mcc);

  // Free-text fields are kept, with any card number in them masked, in
  // whatever form it was written ("4111 1111 1111 1111" too).
  auto free_text = [&](Field f, std::string* dst) {
    dst->assign(Trim(raw.value(f)));
    MaskCardNumbersInPlace(dst);
  };
  rec.transaction_id.assign(Trim(raw.value(Field::kTransactionId)));
  rec.status.assign(Trim(raw.value(Field::kStatus)));
  free_text(Field::kMerchantName, &rec.merchant_name);
  free_text(Field::kReasonText, &rec.reason_text);

  // Any other field holding a card number (plain or with separators) is
  // neither delivered nor silently altered: an identifier changed by a mask
  // would no longer identify anything. The record is rejected and the
  // report shows the value masked.
  for (int i = 0; i < kFieldCount; ++i) {
    const Field f = static_cast<Field>(i);
    if (f == Field::kPan || f == Field::kMerchantName ||
        f == Field::kReasonText) {
      continue;
    }
    const std::string_view v = raw.value(f);
    if (v.size() < 12 || !ContainsCardNumber(v)) continue;
    sink.Add(f, ErrorCode::kPanInField,
             std::string(FieldName(f)) + " " + Quote(Trim(v)) +
                 " holds a card number; only the pan field may carry one, "
                 "and the record is not delivered");
  }
  // The text fields reach the card company's file as they are: a control
  // character (tab, CR, LF, ESC, ...) could break its lines or columns, a
  // bidirectional one (U+202E, ...) make a value read as what it is not.
  // Refused, not altered; the value is not quoted (docs/validation.md).
  for (Field f : {Field::kCaseId, Field::kMerchantId, Field::kTransactionId,
                  Field::kMerchantName, Field::kReasonText, Field::kStatus}) {
    if (std::optional<UnsafeChar> c = FindUnsafeChar(Trim(raw.value(f)))) {
      sink.Add(f, ErrorCode::kControlCharacter,
               std::string(FieldName(f)) + " holds " + UnsafeCharName(*c) +
                   " at byte " + std::to_string(c->offset) +
                   ", a control or bidirectional character");
    }
  }
  if (sink.count() > 0) {
    // A rejected record's ids are still shown (duplicate check, reports):
    // masked like everything else.
    for (std::string* id :
         {&rec.case_id, &rec.merchant_id, &rec.transaction_id, &rec.status}) {
      MaskCardNumbersInPlace(id);
    }
  }

  return sink.count() == 0;
}

bool CheckDuplicate(const DuplicateCheck& check, const Record& record,
                    DuplicateSet* seen, std::vector<RecordError>* errors,
                    size_t first_error) {
  if (check.fingerprint == 0 || seen->InsertFingerprint(check.fingerprint)) {
    return true;
  }
  RecordError e;
  e.position = record.position;
  e.case_id = record.case_id;
  e.field = std::string(FieldName(Field::kCaseId));
  e.code = ErrorCode::kDuplicateCase;
  e.message = DuplicateMessage(record.case_id);
  const size_t at =
      std::min<size_t>(first_error + check.error_index, errors->size());
  errors->insert(errors->begin() + static_cast<ptrdiff_t>(at), std::move(e));
  return false;
}

}  // namespace cbpipe
