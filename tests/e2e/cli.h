// Runs the cbpipe binary under test (CBPIPE_BIN, set by CTest) and captures
// what it prints.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace cbpipe::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string CbpipeBin() {
  const char* bin = std::getenv("CBPIPE_BIN");
  return bin ? bin : "build/src/app/cbpipe";
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

// `args` is appended to the command line as it is (quote paths yourself with
// ShellQuote). `env` is prefixed ("CBPIPE_NOW=... ").
inline CliResult RunCli(const std::string& args, const std::string& env = "",
                        const std::string& cwd = "") {
  static int counter = 0;
  const std::string err_path = (std::filesystem::temp_directory_path() /
                                ("cbpipe_cli_err_" +
                                 std::to_string(::getpid()) + "_" +
                                 std::to_string(counter++)))
                                   .string();
  std::string cmd;
  if (!cwd.empty()) cmd += "cd " + ShellQuote(cwd) + " && ";
  cmd += env + " " + ShellQuote(CbpipeBin()) + " " + args + " 2>" +
         ShellQuote(err_path);
  CliResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 65536> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.err = ReadFile(err_path);
  std::filesystem::remove(err_path);
  return r;
}

// A fresh folder under the test temp dir, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    path_ = std::filesystem::temp_directory_path() /
            ("cbpipe_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const {
    return (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace cbpipe::testing
