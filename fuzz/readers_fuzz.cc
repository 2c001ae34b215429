// Drains every reader over arbitrary bytes: no crash, no hang, no limit
// broken, whatever the input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ingest/reader.h"

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (InputFormat format :
       {InputFormat::kAuto, InputFormat::kCsv, InputFormat::kJsonLines,
        InputFormat::kJsonArray}) {
    Drain(data, size, format);
  }
  return 0;
}
