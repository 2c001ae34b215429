// For tests: the deployment package (scripts/package-lambda) made once per
// build and unpacked once per test process, and its `bootstrap` run as
// Lambda runs it (an empty environment plus the variables given).
//
//   const LambdaPackage& pkg = LambdaPackage::Get(
//       {.source_dir = CBPIPE_SOURCE_DIR, .binary = CBPIPE_BINARY,
//        .cache_dir = CBPIPE_PACKAGE_DIR});
//   ASSERT_EQ(pkg.error(), "");
//   LambdaBootstrap fn({"AWS_LAMBDA_RUNTIME_API=" + api.host_port(),
//                       "_HANDLER=scan", ...}, pkg.root() / "scan.log");
//   ... fn answers the events of `api` until it is destroyed (SIGTERM) ...
//
// The zip is kept in cache_dir while it is newer than the binary and the
// script; a lock there serialises the test processes ctest runs at once.
// Get() is meant for one thread (gtest's); the first call's paths win.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cbpipe::testing {

struct LambdaPackagePaths {
  std::string source_dir;  // the repository (scripts/package-lambda)
  std::string binary;      // the cbpipe executable to package
  std::string cache_dir;   // where the zip is kept between test processes
};

class LambdaPackage {
 public:
  static const LambdaPackage& Get(const LambdaPackagePaths& paths) {
    static LambdaPackage* p = new LambdaPackage(paths);
    return *p;
  }
  // The unpacked package (LAMBDA_TASK_ROOT).
  const std::filesystem::path& dir() const { return dir_; }
  // A scratch folder of this process, dir()'s parent.
  const std::filesystem::path& root() const { return root_; }
  // "" when the package is ready, else why not.
  const std::string& error() const { return error_; }

  static std::string ReadFile(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  static int Shell(const std::string& command) {
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }

  explicit LambdaPackage(const LambdaPackagePaths& paths) {
    namespace fs = std::filesystem;
    root_ = fs::temp_directory_path() /
            ("cbpipe_lambda_pkg_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "task");
    dir_ = root_ / "task";
    const fs::path cache = paths.cache_dir;
    fs::create_directories(cache);
    const fs::path zip = cache / "cbpipe-lambda.zip";
    const std::string log = (root_ / "package.log").string();
    const int lock = ::open((cache / ".lock").c_str(), O_RDWR | O_CREAT, 0644);
    if (lock >= 0) ::flock(lock, LOCK_EX);
    std::error_code ec;
    const auto made = fs::last_write_time(zip, ec);
    const bool fresh =
        !ec && made >= fs::last_write_time(paths.binary) &&
        made >= fs::last_write_time(paths.source_dir + "/scripts/package-lambda");
    if (!fresh &&
        Shell(paths.source_dir + "/scripts/package-lambda --binary " +
              paths.binary + " --output " + zip.string() + " >" + log +
              " 2>&1") != 0) {
      error_ = "package-lambda failed: " + ReadFile(log);
    }
    if (lock >= 0) ::close(lock);
    if (error_.empty() &&
        Shell("cd " + dir_.string() + " && unzip -q " + zip.string()) != 0)
      error_ = "unzip failed";
  }
  std::filesystem::path root_, dir_;
  std::string error_;
};

// `bootstrap` of the unpacked package run with exactly `env` (as `env -i`),
// its output to `log`; stopped (SIGTERM) and reaped on destruction.
class LambdaBootstrap {
 public:
  LambdaBootstrap(const std::vector<std::string>& env,
                  const std::filesystem::path& log,
                  const std::filesystem::path& task_root)
      : log_(log) {
    std::vector<char*> envp;
    for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const std::string dir = task_root.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      if (::chdir(dir.c_str()) != 0) ::_exit(126);
      char* argv[] = {const_cast<char*>("./bootstrap"), nullptr};
      ::execve("./bootstrap", argv, envp.data());
      ::_exit(127);
    }
  }
  ~LambdaBootstrap() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  LambdaBootstrap(const LambdaBootstrap&) = delete;
  LambdaBootstrap& operator=(const LambdaBootstrap&) = delete;

  // The exit code once it ended by itself within `timeout`; -1 if not.
  int WaitExit(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  std::string output() const { return LambdaPackage::ReadFile(log_); }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

}  // namespace cbpipe::testing
