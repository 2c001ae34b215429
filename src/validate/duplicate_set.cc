#include "validate/duplicate_set.h"

#include <cstring>

namespace cbpipe {
namespace {

constexpr size_t kInitialSlots = 1024;

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
  if (slots_.empty()) slots_.assign(kInitialSlots, 0);
  const uint64_t fp = Fingerprint(id);
  const size_t mask = slots_.size() - 1;
  for (size_t i = fp & mask;; i = (i + 1) & mask) {
    if (slots_[i] == fp) return false;
    if (slots_[i] == 0) {
      slots_[i] = fp;
      ++size_;
      if (size_ * 8 > slots_.size() * 7) Grow();
      return true;
    }
  }
}

void DuplicateSet::Grow() {
  std::vector<uint64_t> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, 0);
  const size_t mask = slots_.size() - 1;
  for (uint64_t fp : old) {
    if (fp == 0) continue;
    size_t i = fp & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = fp;
  }
}

}  // namespace cbpipe
