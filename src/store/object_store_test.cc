#include "store/object_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/process_folder_test_util.h"
#include "store/memory_store.h"

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

TEST(LocalFolderStoreTest, APutIsATemporaryRenamedWithTheRecordMode) {
  const fs::path root = fs::path(::testing::TempDir()) /
                        ("store_put_" + std::to_string(::getpid()));
  fs::remove_all(root);
  ::umask(022);
  LocalFolderStore store(root.string());
  auto out = store.Put("batches/r1/visa.csv");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)->Write("x", 1).ok());
  // Until the commit, only a ".put-<pid>-*.tmp" is there, and unlisted.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root / "batches/r1"))
    names.push_back(e.path().filename().string());
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].rfind(".put-" + std::to_string(::getpid()) + "-", 0), 0u);
  EXPECT_TRUE(store.List("")->empty());
  ASSERT_TRUE((*out)->Commit().ok());
  const fs::path object = root / "batches/r1/visa.csv";
  EXPECT_EQ(fs::status(object).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write |
                fs::perms::group_read);
  EXPECT_EQ(std::distance(fs::directory_iterator(root / "batches/r1"),
                          fs::directory_iterator()),
            1);
  fs::remove_all(root);
}

TEST(LocalFolderStoreTest, PutFileOfTheObjectItselfCopiesNothing) {
  const fs::path root = fs::path(::testing::TempDir()) /
                        ("store_in_place_" + std::to_string(::getpid()));
  fs::remove_all(root);
  LocalFolderStore store(root.string());
  ASSERT_TRUE(PutObjectBytes(store, "batches/b1/visa.csv", "a,b\n").ok());
  const fs::path object = root / "batches/b1/visa.csv";
  struct stat before {};
  ASSERT_EQ(::stat(object.c_str(), &before), 0);
  // Already in place (as a scan into the work folder leaves it): the same
  // file stays, no temporary, no rename; a given hash is not even read.
  ASSERT_TRUE(store.PutFile("batches/b1/visa.csv", object.string()).ok());
  ASSERT_TRUE(store.PutFile("batches/b1/visa.csv",
                            (root / "batches/../batches/b1/visa.csv").string(),
                            std::string(64, 'a'))
                  .ok());
  struct stat after {};
  ASSERT_EQ(::stat(object.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(std::distance(fs::directory_iterator(root / "batches/b1"),
                          fs::directory_iterator()),
            1);
  EXPECT_EQ(*GetObjectBytes(store, "batches/b1/visa.csv"), "a,b\n");
  // Another key from that file is a copy, as any PutFile.
  ASSERT_TRUE(store.PutFile("batches/b2/visa.csv", object.string()).ok());
  struct stat copy {};
  ASSERT_EQ(::stat((root / "batches/b2/visa.csv").c_str(), &copy), 0);
  EXPECT_NE(copy.st_ino, before.st_ino);
  EXPECT_EQ(*GetObjectBytes(store, "batches/b2/visa.csv"), "a,b\n");
  fs::remove_all(root);
}

TEST(LocalFolderStoreTest, PutContentAddressedAndStaleTemporaries) {
  const fs::path root = fs::path(::testing::TempDir()) /
                        ("store_ca_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "objects/inputs");
  LocalFolderStore store((root / "objects").string());
  const std::string src = (root / "src.csv").string();
  std::ofstream(src) << "hello";
  const int fd = ::open(src.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ::lseek(fd, 3, SEEK_SET);  // pread: the offset does not matter
  auto put = store.PutContentAddressed("inputs/", fd);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(put->key, "inputs/" + put->sha256);
  EXPECT_EQ(put->size, 5u);
  auto again = store.PutContentAddressed("inputs/", fd);  // kept as it is
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->key, put->key);
  ::close(fd);
  EXPECT_EQ(*store.List("inputs/"), std::vector<std::string>{put->key});

  // A Put killed half-way leaves .put-<pid>-*.tmp: removed once that
  // process is gone; a live process's is kept.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  const fs::path dead =
      root / "objects/inputs" / (".put-" + std::to_string(child) + "-1.tmp");
  const fs::path live = root / "objects/inputs" /
                        (".put-" + std::to_string(::getpid()) + "-2.tmp");
  std::ofstream(dead.string()) << "hal";
  std::ofstream(live.string()) << "hal";
  auto removed = store.RemoveStaleTemporaries();
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  fs::remove_all(root);
}

TEST_F(ProcessFolderTest, AKilledProcessesFolderGoesWithTheNextStore) {
  pid_t live_pid = 0, dead_pid = 0;
  const std::string live = ProcessWithACacheFolder(&live_pid);
  const std::string dead = ProcessWithACacheFolder(&dead_pid);
  ASSERT_FALSE(dead.empty());
  ASSERT_FALSE(live.empty());
  Kill(dead_pid);
  ASSERT_TRUE(fs::exists(fs::path(dead) / "input.csv"));
  // Another pid namespace's folder, of a pid not running here: its pid says
  // nothing about its process, so it stays.
  const fs::path other =
      tmp_ / ("cbpipe-cache-1-" + std::to_string(dead_pid) + "-abcdef");
  fs::create_directories(other);
  // A file that only looks like a cache folder stays too.
  const fs::path lookalike =
      fs::path(dead).parent_path() /
      (fs::path(dead).filename().string() + "-file");
  std::ofstream(lookalike.string()) << "x";

  {
    InMemoryObjectStore store;
    ASSERT_TRUE(PutObjectBytes(store, "inputs/a.csv", "abc").ok());
    auto path = store.LocalPath("inputs/a.csv");
    ASSERT_TRUE(path.ok()) << path.status().ToString();
    EXPECT_FALSE(fs::exists(dead)) << "the ended process's copies stay";
    EXPECT_TRUE(fs::exists(live));
    EXPECT_TRUE(fs::exists(other));
    store.ReleaseLocalPath("inputs/a.csv");
  }

  // The live one is killed after the next store made its folder: that
  // store's destructor sweeps it.
  {
    InMemoryObjectStore store;
    ASSERT_TRUE(PutObjectBytes(store, "inputs/a.csv", "abc").ok());
    ASSERT_TRUE(store.LocalPath("inputs/a.csv").ok());
    store.ReleaseLocalPath("inputs/a.csv");
    Kill(live_pid);
    EXPECT_TRUE(fs::exists(live));
  }
  EXPECT_FALSE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(fs::exists(lookalike));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp_))
    left.push_back(e.path().filename().string());
  EXPECT_EQ(left.size(), 2u) << "the stores' own folders are gone too";
}

}  // namespace
}  // namespace cbpipe
