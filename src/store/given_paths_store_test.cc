#include "store/given_paths_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

class GivenPathsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("given_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    path_ = (root_ / "in put.csv").string();  // not a valid object key
    std::ofstream(path_) << "hello";
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
  std::string path_;
  GivenPathsStore store_;
};

TEST_F(GivenPathsStoreTest, ReadsTheGivenPathsAsTheyAre) {
  EXPECT_EQ(store_.LocalPath(path_).status().code(), StatusCode::kNotFound);
  store_.Add(path_);
  store_.Add("-");
  EXPECT_EQ(*store_.LocalPath(path_), path_);
  EXPECT_EQ(*store_.LocalPath("-"), "-");
  auto info = store_.Head(path_);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->size, 5u);
  auto reader = store_.Get(path_);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  char buf[16];
  EXPECT_EQ(*(*reader)->Read(buf, sizeof buf), 5u);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_EQ(*(*reader)->Read(buf, sizeof buf), 0u);
  EXPECT_EQ(*store_.List(root_.string()), std::vector<std::string>{path_});
  EXPECT_EQ(store_.List("")->size(), 2u);
  // Only given paths exist: another file in the same folder does not.
  const std::string other = (root_ / "other.csv").string();
  std::ofstream(other) << "x";
  EXPECT_EQ(store_.Get(other).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_.Head(other).status().code(), StatusCode::kNotFound);
}

TEST_F(GivenPathsStoreTest, NeverWritesOrRemovesAnInput) {
  store_.Add(path_);
  EXPECT_EQ(store_.Put(path_).status().code(),
            StatusCode::kPermissionDenied);
  Status deleted = store_.Delete(path_);
  EXPECT_EQ(deleted.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(deleted.message().find("read-only"), std::string::npos);
  EXPECT_EQ(store_.PutContentAddressed("inputs/", 0).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_EQ(*store_.RemoveStaleTemporaries(), 0);
}

TEST_F(GivenPathsStoreTest, AGivenFileThatIsGoneIsNotFound) {
  store_.Add(path_);
  fs::remove(path_);
  EXPECT_EQ(store_.Get(path_).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_.Head(path_).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace cbpipe
