// For tests: the deployment package (scripts/package-lambda) made once per
// build and unpacked once per test process (removed when it exits), and its
// `bootstrap` run as Lambda runs it (an empty environment plus the variables
// given).
//
//   const LambdaPackage& pkg = LambdaPackage::Get(
//       {.source_dir = CBPIPE_SOURCE_DIR, .binary = CBPIPE_BINARY,
//        .cache_dir = CBPIPE_PACKAGE_DIR});
//   ASSERT_EQ(pkg.error(), "");
//   LambdaBootstrap fn({"AWS_LAMBDA_RUNTIME_API=" + api.host_port(),
//                       "_HANDLER=scan", ...}, pkg.root() / "scan.log",
//                      pkg.dir(), pkg.command());
//   ... fn answers the events of `api` until it is destroyed (SIGTERM) ...
//
// The zip is kept in cache_dir while it is newer than the binary and the
// script; a lock there serialises the test processes ctest runs at once.
// A zip made elsewhere (.zip: the arm64 one, cross-built) is unpacked as it
// is. A package of another architecture than this machine's (an arm64 one
// here) runs under qemu user-mode emulation, which needs no binfmt_misc:
// command() runs a copy of its `bootstrap` whose one change is that the
// loader is exec'd through qemu-aarch64(-static). Get() is meant for one
// thread (gtest's); one package per binary or zip, the first call's wins.
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
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/process_folder.h"

namespace cbpipe::testing {

struct LambdaPackagePaths {
  std::string source_dir;  // the repository (scripts/package-lambda)
  std::string binary;      // the cbpipe executable to package
  std::string cache_dir;   // where the zip is kept between test processes
  // A zip made elsewhere to unpack instead (binary and cache_dir unused).
  std::string zip = {};
};

class LambdaPackage {
 public:
  static const LambdaPackage& Get(const LambdaPackagePaths& paths) {
    static auto* packages = new std::map<std::string, LambdaPackage*>;
    // Each unpacked package is a few hundred MB and every test is its own
    // process: its folder (a process folder, which the next test process
    // sweeps should this one be killed) goes when the process ends.
    static const bool removed_at_exit =
        std::atexit([] {
          for (const auto& [key, package] : *packages)
            RemoveProcessFolder(package->root_.string());
        }) == 0;
    (void)removed_at_exit;
    LambdaPackage*& p =
        (*packages)[paths.zip.empty() ? paths.binary : paths.zip];
    if (p == nullptr) p = new LambdaPackage(paths);
    return *p;
  }
  // The unpacked package (LAMBDA_TASK_ROOT).
  const std::filesystem::path& dir() const { return dir_; }
  // A scratch folder of this process, dir()'s parent.
  const std::filesystem::path& root() const { return root_; }
  // "" when the package is ready, else why not.
  const std::string& error() const { return error_; }
  // Its executable's architecture: "x86_64" or "arm64".
  const std::string& arch() const { return arch_; }
  // The loader it bundles in lib/ and `bootstrap` execs.
  std::string loader() const {
    return arch_ == "arm64" ? "ld-linux-aarch64.so.1" : "ld-linux-x86-64.so.2";
  }
  // What runs `bootstrap` on this machine, in dir(): itself, or for another
  // architecture its copy that execs the loader under qemu.
  const std::vector<std::string>& command() const { return command_; }

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
    StatusOr<std::string> root =
        MakeProcessFolder("lambdapackage", "the Lambda package");
    if (!root.ok()) {
      error_ = root.status().ToString();
      return;
    }
    root_ = *root;
    dir_ = root_ / "task";
    fs::create_directories(dir_);
    fs::path zip = paths.zip;
    if (zip.empty()) {
      const fs::path cache = paths.cache_dir;
      fs::create_directories(cache);
      zip = cache / "cbpipe-lambda.zip";
      const std::string log = (root_ / "package.log").string();
      const int lock =
          ::open((cache / ".lock").c_str(), O_RDWR | O_CREAT, 0644);
      if (lock >= 0) ::flock(lock, LOCK_EX);
      std::error_code ec;
      const auto made = fs::last_write_time(zip, ec);
      const bool fresh = !ec && made >= fs::last_write_time(paths.binary) &&
                         made >= fs::last_write_time(paths.source_dir +
                                                     "/scripts/package-lambda");
      if (!fresh &&
          Shell(paths.source_dir + "/scripts/package-lambda --binary " +
                paths.binary + " --output " + zip.string() + " >" + log +
                " 2>&1") != 0) {
        error_ = "package-lambda failed: " + ReadFile(log);
      }
      if (lock >= 0) ::close(lock);
    }
    if (error_.empty() &&
        Shell("cd " + dir_.string() + " && unzip -q " + zip.string()) != 0)
      error_ = "unzip failed";
    if (error_.empty()) error_ = Prepare();
  }

  // The architecture (ELF e_machine) and how to run `bootstrap` here.
  std::string Prepare() {
    std::string elf(20, '\0');
    std::ifstream(dir_ / "cbpipe", std::ios::binary).read(elf.data(), 20);
    if (elf.compare(0, 4, "\177ELF") != 0)
      return "the package's cbpipe is not an ELF executable";
    const int machine = static_cast<unsigned char>(elf[18]) |
                        static_cast<unsigned char>(elf[19]) << 8;
    if (machine == 62) {  // EM_X86_64
      arch_ = "x86_64";
    } else if (machine == 183) {  // EM_AARCH64
      arch_ = "arm64";
    } else {
      return "the package's cbpipe is for machine " + std::to_string(machine);
    }
#if defined(__aarch64__)
    const bool native = arch_ == "arm64";
#else
    const bool native = arch_ == "x86_64";
#endif
    command_ = {"./bootstrap"};
    if (native) return "";
    if (arch_ != "arm64") return "no emulator here for " + arch_;
    std::string qemu;
    for (const char* q :
         {"/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"})
      if (::access(q, X_OK) == 0) {
        qemu = q;
        break;
      }
    if (qemu.empty())
      return "an arm64 package needs qemu-aarch64-static to run here "
             "(scripts/bootstrap-arm64)";
    std::string script = ReadFile(dir_ / "bootstrap");
    const std::string exec = "exec \"$root/lib/" + loader() + "\"";
    const size_t at = script.find(exec);
    if (at == std::string::npos ||
        script.find(exec, at + 1) != std::string::npos)
      return "bootstrap does not exec lib/" + loader() + " once:\n" + script;
    script.insert(at + 5, qemu + " ");
    std::ofstream(dir_ / ".bootstrap-under-qemu") << script;
    command_ = {"/bin/sh", "./.bootstrap-under-qemu"};
    return "";
  }

  std::filesystem::path root_, dir_;
  std::string error_, arch_;
  std::vector<std::string> command_;
};

// `bootstrap` of the unpacked package run with exactly `env` (as `env -i`),
// its output to `log`; stopped (SIGTERM) and reaped on destruction.
class LambdaBootstrap {
 public:
  // `command`: LambdaPackage::command(), run in task_root.
  LambdaBootstrap(const std::vector<std::string>& env,
                  const std::filesystem::path& log,
                  const std::filesystem::path& task_root,
                  const std::vector<std::string>& command = {"./bootstrap"})
      : log_(log) {
    std::vector<char*> envp;
    for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (const std::string& a : command)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const std::string dir = task_root.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      if (::chdir(dir.c_str()) != 0) ::_exit(126);
      ::execve(argv[0], argv.data(), envp.data());
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
