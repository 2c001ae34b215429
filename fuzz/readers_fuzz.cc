// Drains every reader over arbitrary bytes: no crash, no hang, no limit
// broken, whatever the input. Also parses each line through the JSON fast
// path and through simdjson alone: whenever the fast path accepts, the two
// records must be the same. And reads the bytes as CSV rows with the CSV
// reader's 64-byte fast path and without it: same records, same errors.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/flat_json.h"
#include "ingest/input_buffer.h"
#include "ingest/reader.h"
#include "ingest/readers.h"

namespace {

using cbpipe::Field;
using cbpipe::FieldMapping;
using cbpipe::InputFormat;
using cbpipe::RawRecord;
using cbpipe::ReaderLimits;

void Check(bool ok) {
  if (!ok) std::abort();
}

const FieldMapping& Mapping() {
  static const FieldMapping mapping = [] {
    FieldMapping m = FieldMapping::Default();
    m.Set(Field::kMerchantId, "shop");
    return m;
  }();
  return mapping;
}

void Drain(const uint8_t* data, size_t size, InputFormat format) {
  // Small limits so short inputs reach the limit paths too.
  ReaderLimits limits;
  limits.max_field_bytes = 64;
  limits.max_record_bytes = 1024;
  limits.max_columns = 16;
  limits.max_json_depth = 8;
  auto reader = cbpipe::OpenReaderFromMemory(
      std::string(reinterpret_cast<const char*>(data), size), "fuzz", format,
      Mapping(), limits);
  if (!reader.ok()) return;
  // Decompressed size is unknown for gzip; plain input bounds the counts.
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  RawRecord rec;
  uint64_t last_position = 0;
  for (size_t n = 0;; ++n) {
    auto more = (*reader)->Next(&rec);
    if (!more.ok() || !*more) break;
    // Every record consumes input, so records can never outnumber bytes.
    Check(gzip || n <= size);
    if ((*reader)->format() == InputFormat::kJsonArray) {
      Check(rec.position == n);
    } else {
      Check(n == 0 || rec.position > last_position);
    }
    last_position = rec.position;
    for (const std::string& v : rec.values) {
      Check(v.size() <= limits.max_field_bytes);
    }
    Check(gzip || (*reader)->bytes_read() <= size);
  }
}

bool Same(const RawRecord& a, const RawRecord& b) {
  return a.position == b.position && a.values == b.values &&
         a.present == b.present && a.sensitive_fields == b.sensitive_fields &&
         a.malformed == b.malformed && a.malformed_field == b.malformed_field;
}

void CompareJsonPaths(const uint8_t* data, size_t size) {
  namespace in = cbpipe::ingest_internal;
  // The readers only parse what InputBuffer lets through: UTF-8, no NUL.
  if (in::FindInvalidUtf8(data, size) != size ||
      std::memchr(data, '\0', size) != nullptr) {
    return;
  }
  ReaderLimits limits;
  limits.max_field_bytes = 64;
  limits.max_json_depth = 8;
  // Kept across inputs, as a reader keeps its key cache across lines; one
  // parser per path so each path's cache is its own.
  static const auto fast = in::MakeJsonObjectParserForTest(Mapping(), limits);
  static const auto slow = in::MakeJsonObjectParserForTest(Mapping(), limits);
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    RawRecord a, b;
    if (!fast->ParseFlatOnly(line, &a)) continue;
    slow->ParseSimdjsonOnly(line, &b);
    Check(Same(a, b));
  }
}

struct CsvOutcome {
  std::string status;
  std::vector<RawRecord> records;
};

CsvOutcome ReadCsv(const std::string& text, const ReaderLimits& limits,
                   bool fast_path) {
  cbpipe::ingest_internal::SetCsvFastPathForTest(fast_path);
  CsvOutcome out;
  auto reader = cbpipe::OpenReaderFromMemory(text, "fuzz", InputFormat::kCsv,
                                             Mapping(), limits);
  cbpipe::ingest_internal::SetCsvFastPathForTest(true);
  if (!reader.ok()) {
    out.status = reader.status().ToString();
    return out;
  }
  RawRecord rec;
  while (true) {
    auto more = (*reader)->Next(&rec);
    if (!more.ok()) {
      out.status = more.status().ToString();
      break;
    }
    if (!*more) break;
    out.records.push_back(rec);
  }
  return out;
}

void CompareCsvPaths(const uint8_t* data, size_t size) {
  // A header that maps (with a sensitive and an unmapped column), then the
  // bytes several times over, so rows sit well inside the reader's window
  // where the fast path takes them.
  std::string text = "case_id,cvv,merchant_name,other,amount\n";
  for (int i = 0; i < 8; ++i) {
    text.append(reinterpret_cast<const char*>(data), size);
  }
  ReaderLimits tight;
  tight.max_field_bytes = 8;
  tight.max_record_bytes = 300;
  for (const ReaderLimits& limits : {ReaderLimits{}, tight}) {
    const CsvOutcome fast = ReadCsv(text, limits, true);
    const CsvOutcome slow = ReadCsv(text, limits, false);
    Check(fast.status == slow.status);
    Check(fast.records.size() == slow.records.size());
    for (size_t i = 0; i < fast.records.size(); ++i) {
      Check(Same(fast.records[i], slow.records[i]));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CompareJsonPaths(data, size);
  CompareCsvPaths(data, size);
  for (InputFormat format :
       {InputFormat::kAuto, InputFormat::kCsv, InputFormat::kJsonLines,
        InputFormat::kJsonArray}) {
    Drain(data, size, format);
  }
  return 0;
}
