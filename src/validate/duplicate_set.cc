#include "validate/duplicate_set.h"

#include <sys/mman.h>

#include <cstring>

namespace cbpipe {
namespace {

// Small first shards: 256 of them cost 64 KiB before any growth.
constexpr size_t kInitialSlots = 32;

inline uint64_t Mix(uint64_t x) {
  // splitmix64 finaliser: spreads every input bit over the whole word.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t DuplicateSet::Fingerprint(std::string_view id) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (id.size() * 0xff51afd7ed558ccdULL);
  size_t i = 0;
  for (; i + 8 <= id.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, id.data() + i, 8);
    h = Mix(h ^ word) + 0x632be59bd9b4e019ULL;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, id.data() + i, id.size() - i);
  h = Mix(h ^ tail ^ (static_cast<uint64_t>(id.size() - i) << 59));
  return h == 0 ? 1 : h;
}

bool DuplicateSet::Insert(std::string_view id) {
  return InsertFingerprint(Fingerprint(id));
}

DuplicateSet::~DuplicateSet() {
  if (flat_) ::munmap(flat_, flat_slots_ * sizeof(uint64_t));
}

void DuplicateSet::Reserve(size_t expected_ids) {
  // A hint is a guess (from the first records of an input): past
  // kMaxReservedIds a wrong one would cost too much memory up front, so
  // such a set keeps to the shards, which grow with what is really there.
  if (size_ != 0 || flat_ || expected_ids < 4096 ||
      expected_ids > kMaxReservedIds) {
    return;
  }
  // 1.6 slots per expected id (12.8 bytes): 5/8 full at the hint, so
  // linear probing stays short; the table takes up to 1.28 times the hint
  // before it gives way to the shards. Any slot count works: a fingerprint
  // picks its slot by multiplying, not by masking.
  const size_t slots = expected_ids / 5 * 8 + 8;
  void* table =
      ::mmap(nullptr, slots * sizeof(uint64_t), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (table == MAP_FAILED) return;  // the shards do without
  ::madvise(table, slots * sizeof(uint64_t), MADV_HUGEPAGE);
  flat_ = static_cast<uint64_t*>(table);  // zero-filled: all slots empty
  flat_slots_ = slots;
  flat_limit_ = slots / 5 * 4;
}

size_t DuplicateSet::FlatSlot(uint64_t fp) const {
  return static_cast<size_t>(
      (static_cast<unsigned __int128>(fp) * flat_slots_) >> 64);
}

void DuplicateSet::LeaveFlatTable() {
  uint64_t* table = flat_;
  const size_t slots = flat_slots_;
  flat_ = nullptr;
  flat_slots_ = 0;
  size_ = 0;
  for (size_t i = 0; i < slots; ++i) {
    if (table[i] != 0) InsertIntoShards(table[i]);
  }
  ::munmap(table, slots * sizeof(uint64_t));
}

void DuplicateSet::Prefetch(uint64_t fp) const {
  if (flat_) {
    __builtin_prefetch(&flat_[FlatSlot(fp)], 1);
    return;
  }
  const Shard& shard = shards_[fp >> (64 - kShardBits)];
  if (shard.empty()) return;
  __builtin_prefetch(&shard[fp & (shard.size() - 1)], 1);
}

bool DuplicateSet::InsertFingerprint(uint64_t fp) {
  if (!flat_) return InsertIntoShards(fp);
  for (size_t i = FlatSlot(fp);; i = i + 1 == flat_slots_ ? 0 : i + 1) {
    if (flat_[i] == fp) return false;
    if (flat_[i] == 0) {
      flat_[i] = fp;
      if (++size_ > flat_limit_) LeaveFlatTable();
      return true;
    }
  }
}

bool DuplicateSet::InsertIntoShards(uint64_t fp) {
  // The top bits pick the shard, the low bits the slot: independent bits.
  const size_t shard_index = fp >> (64 - kShardBits);
  Shard& shard = shards_[shard_index];
  if (shard.empty()) shard.assign(kInitialSlots, 0);
  const size_t mask = shard.size() - 1;
  for (size_t i = fp & mask;; i = (i + 1) & mask) {
    if (shard[i] == fp) return false;
    if (shard[i] == 0) {
      shard[i] = fp;
      ++size_;
      if (++shard_sizes_[shard_index] * 8ull > shard.size() * 7) Grow(shard);
      return true;
    }
  }
}

size_t DuplicateSet::memory_bytes() const {
  size_t bytes = flat_slots_ * sizeof(uint64_t);
  for (const Shard& shard : shards_) bytes += shard.capacity() * 8;
  return bytes;
}

void DuplicateSet::Grow(Shard& shard) {
  Shard old;
  old.swap(shard);
  shard.assign(old.size() * 2, 0);
  const size_t mask = shard.size() - 1;
  for (uint64_t fp : old) {
    if (fp == 0) continue;
    size_t i = fp & mask;
    while (shard[i] != 0) i = (i + 1) & mask;
    shard[i] = fp;
  }
}

}  // namespace cbpipe
