#include "common/process_folder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/process_folder_test_util.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

TEST_F(ProcessFolderTest, IsPrivateAndNamedByKindNamespaceAndProcess) {
  auto dir = MakeProcessFolder("cache", "memory://");
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
  RemoveProcessFolder(*dir);
  EXPECT_FALSE(fs::exists(*dir));
}

// cbpipe serve ends with std::_Exit: no store destructor runs.
TEST_F(ProcessFolderTest, AProcessLeavingWithoutDestructorsRemovesItsOwn) {
  pid_t live_pid = 0, dead_pid = 0;
  const std::string live = ProcessWithACacheFolder(&live_pid);
  const std::string dead = ProcessWithACacheFolder(&dead_pid);
  ASSERT_FALSE(live.empty());
  ASSERT_FALSE(dead.empty());
  auto a = MakeProcessFolder("cache", "a");
  auto b = MakeProcessFolder("secrets", "b");
  ASSERT_TRUE(a.ok() && b.ok());
  std::ofstream(*a + "/input.csv") << "4111...";
  Kill(dead_pid);
  RemoveProcessFoldersOfThisProcess();
  EXPECT_FALSE(fs::exists(*a));
  EXPECT_FALSE(fs::exists(*b));
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live)) << "another running process's copies stay";
}

TEST_F(ProcessFolderTest, TheSweepCountsWhatItRemoved) {
  pid_t a_pid = 0, b_pid = 0;
  const std::string a = ProcessWithACacheFolder(&a_pid);
  const std::string b = ProcessWithACacheFolder(&b_pid);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(RemoveProcessFoldersOfEndedProcesses(tmp_, "cache"), 0);
  Kill(a_pid);
  Kill(b_pid);
  EXPECT_EQ(RemoveProcessFoldersOfEndedProcesses(tmp_, "cache"), 2);
  EXPECT_EQ(RemoveProcessFoldersOfEndedProcesses(tmp_, "cache"), 0);
  EXPECT_EQ(RemoveProcessFoldersOfEndedProcesses(tmp_ / "missing", "cache"), 0);
}

// A hostile name in the temporary folder: a symlink named like a dead
// process's folder, pointing at files that must survive the sweep.
TEST_F(ProcessFolderTest, ASymlinkNamedLikeAFolderIsNeverFollowed) {
  pid_t pid = 0;
  const std::string dead = ProcessWithACacheFolder(&pid);
  ASSERT_FALSE(dead.empty());
  Kill(pid);
  const fs::path victim = tmp_ / "victim";
  fs::create_directories(victim);
  std::ofstream((victim / "keep").string()) << "x";
  const fs::path link = dead + "-link";  // cbpipe-cache-NS-PID-XXXXXX-link
  fs::create_directory_symlink(victim, link);
  EXPECT_EQ(RemoveProcessFoldersOfEndedProcesses(tmp_, "cache"), 1);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_TRUE(fs::exists(victim / "keep"));
}

}  // namespace
}  // namespace cbpipe
