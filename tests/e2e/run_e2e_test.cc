// End-to-end tests of `cbpipe run` to file:// destinations: the binary on
// generated inputs, checked against what arrived in the destination folders.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "e2e/cli.h"
#include "ingest/reader.h"
#include "validate/validator.h"
#include "workflow/input_scan.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kNow = "CBPIPE_NOW=1780000000";  // 2026-05-28

// One layout for all four destinations so the test can read every file the
// same way: case id, network, amount in minor units, currency.
std::string ProbeConfig(const std::string& root, int max_files_per_batch,
                        uint64_t max_file_bytes, uint64_t max_records,
                        bool with_discover = true) {
  std::string c =
      "[output]\nwork_dir = \"" + root + "/work\"\n" +
      "max_files_per_batch = " + std::to_string(max_files_per_batch) + "\n" +
      "max_file_bytes = " + std::to_string(max_file_bytes) + "\n" +
      "max_records_per_file = " + std::to_string(max_records) + "\n";
  c += R"(
[layout.probe]
line_ending = "lf"
trailer = "count_and_total"
[[layout.probe.column]]
field = "case_id"
[[layout.probe.column]]
field = "network"
format = "lower"
[[layout.probe.column]]
field = "amount"
format = "amount_minor"
[[layout.probe.column]]
field = "currency"
)";
  for (std::string net : {"visa", "mastercard", "amex", "discover"}) {
    if (net == "discover" && !with_discover) continue;
    c += "\n[[destination]]\nname = \"" + net + "\"\nnetworks = [\"" + net +
         "\"]\nurl = \"file://" + root + "/outbox/" + net +
         "\"\nlayout = \"probe\"\n";
  }
  return c;
}

struct Delivered {
  std::map<std::string, std::string> network_of_case;  // case id -> network
  std::map<std::string, int> copies;                   // case id -> count
  std::map<std::string, std::map<std::string, int64_t>> totals;  // net/cur
  std::map<std::string, uint64_t> file_sizes;
};

// Reads every delivered file: the folder name is the destination.
Delivered ReadOutbox(const std::string& outbox) {
  Delivered d;
  if (!fs::exists(outbox)) return d;
  for (const auto& folder : fs::directory_iterator(outbox)) {
    const std::string dest = folder.path().filename().string();
    for (const auto& file : fs::directory_iterator(folder)) {
      d.file_sizes[file.path().string()] = fs::file_size(file);
      std::istringstream in(ReadFile(file.path().string()));
      std::string line;
      std::getline(in, line);  // header
      while (std::getline(in, line)) {
        if (line.rfind("TRAILER", 0) == 0) continue;
        std::vector<std::string> cells;
        std::stringstream ss(line);
        std::string cell;
        while (std::getline(ss, cell, ',')) {
          if (cell.size() >= 2 && cell.front() == '"')
            cell = cell.substr(1, cell.size() - 2);
          cells.push_back(cell);
        }
        EXPECT_EQ(cells.size(), 4u) << line;
        if (cells.size() != 4) continue;
        EXPECT_EQ(cells[1], dest) << "record in the wrong folder: " << line;
        d.network_of_case[cells[0]] = cells[1];
        ++d.copies[cells[0]];
        d.totals[cells[1]][cells[3]] += std::stoll(cells[2]);
      }
    }
  }
  return d;
}

// What the input holds, read with cbpipe's own reader and validator (the
// routing, file writing and delivery under test are not involved).
struct Expected {
  uint64_t records = 0, accepted = 0;
  std::map<std::string, std::string> network_of_case;
  std::map<std::string, std::map<std::string, int64_t>> totals;
};

Expected ExpectedFrom(const std::string& input, int64_t now) {
  Expected e;
  Config config = DefaultConfig("/nonexistent");
  InputScan scan;
  ScanInput(
      input, config, now, 0,
      [&](const Record& r, std::vector<RecordError>*) {
        const std::string net(NetworkName(r.network));
        e.network_of_case[r.case_id] = net;
        e.totals[net][r.currency] += r.amount_minor;
        return OkStatus();
      },
      nullptr, &scan);
  EXPECT_TRUE(scan.input_error.ok()) << scan.input_error.ToString();
  e.records = scan.records;
  e.accepted = scan.accepted;
  return e;
}

struct RunCase {
  int records;
  std::string format;
  int max_files_per_batch;
  uint64_t max_file_bytes;
  uint64_t max_records;
};

void PrintTo(const RunCase& c, std::ostream* os) {
  *os << c.records << " " << c.format << " records, max_files_per_batch "
      << c.max_files_per_batch << ", max_file_bytes " << c.max_file_bytes
      << ", max_records_per_file " << c.max_records;
}

class RunE2E : public ::testing::TestWithParam<RunCase> {};

TEST_P(RunE2E, EveryAcceptedRecordDeliveredOnceToItsOwnNetwork) {
  const RunCase& p = GetParam();
  TempDir dir("run_" + std::to_string(p.records) + "_" + p.format + "_" +
              std::to_string(p.max_files_per_batch));
  const std::string input = dir / ("in." + p.format);
  ASSERT_EQ(RunCli("gen-sample --records " + std::to_string(p.records) +
                       " --invalid-ratio 0.03 --seed 5 --format " + p.format +
                       " --output " + ShellQuote(input),
                   kNow)
                .exit_code,
            0);
  WriteFile(dir / "c.toml", ProbeConfig(dir.path(), p.max_files_per_batch,
                                        p.max_file_bytes, p.max_records));
  CliResult r = RunCli("run --json --config " + ShellQuote(dir / "c.toml") +
                           " " + ShellQuote(input),
                       kNow);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  nlohmann::json doc = nlohmann::json::parse(r.out);
  ASSERT_TRUE(doc["ok"]);
  const auto& in = doc["inputs"][0];

  // Nothing lost: accepted + rejected = records read = records generated.
  EXPECT_EQ(in["records"], p.records);
  EXPECT_EQ(in["accepted"].get<int>() + in["rejected"].get<int>(), p.records);
  EXPECT_EQ(in["rejected"], (p.records * 3 + 50) / 100);
  std::string rejects = ReadFile(in["rejects_file"]);
  EXPECT_EQ(std::count(rejects.begin(), rejects.end(), '\n') >= 1, true);

  Expected expected = ExpectedFrom(input, 1780000000);
  EXPECT_EQ(expected.accepted, in["accepted"].get<uint64_t>());
  Delivered got = ReadOutbox(dir / "outbox");
  // Every accepted record is in exactly one delivered file of its network.
  EXPECT_EQ(got.network_of_case, expected.network_of_case);
  for (const auto& [id, n] : got.copies) EXPECT_EQ(n, 1) << id;
  // Per network and currency the delivered totals equal the input's.
  EXPECT_EQ(got.totals, expected.totals);

  // Limits: batches and file sizes.
  std::set<std::string> names;
  for (const auto& batch : doc["batches"]) {
    EXPECT_LE(batch["files"].size(),
              static_cast<size_t>(p.max_files_per_batch));
    for (const auto& f : batch["files"]) {
      EXPECT_EQ(f["status"], "delivered");
      EXPECT_LE(f["bytes"].get<uint64_t>(), p.max_file_bytes);
      if (p.max_records) {
        EXPECT_LE(f["records"].get<uint64_t>(), p.max_records);
      }
      EXPECT_TRUE(names.insert(f["name"].get<std::string>()).second);
    }
  }
  for (const auto& [path, size] : got.file_sizes)
    EXPECT_LE(size, p.max_file_bytes) << path;
  EXPECT_EQ(names.size(), got.file_sizes.size());

  // A second run delivers nothing new, and says so.
  CliResult again = RunCli("run --json --config " + ShellQuote(dir / "c.toml") +
                               " " + ShellQuote(input),
                           kNow);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  nlohmann::json doc2 = nlohmann::json::parse(again.out);
  for (const auto& batch : doc2["batches"])
    for (const auto& f : batch["files"])
      EXPECT_EQ(f["status"], "already_delivered");
  EXPECT_EQ(doc2["batches"], [&] {
    nlohmann::json b = doc["batches"];
    for (auto& batch : b)
      for (auto& f : batch["files"]) f["status"] = "already_delivered";
    return b;
  }());
  EXPECT_EQ(ReadOutbox(dir / "outbox").file_sizes, got.file_sizes);
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, RunE2E,
    ::testing::Values(RunCase{100, "csv", 4, 1 << 20, 0},
                      RunCase{3000, "jsonl", 4, 1 << 20, 0},
                      RunCase{5000, "csv", 4, 20000, 0},
                      RunCase{5000, "csv", 3, 1 << 20, 400},
                      RunCase{8000, "jsonl", 1, 60000, 0}),
    [](const auto& info) {
      return std::to_string(info.param.records) + "_" + info.param.format +
             "_b" + std::to_string(info.param.max_files_per_batch) + "_" +
             std::to_string(info.index);
    });

// Every file under <work_dir>/outbox, by its path below the work dir.
std::map<std::string, std::string> OutboxFiles(const std::string& work_dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(work_dir + "/outbox")) {
    if (e.is_regular_file())
      files[fs::relative(e.path(), work_dir).string()] =
          ReadFile(e.path().string());
  }
  return files;
}

TEST(RunE2ESingle, DeterministicBytesAndNamesAcrossWorkDirs) {
  TempDir a("run_det_a"), b("run_det_b");
  const std::string input = a / "in.csv";
  ASSERT_EQ(
      RunCli("gen-sample --records 2000 --seed 9 --output " + ShellQuote(input),
             kNow)
          .exit_code,
      0);
  for (const TempDir* d : {&a, &b}) {
    CliResult r = RunCli("run --work-dir " + ShellQuote(d->path() + "/w") +
                             " " + ShellQuote(input),
                         kNow);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  const std::map<std::string, std::string> fa = OutboxFiles(a / "w"),
                                           fb = OutboxFiles(b / "w");
  EXPECT_EQ(fa.size(), 4u);
  EXPECT_EQ(fa, fb);
}

TEST(RunE2ESingle, StandardInputGivesTheSameFilesAsThePath) {
  // "-" reads standard input; its id is the hash of what came in, so the
  // files (names carry the id) are the same as from the file itself.
  TempDir a("run_stdin_a"), b("run_stdin_b");
  const std::string input = a / "in.csv";
  ASSERT_EQ(
      RunCli("gen-sample --records 1500 --seed 4 --output " + ShellQuote(input),
             kNow)
          .exit_code,
      0);
  CliResult from_path = RunCli(
      "run --work-dir " + ShellQuote(a / "w") + " " + ShellQuote(input), kNow);
  ASSERT_EQ(from_path.exit_code, 0) << from_path.out << from_path.err;
  CliResult from_stdin = RunCli(
      "run --work-dir " + ShellQuote(b / "w") + " - < " + ShellQuote(input),
      kNow);
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.out << from_stdin.err;
  const std::map<std::string, std::string> fa = OutboxFiles(a / "w"),
                                           fb = OutboxFiles(b / "w");
  EXPECT_EQ(fa.size(), 4u);
  EXPECT_EQ(fa, fb);
}

TEST(RunE2ESingle, NetworkWithoutDestinationIsReportedNotDropped) {
  TempDir dir("run_nodest");
  const std::string input = dir / "in.csv";
  ASSERT_EQ(
      RunCli("gen-sample --records 1000 --seed 3 --output " + ShellQuote(input),
             kNow)
          .exit_code,
      0);
  WriteFile(dir / "c.toml", ProbeConfig(dir.path(), 4, 1 << 20, 0, false));
  CliResult r = RunCli("run --json --config " + ShellQuote(dir / "c.toml") +
                           " " + ShellQuote(input),
                       kNow);
  // Valid records left undelivered are a failure of the run, not a success.
  ASSERT_EQ(r.exit_code, 1) << r.err;
  nlohmann::json doc = nlohmann::json::parse(r.out);
  const auto& in = doc["inputs"][0];
  const std::string rejects = ReadFile(in["rejects_file"]);
  const size_t no_dest = [&] {
    size_t n = 0, pos = 0;
    while ((pos = rejects.find("NO_DESTINATION", pos)) != std::string::npos) {
      ++n;
      ++pos;
    }
    return n;
  }();
  Expected expected = ExpectedFrom(input, 1780000000);
  size_t discover = 0;
  for (const auto& [id, net] : expected.network_of_case)
    discover += net == "discover";
  EXPECT_GT(discover, 0u);
  EXPECT_EQ(no_dest, discover);
  EXPECT_EQ(in["accepted"].get<size_t>() + discover, expected.accepted);
  EXPECT_FALSE(fs::exists(dir / "outbox/discover"));
}

TEST(RunE2ESingle, OversizedRecordIsRejectedNotLooped) {
  TempDir dir("run_oversize");
  const std::string row_ok =
      "A1,visa,74567890123456789012341,,M1,2025-03-01,2025-04-01,1.00,USD,"
      "10.4,";
  const std::string huge(3000, 'x');
  WriteFile(dir / "in.csv",
            "case_id,network,arn,pan,merchant_id,transaction_date,"
            "chargeback_date,amount,currency,reason_code,reason_text\n" +
                row_ok + "short\n" + "A2" + row_ok.substr(2) + huge + "\n");
  WriteFile(dir / "c.toml", R"(
[output]
work_dir = ")" + dir.path() + R"(/work"
max_file_bytes = 2048
[layout.wide]
[[layout.wide.column]]
field = "case_id"
[[layout.wide.column]]
field = "reason_text"
[[destination]]
name = "visa"
networks = ["visa"]
url = "file://)" + dir.path() + R"(/outbox"
layout = "wide"
)");
  CliResult r = RunCli("run --json --config " + ShellQuote(dir / "c.toml") +
                           " " + ShellQuote(dir / "in.csv"),
                       kNow);
  ASSERT_EQ(r.exit_code, 1) << r.out << r.err;  // one record not delivered
  nlohmann::json doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["inputs"][0]["accepted"], 1);
  EXPECT_EQ(doc["inputs"][0]["rejected"], 1);
  EXPECT_EQ(doc["inputs"][0]["undeliverable"], 1);
  EXPECT_THAT(ReadFile(doc["inputs"][0]["rejects_file"]),
              HasSubstr("RECORD_TOO_LARGE"));
}

TEST(RunE2ESingle, UnreadableInputIsQuarantinedAndKept) {
  TempDir dir("run_quarantine");
  WriteFile(dir / "bad.csv", std::string("case_id\n\0\0\0", 11));
  CliResult r = RunCli("run --json --work-dir " + ShellQuote(dir / "w") + " " +
                           ShellQuote(dir / "bad.csv"),
                       kNow);
  EXPECT_EQ(r.exit_code, 2);
  nlohmann::json doc = nlohmann::json::parse(r.out);
  const auto& err = doc["inputs"][0]["input_error"];
  ASSERT_TRUE(err.is_object());
  const std::string q = err["quarantine"];
  EXPECT_TRUE(fs::exists(q + "/bad.csv"));
  EXPECT_TRUE(fs::exists(q + "/reason.txt"));
  EXPECT_TRUE(fs::exists(dir / "bad.csv"));
  EXPECT_TRUE(doc["batches"].empty());
}

TEST(RunE2ESingle, FileDestinationConflictIsAFailureNotAnOverwrite) {
  TempDir dir("run_conflict");
  const std::string input = dir / "in.csv";
  ASSERT_EQ(
      RunCli("gen-sample --records 200 --seed 4 --output " + ShellQuote(input),
             kNow)
          .exit_code,
      0);
  CliResult first = RunCli("run --json --work-dir " + ShellQuote(dir / "w") +
                               " " + ShellQuote(input),
                           kNow);
  ASSERT_EQ(first.exit_code, 0);
  nlohmann::json doc = nlohmann::json::parse(first.out);
  const std::string name = doc["batches"][0]["files"][0]["name"];
  const std::string dest = doc["batches"][0]["files"][0]["destination"];
  // A different work dir (fresh ledger) delivering into the same folder
  // where someone changed the file: never overwritten.
  const std::string target = dir / ("w/outbox/" + dest + "/" + name);
  WriteFile(target, "tampered");
  WriteFile(dir / "c.toml", "[output]\nwork_dir = \"" + dir.path() +
                                "/w2\"\n"
                                "[[destination]]\nname = \"" +
                                dest + "\"\nnetworks = [\"" + dest +
                                "\"]\nurl = \"file://" + dir.path() +
                                "/w/outbox/" + dest + "\"\n");
  CliResult second =
      RunCli("run --json --config " + ShellQuote(dir / "c.toml") + " " +
                 ShellQuote(input),
             kNow);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_EQ(ReadFile(target), "tampered");
  EXPECT_THAT(second.out, HasSubstr("already exists"));
}

TEST(RunE2ESingle, ConfigCheckMasksNothingSecretAndNamesErrors) {
  TempDir dir("config_check");
  WriteFile(dir / "ok.toml", R"(
[[destination]]
name = "mc"
networks = ["mastercard"]
url = "ftps://127.0.0.1:2121/in"
username = "u"
password = "env:MC_PASS"
)");
  CliResult ok = RunCli("config check --config " + ShellQuote(dir / "ok.toml"),
                        "MC_PASS=topsecret-123");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("env:MC_PASS"));
  EXPECT_THAT(ok.out + ok.err, ::testing::Not(HasSubstr("topsecret-123")));
  WriteFile(dir / "bad.toml", "[output]\nmax_files_per_batch = -1\n");
  CliResult bad =
      RunCli("config check --config " + ShellQuote(dir / "bad.toml"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("output.max_files_per_batch"));
}

}  // namespace
}  // namespace cbpipe::testing
