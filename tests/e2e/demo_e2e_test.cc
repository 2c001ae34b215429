// `cbpipe run` against real servers, through cbpipe-demo: a local SFTP
// server (OpenSSH) and a local FTPS server (vsftpd) receive the four
// networks' files. Needs root (CI runs as root); skipped otherwise.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "e2e/cli.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(DemoE2E, DeliversEveryNetworkToRealServersOnceByteForByte) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to start sshd/vsftpd";
  const std::string demo = CBPIPE_DEMO_BIN;
  TempDir dir("demo_e2e");
  const std::string input = dir / "sample.csv";
  ASSERT_EQ(RunCli("gen-sample --records 3000 --invalid-ratio 0.02 --seed 8 "
                   "--output " + ShellQuote(input))
                .exit_code,
            0);
  const std::string cmd = ShellQuote(demo) + " --cbpipe " +
                          ShellQuote(CbpipeBin()) + " --dir " +
                          ShellQuote(dir / "d") + " " + ShellQuote(input) +
                          " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;

  // First run: four files delivered; second run: all already delivered.
  size_t delivered = 0, already = 0;
  for (size_t pos = 0; (pos = out.find("\n    delivered ", pos)) !=
                       std::string::npos;
       ++pos)
    ++delivered;
  for (size_t pos = 0;
       (pos = out.find("already_delivered", pos)) != std::string::npos; ++pos)
    ++already;
  EXPECT_EQ(delivered, 4u) << out;
  EXPECT_EQ(already, 4u) << out;
  EXPECT_THAT(out, HasSubstr("servers stopped"));

  // What each server holds equals, byte for byte, what was generated.
  std::map<std::string, std::string> generated, received;
  for (const auto& e : fs::recursive_directory_iterator(dir / "d/work/batches"))
    if (e.is_regular_file() && e.path().extension() == ".csv")
      generated[e.path().filename().string()] = ReadFile(e.path().string());
  for (const std::string server : {"sftp-server", "ftps-server"}) {
    for (const auto& e :
         fs::recursive_directory_iterator(dir / ("d/" + server))) {
      if (e.is_regular_file() && e.path().extension() == ".csv" &&
          e.path().string().find("/root/") != std::string::npos)
        received[e.path().filename().string()] = ReadFile(e.path().string());
    }
  }
  EXPECT_EQ(generated.size(), 4u);
  EXPECT_EQ(received, generated);
}

}  // namespace
}  // namespace cbpipe::testing
