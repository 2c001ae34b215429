// End-to-end tests of the limits on inputs and configs, through the cbpipe
// binary: a gzip bomb and a gzip of one repeated invalid row are refused
// quickly with nothing delivered; a config that cannot deliver is refused by
// `config check`; `run` exits 1 when valid records could not be delivered.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "e2e/cli.h"
#include "ingest/test_gzip.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kNow = "CBPIPE_NOW=1780000000";  // 2026-05-28

constexpr char kHeader[] =
    "case_id,network,arn,merchant_id,merchant_name,transaction_date,"
    "chargeback_date,amount,currency,reason_code\n";

std::string AmexRow(int i, const std::string& merchant_name = "Shop") {
  return "A" + std::to_string(i) + ",amex,,M," + merchant_name +
         ",2025-03-01,2025-04-01,5.00,EUR,C08\n";
}
std::string VisaRow(int i) {
  return "V" + std::to_string(i) +
         ",visa,74567890123456789012341,M,Shop,2025-03-01,2025-04-01,10.00,"
         "USD,10.4\n";
}
// A bad ARN: one error per record.
constexpr char kInvalidRow[] =
    "X1,visa,123,M,Shop,2025-03-01,2025-04-01,1.00,USD,10.4\n";

// Regular files under `dir`, by name.
std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file()) names.insert(e.path().filename().string());
  }
  return names;
}

std::string FileDestination(const std::string& name,
                            const std::string& networks,
                            const std::string& root,
                            const std::string& extra = "") {
  return "\n[[destination]]\nname = \"" + name + "\"\nnetworks = [" + networks +
         "]\nurl = \"file://" + root + "/outbox/" + name + "\"\n" + extra;
}

TEST(InputLimitsE2e, GzipBombIsRefusedInSecondsWithNothingDelivered) {
  TempDir dir("bomb");
  // 11 MB that expand to 11 GiB of blank lines after a header.
  const std::string bomb = dir / "bomb.csv.gz";
  ASSERT_TRUE(WriteGzipBomb(bomb, kHeader, 11ull << 30));
  EXPECT_LT(fs::file_size(bomb), 16u << 20);
  const auto start = std::chrono::steady_clock::now();
  CliResult r = RunCli("run --json --work-dir " + ShellQuote(dir / "work") +
                           " " + ShellQuote(bomb),
                       kNow);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_LT(seconds, 10.0);
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << r.out;
  EXPECT_FALSE(doc["ok"].get<bool>());
  const auto& error = doc["inputs"][0]["input_error"];
  EXPECT_EQ(error["code"], "RESOURCE_EXHAUSTED");
  EXPECT_THAT(error["message"].get<std::string>(),
              HasSubstr("input.max_compression_ratio"));
  EXPECT_TRUE(doc["batches"].empty());
  EXPECT_TRUE(FilesIn(dir / "work/outbox").empty());
}

TEST(InputLimitsE2e, RepeatedInvalidRowCannotFillTheDisk) {
  TempDir dir("repeated");
  // One invalid row 2 million times: about 110 MB of text, under 1 MB of
  // gzip.
  const std::string input = dir / "bad.csv.gz";
  WriteFile(input,
            GzipRepeated(kHeader, 1) + GzipRepeated(kInvalidRow, 2000000));
  // With the defaults its compression ratio gives it away at once.
  CliResult r = RunCli(
      "run --work-dir " + ShellQuote(dir / "work") + " " + ShellQuote(input),
      kNow);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("input.max_compression_ratio"));
  EXPECT_TRUE(FilesIn(dir / "work/outbox").empty());

  // With that check lifted, the reject limit stops it: the rejects file
  // holds exactly that many records and stops growing.
  const std::string config = dir / "lifted.toml";
  WriteFile(config,
            "[input]\nmax_compression_ratio = 100000\n"
            "max_rejected_records = 100000\n[output]\n"
            "work_dir = \"" +
                dir / "work2" + "\"\n" +
                FileDestination("visa", "\"visa\"", dir.path()) +
                FileDestination("amex", "\"amex\"", dir.path()));
  r = RunCli(
      "run --json --config " + ShellQuote(config) + " " + ShellQuote(input),
      kNow);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << r.out;
  const auto& in = doc["inputs"][0];
  EXPECT_THAT(in["input_error"]["message"].get<std::string>(),
              HasSubstr("more than 100000 records rejected "
                        "(input.max_rejected_records)"));
  const std::string rejects = in["rejects_file"].get<std::string>();
  std::set<std::string> positions;
  std::istringstream lines(ReadFile(rejects));
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line))
    positions.insert(line.substr(0, line.find(',')));
  EXPECT_EQ(positions.size(), 100000u);
  EXPECT_LT(fs::file_size(rejects), 32u << 20);
  EXPECT_TRUE(FilesIn(dir / "outbox").empty());
}

TEST(InputLimitsE2e, LimitsAreConfigKeysShownByConfigCheck) {
  TempDir dir("limitkeys");
  WriteFile(dir / "c.toml",
            "[input]\nmax_decompressed_bytes = 2048\nmax_compression_ratio "
            "= 50\nmax_rejected_records = 7\nmax_rejected_ratio = 0.25\n" +
                FileDestination("all",
                                "\"visa\", \"mastercard\", \"amex\", "
                                "\"discover\"",
                                dir.path()));
  CliResult r = RunCli("config check --config " + ShellQuote(dir / "c.toml"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* line :
       {"max_decompressed_bytes = 2048\n", "max_compression_ratio = 50\n",
        "max_rejected_records = 7\n", "max_rejected_ratio = 0.25\n"})
    EXPECT_THAT(r.out, HasSubstr(line));
  // And the size limit applies to plain files too.
  std::string big = kHeader;
  for (int i = 0; big.size() <= 2048; ++i) big += AmexRow(i);
  WriteFile(dir / "big.csv", big);
  r = RunCli("run --config " + ShellQuote(dir / "c.toml") + " " +
                 ShellQuote(dir / "big.csv"),
             kNow, dir.path());
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("input.max_decompressed_bytes (2048 bytes"));
  EXPECT_TRUE(FilesIn(dir / "outbox").empty());
  // validate says the input was refused, not that it could not be read.
  r = RunCli("validate --config " + ShellQuote(dir / "c.toml") + " " +
                 ShellQuote(dir / "big.csv"),
             kNow, dir.path());
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("big.csv: REJECTED AS A WHOLE: "));
  EXPECT_THAT(r.out, Not(HasSubstr("UNREADABLE")));
}

TEST(InputLimitsE2e, ServeRejectsABombAndABrokenExportWithTheirReasons) {
  TempDir dir("serve_limits");
  WriteFile(dir / "c.toml",
            "[input]\nmax_rejected_records = 100\n[output]\nwork_dir = \"" +
                dir / "work" +
                "\"\n[service]\nsettle_ms = 50\npoll_interval_ms = 50\n"
                "admin_listen = \"\"\nshutdown_timeout_seconds = 5\n" +
                FileDestination("all",
                                "\"visa\", \"mastercard\", \"amex\", "
                                "\"discover\"",
                                dir.path()));
  fs::create_directories(dir / "work/inbox");
  ASSERT_TRUE(WriteGzipBomb(dir / "bomb.csv.gz", kHeader, 11ull << 30));
  std::string broken = kHeader;
  for (int i = 0; i < 1000; ++i)
    broken += "X" + std::to_string(i) + std::string(kInvalidRow + 2);
  WriteFile(dir / "broken.csv", broken);
  WriteFile(dir / "good.csv", std::string(kHeader) + AmexRow(1) + VisaRow(2));
  for (const char* name : {"bomb.csv.gz", "broken.csv", "good.csv"})
    fs::rename(dir / name, dir / ("work/inbox/" + std::string(name)));
  // The service runs for a few seconds, then `timeout` stops it (SIGTERM).
  CliResult serve =
      RunCli("serve --config " + ShellQuote(dir / "c.toml"), "timeout 8");
  const std::string& log = serve.err;
  CliResult runs =
      RunCli("runs list --config " + ShellQuote(dir / "c.toml"), kNow);
  EXPECT_EQ(runs.exit_code, 0) << runs.err;
  int rejected = 0, succeeded = 0;
  std::istringstream lines(runs.out);
  for (std::string line; std::getline(lines, line);) {
    rejected += line.find(" rejected ") != std::string::npos;
    succeeded += line.find(" succeeded ") != std::string::npos;
  }
  EXPECT_EQ(rejected, 2) << runs.out << log;
  EXPECT_EQ(succeeded, 1) << runs.out << log;
  // Each told with its reason, and quarantined with it.
  EXPECT_THAT(log, HasSubstr("bomb.csv.gz not processed: "));
  EXPECT_THAT(log, HasSubstr("input.max_compression_ratio"));
  EXPECT_THAT(log, HasSubstr("broken.csv not processed: input rejected as a "
                             "whole: more than 100 records rejected "
                             "(input.max_rejected_records)"));
  std::string reasons;
  for (const auto& e :
       fs::recursive_directory_iterator(dir / "work/quarantine")) {
    if (e.path().filename() == "reason.txt")
      reasons += ReadFile(e.path().string());
  }
  EXPECT_THAT(reasons, HasSubstr("input.max_compression_ratio"));
  EXPECT_THAT(reasons, HasSubstr("input.max_rejected_records"));
  // Only the good input was delivered.
  EXPECT_EQ(FilesIn(dir / "outbox").size(), 1u);
}

// ---------------------------------------------------------------- configs

TEST(DeliverableConfigE2e, ConfigCheckRefusesAConfigWithoutDestinations) {
  TempDir dir("nodest");
  WriteFile(dir / "c.toml", "[input]\nformat = \"csv\"\n");
  CliResult r = RunCli("config check --config " + ShellQuote(dir / "c.toml"));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("no [[destination]]"));
  // Nor does `serve` start with it (bounded, should it start after all).
  r = RunCli("serve --config " + ShellQuote(dir / "c.toml"), "timeout 20",
             dir.path());
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("cbpipe serve: "));
  EXPECT_THAT(r.err, HasSubstr("no [[destination]]"));

  // `run` with it delivers nothing and says so: exit 1, not "all
  // batches delivered".
  WriteFile(dir / "in.csv", std::string(kHeader) + AmexRow(1) + VisaRow(2));
  r = RunCli("run --config " + ShellQuote(dir / "c.toml") + " " +
                 ShellQuote(dir / "in.csv"),
             kNow, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("all batches delivered")));
  EXPECT_THAT(r.out, HasSubstr("SOME RECORDS NOT DELIVERED: 2 valid"));
  EXPECT_THAT(r.out, HasSubstr("1 visa record(s) with no destination "
                               "(NO_DESTINATION)"));
}

TEST(DeliverableConfigE2e, ConfigCheckRefusesALayoutLargerThanAFile) {
  TempDir dir("bighead");
  std::string c =
      "[output]\nmax_file_bytes = 1024\n[layout.wide]\n"
      "[[layout.wide.column]]\nfield = \"case_id\"\nheader = \"" +
      std::string(1100, 'h') + "\"\n" +
      FileDestination("all",
                      "\"visa\", \"mastercard\", \"amex\", "
                      "\"discover\"",
                      dir.path(), "layout = \"wide\"\n");
  WriteFile(dir / "c.toml", c);
  CliResult r = RunCli("config check --config " + ShellQuote(dir / "c.toml"));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("destination[0].layout"));
  EXPECT_THAT(r.err, HasSubstr("more than output.max_file_bytes (1024)"));
  // 1024 bytes hold a header of 1000.
  c.replace(c.find(std::string(1100, 'h')), 1100, std::string(1000, 'h'));
  WriteFile(dir / "c.toml", c);
  r = RunCli("config check --config " + ShellQuote(dir / "c.toml"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(DeliverableConfigE2e, NetworkWithoutDestinationWarnsAndRunExitsOne) {
  TempDir dir("partial");
  WriteFile(dir / "c.toml",
            "[output]\nwork_dir = \"" + dir / "work" + "\"\n" +
                FileDestination("visa", "\"visa\"", dir.path()));
  CliResult r = RunCli("config check --config " + ShellQuote(dir / "c.toml"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* net : {"mastercard", "amex", "discover"}) {
    EXPECT_THAT(r.err, HasSubstr(std::string("warning: ") + dir / "c.toml" +
                                 ": no destination receives " + net));
  }
  EXPECT_THAT(r.err, Not(HasSubstr("receives visa")));

  WriteFile(dir / "in.csv",
            std::string(kHeader) + VisaRow(1) + AmexRow(2) + AmexRow(3));
  r = RunCli("run --json --config " + ShellQuote(dir / "c.toml") + " " +
                 ShellQuote(dir / "in.csv"),
             kNow);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << r.out;
  EXPECT_FALSE(doc["ok"].get<bool>());
  EXPECT_EQ(doc["inputs"][0]["undeliverable"], 2);
  EXPECT_THAT(doc["inputs"][0]["undeliverable_reason"].get<std::string>(),
              HasSubstr("2 amex record(s) with no destination"));
  // The visa record still went out.
  EXPECT_EQ(FilesIn(dir / "outbox/visa").size(), 1u);
}

TEST(DeliverableConfigE2e, RecordTooLargeForAFileMakesRunExitOne) {
  TempDir dir("toolarge");
  WriteFile(dir / "c.toml",
            "[output]\nwork_dir = \"" + dir / "work" +
                "\"\nmax_file_bytes = 1024\n[layout.named]\n"
                "[[layout.named.column]]\nfield = \"case_id\"\n"
                "[[layout.named.column]]\nfield = \"merchant_name\"\n" +
                FileDestination("all",
                                "\"visa\", \"mastercard\", \"amex\", "
                                "\"discover\"",
                                dir.path(), "layout = \"named\"\n"));
  WriteFile(dir / "in.csv", std::string(kHeader) + AmexRow(1) +
                                AmexRow(2, std::string(2000, 'n')));
  CliResult r = RunCli("run --config " + ShellQuote(dir / "c.toml") + " " +
                           ShellQuote(dir / "in.csv"),
                       kNow);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("1 amex record(s) too large for a file of "
                               "destination all (RECORD_TOO_LARGE"));
  EXPECT_EQ(FilesIn(dir / "outbox/all").size(), 1u);
}

TEST(DeliverableConfigE2e, BuiltInConfigStillDeliversEverythingAndExitsZero) {
  TempDir dir("builtin");
  WriteFile(dir / "in.csv", std::string(kHeader) + VisaRow(1) + AmexRow(2));
  CliResult r = RunCli("config check");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("warning")));
  r = RunCli("run --work-dir " + ShellQuote(dir / "work") + " " +
                 ShellQuote(dir / "in.csv"),
             kNow);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("all batches delivered"));
}

// ---------------------------------------------------------------- names

TEST(FileNamesE2e, SeveralNetworksNameTheFileAfterTheDestination) {
  TempDir dir("names");
  WriteFile(
      dir / "c.toml",
      "[output]\nwork_dir = \"" + dir / "work" + "\"\n" +
          FileDestination("visa", "\"visa\"", dir.path()) +
          FileDestination("processor", "\"amex\", \"discover\"", dir.path()));
  WriteFile(dir / "in.csv", std::string(kHeader) + VisaRow(1) + AmexRow(2));
  CliResult r = RunCli("run --json --config " + ShellQuote(dir / "c.toml") +
                           " " + ShellQuote(dir / "in.csv"),
                       kNow);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::set<std::string> visa = FilesIn(dir / "outbox/visa");
  const std::set<std::string> processor = FilesIn(dir / "outbox/processor");
  ASSERT_EQ(visa.size(), 1u);
  ASSERT_EQ(processor.size(), 1u);
  EXPECT_EQ(visa.begin()->rfind("visa_20250401_", 0), 0u) << *visa.begin();
  EXPECT_EQ(processor.begin()->rfind("processor_20250401_", 0), 0u)
      << *processor.begin();
}

}  // namespace
}  // namespace cbpipe::testing
