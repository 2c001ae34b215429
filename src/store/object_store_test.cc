#include "store/object_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "store/local_cache.h"
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

class CacheFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = fs::path(::testing::TempDir()) /
           ("cache_folders_" + std::to_string(::getpid()));
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
    const char* old = std::getenv("TMPDIR");
    old_tmpdir_ = old ? old : "";
    ::setenv("TMPDIR", tmp_.c_str(), 1);
  }
  void TearDown() override {
    for (pid_t pid : running_) Kill(pid);
    if (old_tmpdir_.empty()) {
      ::unsetenv("TMPDIR");
    } else {
      ::setenv("TMPDIR", old_tmpdir_.c_str(), 1);
    }
    fs::remove_all(tmp_);
  }

  // A process that makes a cache folder with a file in it and runs until
  // Kill: one killed with its store, which never removed the folder.
  std::string ProcessWithACacheFolder(pid_t* pid) {
    int to_parent[2];
    if (::pipe(to_parent) != 0) return "";
    *pid = ::fork();
    if (*pid == 0) {
      auto dir = MakeCacheFolder("test");
      std::string path = dir.ok() ? *dir : "";
      if (!path.empty()) std::ofstream(path + "/input.csv") << "4111...";
      path += "\n";
      if (::write(to_parent[1], path.data(), path.size()) < 0) ::_exit(1);
      for (;;) ::pause();
    }
    running_.push_back(*pid);
    ::close(to_parent[1]);
    std::string path;
    char c;
    while (::read(to_parent[0], &c, 1) == 1 && c != '\n') path += c;
    ::close(to_parent[0]);
    return path;
  }
  void Kill(pid_t pid) {
    if (std::erase(running_, pid) == 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }

  fs::path tmp_;
  std::string old_tmpdir_;
  std::vector<pid_t> running_;
};

TEST_F(CacheFolderTest, IsPrivateAndNamedByNamespaceAndProcess) {
  auto dir = MakeCacheFolder("memory://");
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_EQ(fs::path(*dir).parent_path(), tmp_);
  const std::string name = fs::path(*dir).filename().string();
  EXPECT_EQ(name.rfind("cbpipe-cache-", 0), 0u) << name;
  EXPECT_NE(name.find("-" + std::to_string(::getpid()) + "-"),
            std::string::npos)
      << name;
  struct stat st;
  ASSERT_EQ(::stat(dir->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  RemoveCacheFolder(*dir);
  EXPECT_FALSE(fs::exists(*dir));
}

TEST_F(CacheFolderTest, AKilledProcessesFolderGoesWithTheNextStore) {
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

TEST_F(CacheFolderTest, TheSweepCountsWhatItRemoved) {
  pid_t a_pid = 0, b_pid = 0;
  const std::string a = ProcessWithACacheFolder(&a_pid);
  const std::string b = ProcessWithACacheFolder(&b_pid);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(RemoveCacheFoldersOfEndedProcesses(tmp_), 0);
  Kill(a_pid);
  Kill(b_pid);
  EXPECT_EQ(RemoveCacheFoldersOfEndedProcesses(tmp_), 2);
  EXPECT_EQ(RemoveCacheFoldersOfEndedProcesses(tmp_), 0);
  EXPECT_EQ(RemoveCacheFoldersOfEndedProcesses(tmp_ / "missing"), 0);
}

}  // namespace
}  // namespace cbpipe
