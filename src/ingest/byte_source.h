// Byte sources under the readers: a file descriptor, a memory block, and a
// gzip decoder over either. Internal to ingest/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace cbpipe::ingest_internal {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `n` (> 0) bytes into `dst`; 0 means the end of the input.
  virtual StatusOr<size_t> Read(char* dst, size_t n) = 0;
};

// Opens `path` for reading ("-" is standard input, not closed at the end).
StatusOr<std::unique_ptr<ByteSource>> OpenFileSource(const std::string& path);

// Serves a copy of `data`.
std::unique_ptr<ByteSource> MakeMemorySource(std::string data);

// Looks at the first bytes of `raw` and, when they are the gzip magic
// (1f 8b), returns a source that inflates every gzip member in turn.
// Otherwise returns a source with the same bytes as `raw`. `*empty` is set
// when `raw` holds no bytes at all.
// Once `ratio_check_after` bytes have been inflated, a read that brings the
// inflated bytes over `max_ratio` times the compressed bytes consumed fails
// with kResourceExhausted (a gzip bomb), naming input.max_compression_ratio.
StatusOr<std::unique_ptr<ByteSource>> MaybeGunzip(
    std::unique_ptr<ByteSource> raw, const std::string& name,
    uint64_t max_ratio, uint64_t ratio_check_after, bool* empty);

}  // namespace cbpipe::ingest_internal
