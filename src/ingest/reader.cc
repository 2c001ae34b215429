#include "ingest/reader.h"

#include <algorithm>
#include <utility>

#include "ingest/byte_source.h"
#include "ingest/input_buffer.h"
#include "ingest/readers.h"

namespace cbpipe {
namespace {

using ingest_internal::ByteSource;
using ingest_internal::InputBuffer;

// Same folding as FieldFromName, so explicit names compare like aliases.
std::string NormaliseName(std::string_view name) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
  };
  while (!name.empty() && is_space(name.front())) name.remove_prefix(1);
  while (!name.empty() && is_space(name.back())) name.remove_suffix(1);
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == ' ' || c == '-' || c == '.') {
      out.push_back('_');
    } else if (c >= 'A' && c <= 'Z') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool IsWhitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Shows every byte read from `inner` to an observer.
class ObservedSource : public ByteSource {
 public:
  ObservedSource(std::unique_ptr<ByteSource> inner, RawBytesObserver observe)
      : inner_(std::move(inner)), observe_(std::move(observe)) {}
  StatusOr<size_t> Read(char* dst, size_t n) override {
    StatusOr<size_t> got = inner_->Read(dst, n);
    if (got.ok()) observe_(dst, *got);
    return got;
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  RawBytesObserver observe_;
};

StatusOr<std::unique_ptr<RecordReader>> OpenFromSource(
    std::unique_ptr<ByteSource> raw, const std::string& name,
    InputFormat format, const FieldMapping& mapping,
    const ReaderLimits& limits) {
  bool empty = false;
  CBPIPE_ASSIGN_OR_RETURN(
      std::unique_ptr<ByteSource> source,
      ingest_internal::MaybeGunzip(
          std::move(raw), name, limits.max_compression_ratio,
          ReaderLimits::kRatioCheckAfterBytes, &empty));
  auto in = std::make_unique<InputBuffer>(std::move(source), name,
                                          limits.max_record_bytes,
                                          limits.max_decompressed_bytes);
  if (!empty) {
    while (in->size() < 3) {
      CBPIPE_ASSIGN_OR_RETURN(bool more, in->Fill());
      if (!more) break;
    }
  }
  if (in->size() == 0) return InvalidArgumentError(name + ": empty input");
  const char* p = in->begin();
  if (in->size() >= 3 && p[0] == '\xEF' && p[1] == '\xBB' && p[2] == '\xBF') {
    in->Consume(3);  // UTF-8 byte order mark
  }
  if (format == InputFormat::kAuto) {
    // Look past leading whitespace without consuming it (CSV line numbers
    // count it), within the bound that applies to a record anyway.
    size_t checked = 0;
    while (true) {
      const char* b = in->begin();
      const char* e = in->end();
      const char* q = b + checked;
      while (q != e && IsWhitespace(*q)) ++q;
      checked = q - b;
      if (q != e) {
        format = *q == '['   ? InputFormat::kJsonArray
                 : *q == '{' ? InputFormat::kJsonLines
                             : InputFormat::kCsv;
        break;
      }
      if (in->eof() || in->size() > limits.max_record_bytes) {
        format = InputFormat::kCsv;  // only whitespace: CSV without header
        break;
      }
      CBPIPE_ASSIGN_OR_RETURN(bool more, in->Fill());
      (void)more;
    }
  }
  switch (format) {
    case InputFormat::kJsonLines:
      return ingest_internal::MakeJsonLinesReader(std::move(in), mapping,
                                                  limits);
    case InputFormat::kJsonArray:
      return ingest_internal::MakeJsonArrayReader(std::move(in), mapping,
                                                  limits);
    case InputFormat::kCsv:
    case InputFormat::kAuto: break;
  }
  return ingest_internal::MakeCsvReader(std::move(in), mapping, limits);
}

}  // namespace

std::string_view InputFormatName(InputFormat f) {
  switch (f) {
    case InputFormat::kAuto: return "auto";
    case InputFormat::kCsv: return "csv";
    case InputFormat::kJsonLines: return "jsonl";
    case InputFormat::kJsonArray: return "json";
  }
  return "auto";
}

std::optional<InputFormat> ParseInputFormat(std::string_view name) {
  const std::string key = NormaliseName(name);
  if (key == "auto" || key.empty()) return InputFormat::kAuto;
  if (key == "csv") return InputFormat::kCsv;
  if (key == "jsonl" || key == "ndjson" || key == "json_lines" ||
      key == "jsonlines") {
    return InputFormat::kJsonLines;
  }
  if (key == "json" || key == "json_array") return InputFormat::kJsonArray;
  return std::nullopt;
}

FieldMapping FieldMapping::Default() { return FieldMapping(); }

void FieldMapping::Set(Field field, std::string source_name) {
  const int f = static_cast<int>(field);
  explicit_names_[f] = NormaliseName(source_name);
  has_explicit_[f] = true;
}

std::optional<Field> FieldMapping::Lookup(std::string_view source_name) const {
  // Sensitive names never map, whatever the config says: their values must
  // not travel.
  if (IsSensitiveFieldName(source_name)) return std::nullopt;
  const std::string key = NormaliseName(source_name);
  for (int f = 0; f < kFieldCount; ++f) {
    if (has_explicit_[f] && explicit_names_[f] == key) {
      return static_cast<Field>(f);
    }
  }
  std::optional<Field> alias = FieldFromName(key);
  if (alias && has_explicit_[static_cast<int>(*alias)]) return std::nullopt;
  return alias;
}

void RawRecord::Clear() {
  position = 0;
  for (std::string& v : values) v.clear();
  present.fill(false);
  sensitive_fields.clear();
  malformed.clear();
  malformed_field.clear();
}

StatusOr<std::unique_ptr<RecordReader>> OpenReader(const std::string& path,
                                                   InputFormat format,
                                                   const FieldMapping& mapping,
                                                   const ReaderLimits& limits,
                                                   RawBytesObserver observe) {
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> raw,
                          ingest_internal::OpenFileSource(path));
  if (observe) {
    raw = std::make_unique<ObservedSource>(std::move(raw), std::move(observe));
  }
  return OpenFromSource(std::move(raw), path == "-" ? "<stdin>" : path, format,
                        mapping, limits);
}

StatusOr<std::unique_ptr<RecordReader>> OpenReaderFromMemory(
    std::string data, const std::string& name, InputFormat format,
    const FieldMapping& mapping, const ReaderLimits& limits) {
  return OpenFromSource(ingest_internal::MakeMemorySource(std::move(data)),
                        name, format, mapping, limits);
}

}  // namespace cbpipe
