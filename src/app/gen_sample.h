// Deterministic sample chargeback files for tests, demos and benchmarks.
//
//   SampleOptions options;
//   options.records = 1'000'000;
//   options.invalid_ratio = 0.02;
//   options.now_epoch_seconds = std::time(nullptr);  // or a fixed instant
//   StatusOr<SampleStats> stats = WriteSample(options, stdout);
//   // stats->invalid == 20000; stats->invalid_by_kind["DATE_ORDER"] == 1538
//
// The same options (seed and now included) always give byte-identical output,
// on any platform: the generator uses its own PRNG and integer arithmetic
// only. Record i depends only on (seed, i, records, invalid_ratio, now), never
// on the records before it.
//
// Every valid record passes the validator (DESIGN.md §3). Exactly
// round(records * invalid_ratio) records are invalid, each breaking exactly
// one rule so that the validator rejects it with exactly one error, whose
// code is the kind recorded in SampleStats. Invalid records are spread
// evenly over the file (record i is invalid when floor((i+1)k/n) >
// floor(ik/n)); the j-th invalid record (from 0) has kind
// kSampleInvalidKinds[j % 13]. Which records are invalid does not depend on
// the seed.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

enum class SampleFormat { kCsv, kJsonLines };

struct SampleOptions {
  uint64_t records = 1000;
  double invalid_ratio = 0.0;  // 0..1
  SampleFormat format = SampleFormat::kCsv;
  uint64_t seed = 1;
  // The present; required (0 is refused). Every valid date is at least two
  // days before it; DATE_FUTURE records are at least two days after it.
  int64_t now_epoch_seconds = 0;
};

struct SampleStats {
  uint64_t records = 0;
  uint64_t invalid = 0;
  // Validator error code name ("DATE_ORDER", ...) -> records of that kind.
  // Only kinds that occur are present.
  std::map<std::string, uint64_t> invalid_by_kind;
};

// The error kinds invalid records are given, in rotation order. The names
// are the validator's ErrorCodeName()s.
inline constexpr std::array<std::string_view, 13> kSampleInvalidKinds = {
    "MISSING_FIELD",  "NETWORK_UNKNOWN",     "ARN_CHECK_DIGIT",
    "ARN_FORMAT",     "UNKNOWN_REASON_CODE", "CURRENCY_UNKNOWN",
    "AMOUNT_INVALID", "AMOUNT_PRECISION",    "DATE_INVALID",
    "DATE_ORDER",     "DATE_FUTURE",         "DUPLICATE_CASE",
    "BAD_FORMAT",
};

// The columns, in order: the CSV header and the JSON Lines keys.
inline constexpr std::array<std::string_view, 14> kSampleColumns = {
    "case_id",          "network",         "arn",    "pan",
    "merchant_id",      "merchant_name",   "mcc",    "transaction_id",
    "transaction_date", "chargeback_date", "amount", "currency",
    "reason_code",      "stage",
};

// Writes the sample to `out` (CSV with a header line, or one JSON object per
// line; '\n' line ends; UTF-8). kInvalidArgument for an invalid_ratio outside
// 0..1, a record count over 10^10 - 1 (case ids have 10 digits) or a
// now_epoch_seconds outside 1972..9998 (0 included: set it); kInternal
// when writing fails. `out` is flushed but not closed.
StatusOr<SampleStats> WriteSample(const SampleOptions& options, std::FILE* out);

}  // namespace cbpipe
