#include "ingest/input_buffer.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "simdjson.h"

namespace cbpipe::ingest_internal {
namespace {

// Read size, and the window size for ordinary records; smaller when the
// record limit is small (tests, fuzzing), so refills happen often there too.
constexpr size_t kMaxReadChunk = 512 << 10;
constexpr size_t kMinReadChunk = 4 << 10;

// Length of the prefix of `s` that ends on a UTF-8 sequence boundary, so a
// character split between two reads is checked once it is whole.
size_t CompleteUtf8Prefix(const unsigned char* s, size_t len) {
  for (size_t back = 1; back <= 3 && back <= len; ++back) {
    const unsigned char c = s[len - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? len - back : len;
  }
  return len;
}

}  // namespace

size_t FindInvalidUtf8(const unsigned char* s, size_t len) {
  size_t i = 0;
  while (i < len) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + need >= len) return i;  // truncated sequence
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k <= need; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
    }
    i += need + 1;
  }
  return len;
}

InputBuffer::InputBuffer(std::unique_ptr<ByteSource> source, std::string name,
                         size_t max_record_bytes, uint64_t max_input_bytes)
    : source_(std::move(source)),
      name_(std::move(name)),
      chunk_(std::clamp(max_record_bytes, kMinReadChunk, kMaxReadChunk)),
      capacity_(chunk_),
      max_capacity_(std::max(max_record_bytes, chunk_) + chunk_),
      max_input_bytes_(max_input_bytes) {
  data_.reset(new char[capacity_]);
}

StatusOr<bool> InputBuffer::Fill() {
  if (eof_) return false;
  if (begin_ > 0) {
    const size_t keep = end_ - begin_;
    std::memmove(data_.get(), data_.get() + begin_, keep);
    base_ += begin_;
    validated_ = validated_ > begin_ ? validated_ - begin_ : 0;
    end_ = keep;
    begin_ = 0;
  }
  // Grow only when a record already fills most of the window; the readers
  // stop a record at max_record_bytes, which keeps this bounded.
  if (capacity_ - end_ < chunk_ / 4 && capacity_ < max_capacity_) {
    const size_t grown = std::min(max_capacity_, capacity_ * 2);
    std::unique_ptr<char[]> bigger(new char[grown]);
    std::memcpy(bigger.get(), data_.get(), end_);
    data_ = std::move(bigger);
    capacity_ = grown;
  }
  if (end_ == capacity_) {
    return ResourceExhaustedError(name_ + ": record at byte offset " +
                                  std::to_string(base_) +
                                  " exceeds the input buffer");
  }
  CBPIPE_ASSIGN_OR_RETURN(size_t got,
                          source_->Read(data_.get() + end_, capacity_ - end_));
  if (got == 0) {
    eof_ = true;
    CBPIPE_RETURN_IF_ERROR(Validate());
    return false;
  }
  end_ += got;
  if (base_ + end_ > max_input_bytes_) {
    return ResourceExhaustedError(
        name_ + ": input is larger than input.max_decompressed_bytes (" +
        std::to_string(max_input_bytes_) +
        " bytes, after gzip decoding); refused before reading on");
  }
  CBPIPE_RETURN_IF_ERROR(Validate());
  return true;
}

Status InputBuffer::Validate() {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data_.get());
  size_t upto = end_;
  if (!eof_) {
    upto =
        validated_ + CompleteUtf8Prefix(bytes + validated_, end_ - validated_);
  }
  const size_t len = upto - validated_;
  if (len == 0) return OkStatus();
  const char* start = data_.get() + validated_;
  // NUL never appears in text exports; it marks a binary file.
  if (const void* nul = std::memchr(start, '\0', len)) {
    return InvalidArgumentError(
        name_ + ": binary content (NUL byte) at byte offset " +
        std::to_string(OffsetOf(static_cast<const char*>(nul))));
  }
  if (!simdjson::validate_utf8(start, len)) {
    const size_t bad = FindInvalidUtf8(bytes + validated_, len);
    return InvalidArgumentError(name_ + ": not valid UTF-8 at byte offset " +
                                std::to_string(OffsetOf(start + bad)));
  }
  validated_ = upto;
  return OkStatus();
}

}  // namespace cbpipe::ingest_internal
