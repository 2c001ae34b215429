// Ingest + validate one input: the first step of the pipeline, shared by
// `cbpipe validate` and `cbpipe run`.
//
//   InputScan scan;
//   ScanInput(path, config, now, /*keep_errors=*/100,
//             [&](const Record& r, std::vector<RecordError>* rejects) {
//               return planner.Add(r) ...;   // route an accepted record
//             },
//             [&](const RecordError& e) { return rejects.Write(e); }, &scan);
//
// Reading and validating run a few thousand records ahead, on a helper
// thread and on the caller's thread between chunks; `accept` and `reject`
// are called on the caller's thread, one record at a time and in input
// order, as if there were no other thread.
//
// Every record read ends either accepted (passed to `accept`, which may still
// turn it into a reject, e.g. NO_DESTINATION) or rejected with at least one
// error: records == accepted + rejected, always.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "validate/validator.h"

namespace cbpipe {

struct InputScan {
  std::string format_name;  // "csv", "jsonl", "json"; "" when unreadable
  uint64_t records = 0, accepted = 0, rejected = 0;
  // Of `rejected`: records valid in themselves that `accept` turned into
  // rejects (NO_DESTINATION, RECORD_TOO_LARGE), by network. The rest were
  // rejected by the validator; only those count towards the thresholds.
  std::array<uint64_t, kNetworkCount> undeliverable{};
  uint64_t undeliverable_total() const;
  std::array<uint64_t, kNetworkCount> by_network{};  // accepted only
  std::vector<RecordError> errors;                   // the first few
  uint64_t errors_truncated = 0;  // errors not kept in `errors`
  uint64_t bytes_read = 0;
  Status input_error;           // the whole input could not be read
  uint64_t error_position = 0;  // byte offset reached when it failed
};

// Called for each valid record. Appending to `rejects` turns the record into
// a rejected one; a non-OK Status stops the scan (an I/O failure).
using AcceptFn =
    std::function<Status(const Record&, std::vector<RecordError>* rejects)>;
// Called for every error of every rejected record, in input order.
using RejectFn = std::function<Status(const RecordError&)>;

// `observe` sees the input's bytes as read (see OpenReader).
//
// The input's error thresholds (config.reject_thresholds) make it a whole
// input error (kResourceExhausted, naming the config key): the scan stops
// at the record that passes max_rejected_records, before `reject` sees its
// errors; max_rejected_ratio is checked once the whole input is read.
void ScanInput(const std::string& path, const Config& config,
               int64_t now_epoch_seconds, size_t keep_errors,
               const AcceptFn& accept, const RejectFn& reject, InputScan* scan,
               RawBytesObserver observe = nullptr);

}  // namespace cbpipe
