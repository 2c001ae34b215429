// Per-record validation: RawRecord (text as read) -> Record (canonical,
// checked) or a list of RecordErrors. A rejected record is data, never an
// exception; a record may fail several rules and all of them are reported.
//
//   Validator validator(options);
//   Record rec;
//   std::vector<RecordError> errors;
//   if (validator.Validate(raw, &rec, &errors)) { ...route rec... }
//   else { ...write errors to the rejects report... }
//
// One Validator per input: it remembers case ids to find duplicates. Not
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "domain/record.h"
#include "ingest/reader.h"
#include "validate/duplicate_set.h"

namespace cbpipe {

// Stable error codes: they appear in reports and are part of the interface.
enum class ErrorCode : uint8_t {
  kMissingField,
  kBadFormat,
  kNetworkUnknown,
  kNetworkMismatch,
  kArnCheckDigit,
  kArnFormat,
  kUnknownReasonCode,
  kCurrencyUnknown,
  kAmountInvalid,
  kAmountPrecision,
  kDateInvalid,
  kDateOrder,
  kDateFuture,
  kDuplicateCase,
  kSensitiveData,
  kPanNotMasked,
  kNoDestination,     // valid, but no destination receives its network
  kRecordTooLarge,    // one row alone is over the file size limit
  kPanInField,        // a card number in a field that is neither pan nor
                      // free text (an identifier, a date, an amount...)
  kControlCharacter,  // a text field holds a control or bidi character
};
inline constexpr int kErrorCodeCount = 20;
std::string_view ErrorCodeName(ErrorCode code);  // "MISSING_FIELD", ...

struct RecordError {
  uint64_t position = 0;
  // case_id, field and message never hold a card number: the validator
  // masks any (domain/pan.h) before it keeps them.
  std::string case_id;  // as read (trimmed)
  std::string field;    // canonical field name, or the source name
  ErrorCode code = ErrorCode::kBadFormat;
  std::string message;  // for a person; never holds a PAN or sensitive data
};

enum class PanPolicy { kMask, kReject };

struct ValidatorOptions {
  PanPolicy pan_policy = PanPolicy::kMask;
  std::vector<std::string> extra_date_formats;  // tried after ISO 8601
  // The present, injected: a chargeback date after this is DATE_FUTURE.
  int64_t now_epoch_seconds = 0;
};

// [input] error thresholds: past either, an input is rejected as a whole
// (nothing of it delivered). Only records the validator rejects count; a
// valid record that cannot be routed (NO_DESTINATION, RECORD_TOO_LARGE) is
// a config problem, reported on its own. The scan of an input applies them
// (workflow/input_scan.h).
struct RejectThresholds {
  // More rejected records than this stops the scan at once, so the rejects
  // file stops growing there.
  uint64_t max_rejected_records = 1000000;
  // Rejected / read, checked at the end of an input of at least
  // kRatioMinRecords records; more than this rejects it.
  double max_rejected_ratio = 0.5;
  static constexpr uint64_t kRatioMinRecords = 100;
};

// The duplicate-case check of one record, left to the caller by
// Validator::ValidateAllButDuplicate and finished by CheckDuplicate.
struct DuplicateCheck {
  uint64_t fingerprint = 0;  // of the case id; 0: no case id, no check
  // Where DUPLICATE_CASE goes among the record's own errors, so the
  // report reads the same as with Validate.
  uint32_t error_index = 0;
};

class Validator {
 public:
  explicit Validator(ValidatorOptions options);

  // True when `raw` is valid; `out` then holds the canonical record. False
  // when it is not; every problem found is appended to `errors`.
  bool Validate(const RawRecord& raw, Record* out,
                std::vector<RecordError>* errors);

  // Validate without the duplicate-case check, which `check` describes
  // instead. For a caller that validates on several threads and keeps one
  // DuplicateSet where records arrive in input order; it also batches the
  // set's random reads, which are cache misses. This Validator's own set is
  // not used. (Validate is this plus CheckDuplicate on its own set.)
  bool ValidateAllButDuplicate(const RawRecord& raw, Record* out,
                               std::vector<RecordError>* errors,
                               DuplicateCheck* check);

  size_t distinct_case_ids() const { return seen_.size(); }

 private:
  ValidatorOptions options_;
  DuplicateSet seen_;
};

// Finishes a deferred duplicate check, in input order: adds the case id to
// `seen` and, when it was already there, inserts DUPLICATE_CASE among this
// record's errors (errors[first_error...]) and returns false.
bool CheckDuplicate(const DuplicateCheck& check, const Record& record,
                    DuplicateSet* seen, std::vector<RecordError>* errors,
                    size_t first_error = 0);

}  // namespace cbpipe
