// Streaming readers for raw chargeback inputs: CSV (RFC 4180), JSON Lines and
// a JSON array of objects, each optionally gzip-compressed.
//
//   FieldMapping mapping = FieldMapping::Default();   // + config overrides
//   auto reader = OpenReader("in.csv.gz", InputFormat::kAuto, mapping, {});
//   if (!reader.ok()) { ... reader.status() names input and position ... }
//   RawRecord rec;
//   while (true) {
//     auto more = (*reader)->Next(&rec);
//     if (!more.ok()) { ... whole-input error ... }
//     if (!*more) break;
//     ... rec.value(Field::kAmount) ...
//   }
//
// Memory: one record at a time, buffers reused between calls; nothing grows
// with the size of the input.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "domain/record.h"

namespace cbpipe {

enum class InputFormat { kAuto, kCsv, kJsonLines, kJsonArray };
std::string_view InputFormatName(InputFormat f);  // "csv", "jsonl", "json"
std::optional<InputFormat> ParseInputFormat(std::string_view name);

// Source column/key name -> canonical field. Built from the aliases of
// DESIGN.md §3 (FieldFromName) plus explicit config entries, which win.
class FieldMapping {
 public:
  static FieldMapping Default();
  // `source_name` (as written in the input, compared case-insensitively)
  // maps to `field`. A later call for the same field replaces the earlier
  // one and stops the aliases of that field from matching.
  void Set(Field field, std::string source_name);
  // nullopt for unknown names (ignored columns) and sensitive names.
  std::optional<Field> Lookup(std::string_view source_name) const;

 private:
  std::array<std::string, kFieldCount> explicit_names_;  // normalised
  std::array<bool, kFieldCount> has_explicit_{};
};

// One record as read: canonical fields as text, before any rule is applied.
struct RawRecord {
  uint64_t position = 0;  // CSV/JSONL: 1-based line of the record's start;
                          // JSON array: 0-based index
  std::array<std::string, kFieldCount> values;  // "" when absent
  std::array<bool, kFieldCount> present{};      // key/column existed
  // Names of non-empty sensitive fields (cvv, track1, ...) as they appeared
  // in the input. Their values are never copied out of the reader's buffer.
  std::vector<std::string> sensitive_fields;
  // A reader-level problem with this record alone (JSON Lines line that is
  // not a JSON object, a CSV row with the wrong number of cells, a field
  // holding an object or array): the validator reports it as BAD_FORMAT.
  std::string malformed;        // empty when fine
  std::string malformed_field;  // the field it concerns, if any

  std::string_view value(Field f) const { return values[static_cast<int>(f)]; }
  bool has(Field f) const { return present[static_cast<int>(f)]; }
  void Clear();  // keeps string capacity
};

struct ReaderLimits {
  size_t max_field_bytes = 1 << 20;   // a longer field: record malformed
  size_t max_record_bytes = 4 << 20;  // a longer record/line: input error
  size_t max_columns = 4096;          // a wider header: input error
  size_t max_json_depth = 64;         // deeper nesting: malformed record
  // Input bytes after gzip decoding (a plain input: its size); more is an
  // input error (kResourceExhausted), raised as soon as a read passes it.
  uint64_t max_decompressed_bytes = 16ull << 30;
  // gzip only: decoded bytes per compressed byte consumed, checked as the
  // input is decoded once kRatioCheckAfterBytes have come out; more is an
  // input error (kResourceExhausted). Stops a gzip bomb within its first
  // megabytes instead of after gigabytes.
  uint64_t max_compression_ratio = 100;
  static constexpr uint64_t kRatioCheckAfterBytes = 1 << 20;
};

class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // Fills `out` with the next record and returns true; false at the end.
  // A non-OK Status is a whole-input failure (not UTF-8, binary content,
  // truncated gzip, CSV without header, malformed JSON array, a record over
  // the limits): its message names the position (line or byte offset).
  // After an error, Next must not be called again.
  virtual StatusOr<bool> Next(RawRecord* out) = 0;
  virtual InputFormat format() const = 0;
  // Bytes of (decompressed) input consumed so far.
  virtual uint64_t bytes_read() const = 0;
};

// Opens `path` ("-" for standard input), detects gzip by its magic bytes and
// the format from the content unless `format` says otherwise. An empty file
// is an error (kInvalidArgument, "empty input").
//
// Any whole-input error may come from here already (a CSV header problem is
// found at open) or from a later Next(). The reader keeps its own copies of
// `mapping` and `limits`.
//
// CSV: fully blank lines are skipped wherever they are. A header in which no
// column maps to a known field (or a sensitive name) is taken as a missing
// header row: a whole-input error.
// JSON array: an element that is not an object is a malformed record at its
// index (reading continues); broken array syntax between elements is a
// whole-input error.
//
// `observe`, when set, is called on the reading thread with every byte of
// the file as read, before any gzip decoding, in order; the end of the file
// is a call with n == 0. (The pipeline hashes the input this way, in the
// same pass as reading it.) A reader that stops early, on an error, never
// makes the n == 0 call.
using RawBytesObserver = std::function<void(const char* data, size_t n)>;
StatusOr<std::unique_ptr<RecordReader>> OpenReader(
    const std::string& path, InputFormat format, const FieldMapping& mapping,
    const ReaderLimits& limits, RawBytesObserver observe = nullptr);

// As OpenReader, over a copy of `data` (which may be gzip-compressed).
// `name` stands for the path in messages. For tests and fuzzing.
StatusOr<std::unique_ptr<RecordReader>> OpenReaderFromMemory(
    std::string data, const std::string& name, InputFormat format,
    const FieldMapping& mapping, const ReaderLimits& limits);

}  // namespace cbpipe
