// The window of decompressed input a reader parses from. Internal to ingest/.
//
// Bytes enter through Fill(), which checks them (UTF-8, no NUL) before any
// parser sees them, so parsers never meet invalid text. The window only grows
// past its initial size to hold one long record, and never beyond
// max_record_bytes plus one read chunk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "ingest/byte_source.h"

namespace cbpipe::ingest_internal {

class InputBuffer {
 public:
  // More than `max_input_bytes` from `source` makes Fill fail with
  // kResourceExhausted (input.max_decompressed_bytes).
  InputBuffer(std::unique_ptr<ByteSource> source, std::string name,
              size_t max_record_bytes, uint64_t max_input_bytes);

  const char* begin() const { return data_.get() + begin_; }
  const char* end() const { return data_.get() + end_; }
  size_t size() const { return end_ - begin_; }
  bool eof() const { return eof_; }
  void Consume(size_t n) { begin_ += n; }
  void ConsumeTo(const char* p) {
    begin_ = static_cast<size_t>(p - data_.get());
  }

  // Keeps [begin(), end()) (pointers into the buffer become invalid) and
  // appends more input. Returns false when the input has ended.
  StatusOr<bool> Fill();

  // Offset in the decompressed input of `p`, a pointer into the window.
  uint64_t OffsetOf(const char* p) const {
    return base_ + static_cast<uint64_t>(p - data_.get());
  }
  uint64_t consumed() const { return base_ + begin_; }
  const std::string& name() const { return name_; }

 private:
  // Checks the newly read bytes up to the last complete UTF-8 sequence;
  // at the end of the input, all of them.
  Status Validate();

  std::unique_ptr<ByteSource> source_;
  std::string name_;
  std::unique_ptr<char[]> data_;
  size_t chunk_;
  size_t capacity_;
  size_t max_capacity_;
  uint64_t max_input_bytes_;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t validated_ = 0;  // [0, validated_) is known to be clean
  uint64_t base_ = 0;     // input offset of data_[0]
  bool eof_ = false;
};

// Offset of the first byte that is not part of valid UTF-8 (a truncated
// sequence at the end counts as invalid); `len` when all of it is valid.
size_t FindInvalidUtf8(const unsigned char* s, size_t len);

}  // namespace cbpipe::ingest_internal
