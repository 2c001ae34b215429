#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "store/object_store.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

TEST(ObjectKeyTest, RejectsPathTricks) {
  EXPECT_TRUE(ValidateObjectKey("inputs/ab12.csv").ok());
  for (const char* bad : {"", "/abs", "a/../b", "a//b", "a/", "..", "a b",
                          "a\\b", "./a"}) {
    EXPECT_EQ(ValidateObjectKey(bad).code(), StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(LocalFolderStoreTest, PutGetListAtomically) {
  const fs::path root = fs::path(::testing::TempDir()) /
                        ("store_" + std::to_string(::getpid()));
  fs::remove_all(root);
  LocalFolderStore store((root / "objects").string());
  const std::string src = (root / "src.csv").string();
  fs::create_directories(root);
  std::ofstream(src) << "hello";
  EXPECT_FALSE(*store.Exists("inputs/a"));
  EXPECT_EQ(store.LocalPath("inputs/a").status().code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(store.PutFile("inputs/a", src).ok());
  ASSERT_TRUE(store.PutFile("inputs/b", src).ok());
  EXPECT_TRUE(*store.Exists("inputs/a"));
  std::ifstream in(*store.LocalPath("inputs/a"));
  std::string text;
  in >> text;
  EXPECT_EQ(text, "hello");
  EXPECT_EQ(*store.List("inputs/"),
            (std::vector<std::string>{"inputs/a", "inputs/b"}));
  EXPECT_EQ(store.PutFile("../x", src).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.PutFile("inputs/c", (root / "missing").string()).code(),
            StatusCode::kNotFound);
  fs::remove_all(root);
}

}  // namespace
}  // namespace cbpipe
