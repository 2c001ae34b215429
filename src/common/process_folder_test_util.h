// For tests: a fixture whose TMPDIR is a folder of its own, and processes
// that make a process folder (common/process_folder.h) and are killed.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/process_folder.h"

namespace cbpipe {

class ProcessFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = std::filesystem::path(::testing::TempDir()) /
           ("process_folders_" + std::to_string(::getpid()));
    std::filesystem::remove_all(tmp_);
    std::filesystem::create_directories(tmp_);
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
    std::filesystem::remove_all(tmp_);
  }

  // A process that makes a cache folder with a file in it and runs until
  // Kill: one killed with its store, which never removed the folder.
  std::string ProcessWithACacheFolder(pid_t* pid) {
    int to_parent[2];
    if (::pipe(to_parent) != 0) return "";
    *pid = ::fork();
    if (*pid == 0) {
      auto dir = MakeProcessFolder("cache", "test");
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

  std::filesystem::path tmp_;
  std::string old_tmpdir_;
  std::vector<pid_t> running_;
};

}  // namespace cbpipe
