#include "validate/duplicate_set.h"

#include <gtest/gtest.h>

#include <string>

namespace cbpipe {
namespace {

TEST(DuplicateSetTest, SecondInsertOfAnIdIsADuplicate) {
  DuplicateSet set;
  EXPECT_TRUE(set.Insert("CB1"));
  EXPECT_TRUE(set.Insert("CB2"));
  EXPECT_FALSE(set.Insert("CB1"));
  EXPECT_TRUE(set.Insert(""));
  EXPECT_FALSE(set.Insert(""));
  EXPECT_EQ(set.size(), 3u);
}

TEST(DuplicateSetTest, ManyIdsStayDistinctAcrossGrowth) {
  DuplicateSet set;
  constexpr int kIds = 300000;
  for (int i = 0; i < kIds; ++i) {
    ASSERT_TRUE(set.Insert("CASE-" + std::to_string(i))) << i;
  }
  for (int i = 0; i < kIds; i += 997) {
    EXPECT_FALSE(set.Insert("CASE-" + std::to_string(i))) << i;
  }
  EXPECT_EQ(set.size(), static_cast<size_t>(kIds));
  // The budget: at most 16 bytes per distinct id, plus the initial
  // table.
  EXPECT_LE(set.memory_bytes(), kIds * 16u + 65536u);
}

TEST(DuplicateSetTest, ReservedTableFindsDuplicatesWithinTheBudget) {
  DuplicateSet set;
  constexpr int kIds = 200000;
  set.Reserve(kIds);
  for (int i = 0; i < kIds; ++i) {
    ASSERT_TRUE(set.Insert("CASE-" + std::to_string(i))) << i;
  }
  for (int i = 0; i < kIds; i += 101) {
    EXPECT_FALSE(set.Insert("CASE-" + std::to_string(i))) << i;
  }
  EXPECT_EQ(set.size(), static_cast<size_t>(kIds));
  EXPECT_LE(set.memory_bytes(), kIds * 16u);
}

TEST(DuplicateSetTest, PastTheReservationIdsMoveToTheShards) {
  // The hint was far too low: every id seen before and after the move
  // out of the reserved table is still known.
  DuplicateSet set;
  set.Reserve(5000);
  constexpr int kIds = 60000;
  for (int i = 0; i < kIds; ++i) {
    ASSERT_TRUE(set.Insert("ID" + std::to_string(i))) << i;
    if (i % 1000 == 999) {
      ASSERT_FALSE(set.Insert("ID" + std::to_string(i / 2))) << i;
    }
  }
  for (int i = 0; i < kIds; i += 7) {
    EXPECT_FALSE(set.Insert("ID" + std::to_string(i))) << i;
  }
  EXPECT_EQ(set.size(), static_cast<size_t>(kIds));
  EXPECT_LE(set.memory_bytes(), kIds * 16u + 65536u);
}

TEST(DuplicateSetTest, HintsTooLargeToTrustAreIgnored) {
  DuplicateSet set;
  set.Reserve(DuplicateSet::kMaxReservedIds + 1);
  EXPECT_EQ(set.memory_bytes(), 0u);
  EXPECT_TRUE(set.Insert("A"));
  EXPECT_FALSE(set.Insert("A"));
  EXPECT_LE(set.memory_bytes(), 65536u);
}

TEST(DuplicateSetTest, ReserveAfterTheFirstInsertIsIgnored) {
  DuplicateSet set;
  EXPECT_TRUE(set.Insert("A"));
  set.Reserve(1000000);
  EXPECT_LE(set.memory_bytes(), 65536u);
  EXPECT_FALSE(set.Insert("A"));
}

TEST(DuplicateSetTest, SimilarIdsHaveDifferentFingerprints) {
  EXPECT_NE(DuplicateSet::Fingerprint("a"), DuplicateSet::Fingerprint("b"));
  EXPECT_NE(DuplicateSet::Fingerprint("12345678"),
            DuplicateSet::Fingerprint(std::string_view("12345678\0", 9)));
  EXPECT_NE(DuplicateSet::Fingerprint("abcdefgh1"),
            DuplicateSet::Fingerprint("abcdefgh2"));
}

}  // namespace
}  // namespace cbpipe
