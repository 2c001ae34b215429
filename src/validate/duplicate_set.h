// A compact set of 64-bit fingerprints of case ids, for DUPLICATE_CASE.
//
// The issue caps its memory at 16 bytes per record: an open-addressing table
// of 8-byte fingerprints kept between 7/16 and 7/8 full uses 9-18 bytes per
// distinct id. Two different ids share a fingerprint with probability about
// n^2 / 2^65 (3e-8 for a million records); such a record would be rejected as
// a duplicate and reported, never lost.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace cbpipe {

class DuplicateSet {
 public:
  // Adds `id`; returns false when it was already there.
  bool Insert(std::string_view id);
  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.capacity() * sizeof(uint64_t); }

  static uint64_t Fingerprint(std::string_view id);

 private:
  void Grow();
  std::vector<uint64_t> slots_;  // 0 = empty
  size_t size_ = 0;
};

}  // namespace cbpipe
