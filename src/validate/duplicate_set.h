// A compact set of 64-bit fingerprints of case ids, for DUPLICATE_CASE.
//
// The issue caps its memory at 16 bytes per record. The set is 256
// open-addressing shards of 8-byte fingerprints, each kept between 7/16 and
// 7/8 full, so it holds 9-18 bytes per distinct id; a shard grows on its
// own, so the transient cost of a rehash is 1/256 of the set, not a second
// copy of it. Two different ids share a fingerprint with probability about
// n^2 / 2^65 (3e-8 for a million records); such a record would be rejected
// as a duplicate and reported, never lost.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace cbpipe {

class DuplicateSet {
 public:
  DuplicateSet() = default;
  DuplicateSet(const DuplicateSet&) = delete;
  DuplicateSet& operator=(const DuplicateSet&) = delete;
  ~DuplicateSet();

  // A hint, before the first Insert, of how many ids will come (e.g. from
  // the input's size). With it the set is one table in huge pages, sized
  // up front at 12.8 bytes per expected id: no rehashing, and the random
  // reads miss the TLB far less often than in the 256 shards, so an insert
  // costs a third. At 1.28 times the hint it moves its ids into the shards
  // and goes on there. Ignored after the first Insert, and for hints over
  // kMaxReservedIds (a table of about 215 MB).
  void Reserve(size_t expected_ids);
  static constexpr size_t kMaxReservedIds = 16u << 20;

  // Adds `id`; returns false when it was already there.
  bool Insert(std::string_view id);

  // Insert in two steps, for a caller with other work to do in between: the
  // slot of a fingerprint is in a table far larger than the caches, so
  // Prefetch starts loading it and InsertFingerprint (same result as Insert
  // of the id) then usually finds it there.
  void Prefetch(uint64_t fingerprint) const;
  bool InsertFingerprint(uint64_t fingerprint);
  size_t size() const { return size_; }
  size_t memory_bytes() const;

  static uint64_t Fingerprint(std::string_view id);

 private:
  static constexpr int kShardBits = 8;
  using Shard = std::vector<uint64_t>;  // 0 = empty slot
  static void Grow(Shard& shard);
  bool InsertIntoShards(uint64_t fingerprint);
  size_t FlatSlot(uint64_t fingerprint) const;
  void LeaveFlatTable();

  // The reserved table (flat_slots_ == 0: none), mapped with mmap for huge
  // pages; at most flat_limit_ ids go in it.
  uint64_t* flat_ = nullptr;
  size_t flat_slots_ = 0;
  size_t flat_limit_ = 0;

  std::array<Shard, 1 << kShardBits> shards_;
  std::array<uint32_t, 1 << kShardBits> shard_sizes_{};
  size_t size_ = 0;
};

}  // namespace cbpipe
