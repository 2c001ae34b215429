// A full card number (PAN) never leaves the reader. A different card number
// is planted in every field and every form an input can carry it (plain,
// spaced, dashed; in identifier fields, custom-mapped columns, free text,
// JSON keys, malformed rows and the file names), the inputs go through
// `cbpipe validate` (human and JSON), `cbpipe run` and `cbpipe serve` with
// webhook and log notifications, the admin API and `runs list` are asked,
// and then every byte the program wrote is scanned: outputs, rejects,
// standard output and error, logs, the state and ledger databases (raw
// bytes, WAL included), API answers, webhook bodies and every file name
// under the work folders. No card number may appear. The one exception is
// the stored copy of an input itself (archive, object store, quarantine),
// which is kept as it arrived by design; its name is still scanned.
//
// And the opposite: a run whose ids are all digits, and happen to form a
// card number, keeps them intact in the log.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "e2e/cli.h"
#include "e2e/serve_process.h"
#include "notify/test_receivers.h"
#include "runs/sqlite_run_store.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;

// --- Card numbers, built and found independently of src/domain/pan.cc ------

int LuhnSum(const std::string& digits, bool double_last) {
  int sum = 0;
  bool twice = double_last;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return sum;
}
bool Luhn(const std::string& digits) {
  return LuhnSum(digits, false) % 10 == 0;
}

// In the IIN ranges of Visa, Mastercard, Amex or Discover.
bool InCardRange(const std::string& d) {
  auto prefix = [&](size_t n) { return std::stoi(d.substr(0, n)); };
  if (d[0] == '4') return true;
  if (prefix(2) >= 51 && prefix(2) <= 55) return true;
  if (prefix(4) >= 2221 && prefix(4) <= 2720) return true;
  if (prefix(2) == 34 || prefix(2) == 37 || prefix(2) == 65) return true;
  if (prefix(4) == 6011 || (prefix(3) >= 644 && prefix(3) <= 649)) return true;
  return prefix(6) >= 622126 && prefix(6) <= 622925;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexLetter(char c) { return c >= 'a' && c <= 'f'; }

// Every card number in `bytes`: whole digit groups joined by single spaces
// or dashes, 12-19 digits, Luhn-valid, in a card range. Digit groups that
// touch a lower-case hex letter (hex ids and digests the program writes) or
// follow "<digit>." (decimal fractions in metrics) are not card data.
std::vector<std::string> FindCards(const std::string& bytes) {
  struct Group {
    size_t begin, size;
    bool skip;
  };
  std::vector<std::vector<Group>> runs(1);
  for (size_t i = 0; i < bytes.size();) {
    if (!IsDigit(bytes[i])) {
      ++i;
      continue;
    }
    const size_t b = i;
    while (i < bytes.size() && IsDigit(bytes[i])) ++i;
    const bool skip = (b > 0 && IsHexLetter(bytes[b - 1])) ||
                      (i < bytes.size() && IsHexLetter(bytes[i])) ||
                      (b > 1 && bytes[b - 1] == '.' && IsDigit(bytes[b - 2]));
    const auto& run = runs.back();
    const bool joins = !run.empty() &&
                       run.back().begin + run.back().size + 1 == b &&
                       (bytes[b - 1] == ' ' || bytes[b - 1] == '-');
    if (!joins) runs.emplace_back();
    runs.back().push_back({b, i - b, skip});
  }
  std::vector<std::string> found;
  for (const auto& run : runs) {
    for (size_t a = 0; a < run.size(); ++a) {
      std::string digits;
      for (size_t b = a; b < run.size() && !run[b].skip; ++b) {
        digits += bytes.substr(run[b].begin, run[b].size);
        if (digits.size() > 19) break;
        if (digits.size() >= 12 && Luhn(digits) && InCardRange(digits)) {
          const size_t end = run[b].begin + run[b].size;
          found.push_back(bytes.substr(run[a].begin, end - run[a].begin));
        }
      }
    }
  }
  return found;
}

std::string Grouped(const std::string& digits, char separator) {
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && i % 4 == 0) out.push_back(separator);
    out.push_back(digits[i]);
  }
  return out;
}

// Hands out a different card number on every call, across the networks.
class Planter {
 public:
  std::string Plain() {
    static const std::pair<const char*, size_t> kKinds[] = {
        {"4", 16},    {"51", 16}, {"37", 15}, {"6011", 16},
        {"2221", 16}, {"65", 16}, {"4", 19},  {"644", 16}};
    const auto& [prefix, length] = kKinds[next_ % std::size(kKinds)];
    std::string body = prefix;
    const std::string serial = std::to_string(100 + next_++);
    while (body.size() + serial.size() < length - 1) body.push_back('9');
    body += serial;
    const int sum = LuhnSum(body, true);
    std::string card = body + static_cast<char>('0' + (10 - sum % 10) % 10);
    planted_.push_back(card);
    return card;
  }
  std::string Spaced() { return Grouped(Plain(), ' '); }
  std::string Dashed() { return Grouped(Plain(), '-'); }
  const std::vector<std::string>& planted() const { return planted_; }

 private:
  int next_ = 0;
  std::vector<std::string> planted_;
};

// The masking policy: first 6 and last 4 digits kept.
std::string Masked(const std::string& digits) {
  std::string out = digits;
  for (size_t i = 6; i + 4 < out.size(); ++i) out[i] = '*';
  return out;
}

// The run id of an input: the first 16 hex digits of its SHA-256.
std::string RunIdOf(const std::string& content) {
  Sha256 sha;
  sha.Update(content.data(), content.size());
  StatusOr<std::string> hex = sha.FinishHex();
  return hex.ok() ? hex->substr(0, 16) : "";
}

// A valid 23-digit ARN (Luhn over all 23).
std::string Arn(int n) {
  std::string body = "7456789012345678901" + std::to_string(1000 + n);
  body.resize(22, '0');
  const int sum = LuhnSum(body, true);
  return body + static_cast<char>('0' + (10 - sum % 10) % 10);
}

// --- The program under test -------------------------------------------------

// Waits until `finished` runs have ended (succeeded, failed or rejected).
bool WaitForRuns(const std::string& state_db, int finished, int timeout_ms) {
  std::string last;
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    auto store = SqliteRunStore::Open(state_db, Env::Default());
    if (store.ok()) {
      int64_t n = 0;
      for (const std::string state : {"succeeded", "failed", "rejected"}) {
        StatusOr<int64_t> c = (*store)->Count({.state = state});
        if (c.ok()) {
          n += *c;
        } else {
          last = c.status().ToString();
        }
      }
      if (n >= finished) return true;
    } else {
      last = store.status().ToString();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "runs not finished; last error: " << last;
  return false;
}

// A port nothing listens on now (bound to 0 and released).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

void DropIntoInbox(const std::string& inbox, const std::string& name,
                   const std::string& content) {
  fs::create_directories(inbox);
  WriteFile(inbox + "/." + name, content);
  fs::rename(inbox + "/." + name, inbox + "/" + name);
}

std::string FileDestinations(const std::string& out_dir) {
  std::string c;
  for (const char* net : {"visa", "mastercard", "amex", "discover"}) {
    c += std::string("\n[[destination]]\nname = \"") + net +
         "\"\nnetworks = [\"" + net + "\"]\nurl = \"file://" + out_dir + "/" +
         net + "\"\n";
  }
  return c;
}

constexpr const char* kNow = "CBPIPE_NOW=2025-06-01T00:00:00Z";

class PanLeakTest : public ::testing::Test {
 protected:
  // One scanned text: where it came from and what it held.
  void Scan(const std::string& where, const std::string& bytes) {
    ++scanned_;
    for (const std::string& card : FindCards(bytes)) {
      ADD_FAILURE() << "card number \"" << card << "\" in " << where;
    }
    for (const std::string& card : planter_.planted()) {
      for (const std::string& form :
           {card, Grouped(card, ' '), Grouped(card, '-')}) {
        if (bytes.find(form) != std::string::npos)
          ADD_FAILURE() << "planted card number " << form << " in " << where;
      }
    }
  }

  // Every file under `root`: its path and, unless it is a stored copy of
  // an input, its bytes.
  void ScanTree(const std::string& root) {
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      const std::string rel = fs::relative(e.path(), dir_->path()).string();
      if (rel == "in" || rel.rfind("in/", 0) == 0) continue;  // the test's
      Scan("the file name " + rel, rel);
      if (!e.is_regular_file()) continue;
      const std::string bytes = ReadFile(e.path().string());
      if (inputs_.count(bytes) != 0) {
        ++kept_copies_;
        continue;
      }
      Scan(rel, bytes);
    }
  }

  // A row of the CSV input: the valid record, with `changes` applied.
  std::string Row(std::map<std::string, std::string> changes) {
    std::map<std::string, std::string> r = {
        {"Dispute Ref", "CB" + std::to_string(++rows_)},
        {"network", "visa"},
        {"arn", Arn(rows_)},
        {"pan", "411111******1111"},
        {"merchant_id", "M-77"},
        {"merchant_name", "Corner Shop"},
        {"Txn Ref", "T" + std::to_string(rows_)},
        {"transaction_date", "2025-01-10"},
        {"chargeback_date", "2025-02-01"},
        {"amount", "10.00"},
        {"currency", "USD"},
        {"reason_code", "10.4"},
        {"status", "open"},
        {"reason_text", "customer disputes"}};
    for (auto& [k, v] : changes) r[k] = v;
    std::string line;
    for (const std::string& column : kColumns) {
      if (!line.empty()) line += ",";
      line += "\"" + r[column] + "\"";
    }
    return line + "\n";
  }

  static inline const std::vector<std::string> kColumns = {
      "Dispute Ref",     "network",       "arn",      "pan",
      "merchant_id",     "merchant_name", "Txn Ref",  "transaction_date",
      "chargeback_date", "amount",        "currency", "reason_code",
      "status",          "reason_text"};

  std::unique_ptr<TempDir> dir_;
  Planter planter_;
  std::set<std::string> inputs_;  // the bytes of every input
  int rows_ = 0;
  int scanned_ = 0;
  int kept_copies_ = 0;
};

TEST_F(PanLeakTest, NoCardNumberInAnythingTheProgramWrites) {
  dir_ = std::make_unique<TempDir>("pan_leak");
  Planter& p = planter_;

  // 1. A CSV input with a card number in every field and form.
  std::string csv;
  for (size_t i = 0; i < kColumns.size(); ++i)
    csv += (i ? "," : "") + kColumns[i];
  csv += "\n";
  csv += Row({});  // valid, delivered
  csv += Row({{"network", "amex"}, {"arn", ""}, {"reason_code", "A01"}});
  // The pan field itself: masked by the mask policy, in every form.
  csv += Row({{"pan", p.Plain()}, {"network", ""}});
  csv += Row({{"pan", p.Spaced()}});
  csv += Row({{"pan", p.Dashed()}});
  // Free text: masked, the record delivered.
  csv += Row({{"merchant_name", "Shop " + p.Plain()}});
  csv += Row({{"merchant_name", p.Spaced() + " store"}});
  csv += Row({{"reason_text", "card " + p.Dashed() + " used"}});
  csv += Row({{"reason_text", p.Spaced()}});
  // Identifier fields (one custom-mapped): rejected with PAN_IN_FIELD.
  const std::string id_card = p.Plain();
  csv += Row({{"Dispute Ref", id_card}});
  csv += Row({{"Dispute Ref", p.Spaced()}});
  csv += Row({{"Dispute Ref", "REF-" + p.Dashed()}});
  csv += Row({{"merchant_id", p.Plain()}});
  csv += Row({{"merchant_id", p.Dashed()}});
  csv += Row({{"Txn Ref", p.Plain()}});
  csv += Row({{"Txn Ref", p.Spaced()}});
  csv += Row({{"status", p.Plain()}});
  // Fields with a format: their error messages echo the value.
  csv += Row({{"network", "amex"}, {"arn", p.Plain()}, {"reason_code", "A01"}});
  csv += Row({{"arn", p.Spaced()}});
  csv += Row({{"network", p.Plain()}});
  csv += Row({{"amount", p.Plain()}});
  csv += Row({{"currency", p.Dashed()}});
  csv += Row({{"reason_code", p.Plain()}});
  csv += Row({{"transaction_date", p.Spaced()}});
  csv += Row({{"chargeback_date", p.Plain()}});
  // The same card number as case id twice: DUPLICATE_CASE echoes it.
  const std::string twice = p.Plain();
  csv += Row({{"Dispute Ref", twice}});
  csv += Row({{"Dispute Ref", twice}});
  // Malformed rows: a card number alone, and as an extra cell.
  csv += p.Plain() + "\n";
  csv += "\"" + p.Spaced() + "\"\n";
  std::string extra_cell = Row({});
  extra_cell.pop_back();
  csv += extra_cell + "," + p.Plain() + "\n";

  // 2. JSON Lines: card numbers as keys (one duplicated) and values.
  const std::string key1 = p.Plain(), key2 = p.Spaced(), key3 = p.Plain();
  auto json_record = [&](const std::string& extra) {
    const int n = ++rows_;
    return "{\"Dispute Ref\":\"J" + std::to_string(n) +
           "\",\"network\":\"visa\",\"arn\":\"" + Arn(n) +
           "\",\"merchant_id\":\"M-1\",\"transaction_date\":\"2025-01-10\","
           "\"chargeback_date\":\"2025-02-01\",\"amount\":\"5.00\","
           "\"currency\":\"EUR\",\"reason_code\":\"13.1\"" +
           extra + "}\n";
  };
  std::string jsonl;
  jsonl += json_record("");
  jsonl += json_record(",\"" + key1 + "\":1,\"" + key1 + "\":2");
  jsonl += json_record(",\"" + key2 + "\":\"a\",\"" + key2 + "\":\"b\"");
  jsonl += json_record(",\"" + key3 + "\":\"unknown key, ignored\"");
  jsonl += json_record(",\"Txn Ref\":" + p.Plain());  // a JSON number
  jsonl += json_record(",\"merchant_name\":\"" + p.Dashed() + "\"");
  jsonl += "{\"Dispute Ref\":\"" + p.Plain() + "\",\"network\":\"visa\"}\n";
  jsonl += "[\"" + p.Plain() + "\"]\n";  // not an object

  // 3. An unreadable input (quarantined).
  const std::string binary = std::string("Dispute Ref\n\0\0\0", 15);

  const std::string csv_card = p.Plain();
  const std::string csv_name = Grouped(csv_card, '-') + ".csv";
  const std::string jsonl_name = p.Plain() + ".jsonl";
  const std::string binary_name = p.Spaced() + ".csv";
  inputs_ = {csv, jsonl, binary};
  fs::create_directories(*dir_ / "in");
  WriteFile(*dir_ / ("in/" + csv_name), csv);
  WriteFile(*dir_ / ("in/" + jsonl_name), jsonl);
  WriteFile(*dir_ / ("in/" + binary_name), binary);
  const std::string in_args = ShellQuote(*dir_ / ("in/" + csv_name)) + " " +
                              ShellQuote(*dir_ / ("in/" + jsonl_name)) + " " +
                              ShellQuote(*dir_ / ("in/" + binary_name));

  const std::string fields =
      "\n[input.fields]\ncase_id = \"Dispute Ref\"\n"
      "transaction_id = \"Txn Ref\"\n";

  // 4. validate, human and JSON.
  const std::string validate_toml = *dir_ / "validate.toml";
  WriteFile(validate_toml,
            "[output]\nwork_dir = \"" + *dir_ / "vwork" + "\"\n" + fields);
  CliResult human = RunCli("validate --max-errors 1000 --config " +
                               ShellQuote(validate_toml) + " " + in_args,
                           kNow);
  EXPECT_NE(human.exit_code, 0);
  EXPECT_NE(human.out.find("PAN_IN_FIELD"), std::string::npos) << human.out;
  Scan("validate stdout", human.out);
  Scan("validate stderr", human.err);
  CliResult json = RunCli(
      "validate --json --config " + ShellQuote(validate_toml) + " " + in_args,
      kNow);
  EXPECT_NE(json.out.find("\"PAN_IN_FIELD\""), std::string::npos) << json.out;
  Scan("validate --json stdout", json.out);
  Scan("validate --json stderr", json.err);

  // 5. run, to local folders, human and JSON.
  const std::string run_toml = *dir_ / "run.toml";
  WriteFile(run_toml, "[output]\nwork_dir = \"" + *dir_ / "rwork" + "\"\n" +
                          fields + FileDestinations(*dir_ / "rout"));
  CliResult run =
      RunCli("run --config " + ShellQuote(run_toml) + " " + in_args, kNow);
  Scan("run stdout", run.out);
  Scan("run stderr", run.err);
  EXPECT_NE(run.out.find("rejects"), std::string::npos) << run.out << run.err;
  CliResult run_json = RunCli(
      "run --json --config " + ShellQuote(run_toml) + " " + in_args, kNow);
  Scan("run --json stdout", run_json.out);
  Scan("run --json stderr", run_json.err);

  // 6. serve, with the webhook and log notifiers and the admin API.
  HttpReceiver webhook;
  ASSERT_TRUE(webhook.Start());
  const int admin_port = FreePort();
  ASSERT_GT(admin_port, 0);
  const std::string serve_toml = *dir_ / "serve.toml";
  const std::string log = *dir_ / "serve.log";
  WriteFile(serve_toml,
            "[output]\nwork_dir = \"" + *dir_ / "swork" + "\"\n" + fields +
                "\n[service]\nsettle_ms = 50\npoll_interval_ms = 50\n"
                "workers = 2\nadmin_listen = \"127.0.0.1:" +
                std::to_string(admin_port) + "\"\nlog_file = \"" + log +
                "\"\nlog_level = \"debug\"\n"
                "\n[[notify.webhook]]\nurl = \"http://127.0.0.1:" +
                std::to_string(webhook.port()) +
                "/hook\"\nsecret = \"env:CBPIPE_TEST_WEBHOOK_SECRET\"\n" +
                FileDestinations(*dir_ / "sout"));
  {
    ServeProcess serve(serve_toml, *dir_ / "serve.out",
                       {"CBPIPE_TEST_WEBHOOK_SECRET=whsec-test"});
    DropIntoInbox(*dir_ / "swork/inbox", csv_name, csv);
    DropIntoInbox(*dir_ / "swork/inbox", jsonl_name, jsonl);
    DropIntoInbox(*dir_ / "swork/inbox", binary_name, binary);
    ASSERT_TRUE(WaitForRuns(*dir_ / "swork/state.db", 3, 60000))
        << ReadFile(log) << ReadFile(*dir_ / "serve.out");
    ASSERT_TRUE(webhook.WaitForRequests(3, std::chrono::seconds(20)))
        << ReadFile(log);

    httplib::Client api("127.0.0.1", admin_port);
    auto runs = api.Get("/api/runs");
    ASSERT_TRUE(runs) << "admin API not answering";
    EXPECT_EQ(runs->status, 200);
    Scan("GET /api/runs", runs->body);
    // Masked, not dropped: the run is still findable by its file name.
    EXPECT_NE(runs->body.find(Grouped(Masked(csv_card), '-') + ".csv"),
              std::string::npos)
        << runs->body;
    const auto listed = nlohmann::json::parse(runs->body, nullptr, false);
    ASSERT_TRUE(listed.is_object()) << runs->body;
    int runs_seen = 0;
    for (const auto& r : listed.value("runs", nlohmann::json::array())) {
      const std::string id = r.value("run_id", "");
      for (const std::string& path :
           {"/api/runs/" + id, "/api/deadletters/" + id}) {
        auto one = api.Get(path);
        ASSERT_TRUE(one);
        Scan("GET " + path, one->body);
      }
      ++runs_seen;
    }
    EXPECT_EQ(runs_seen, 3) << runs->body;
    for (const char* path : {"/api/runs?state=rejected", "/api/deadletters",
                             "/metrics", "/healthz", "/readyz"}) {
      auto r = api.Get(path);
      ASSERT_TRUE(r) << path;
      Scan(std::string("GET ") + path, r->body);
    }
    for (const std::string args :
         {"runs list", "runs list --json", "runs list --state rejected",
          "dlq list", "dlq list --json"}) {
      CliResult r = RunCli(args + " --config " + ShellQuote(serve_toml));
      EXPECT_EQ(r.exit_code, 0) << args << r.out << r.err;
      Scan("cbpipe " + args + " stdout", r.out);
      Scan("cbpipe " + args + " stderr", r.err);
    }
    ASSERT_TRUE(serve.Stop(15000));
  }
  for (const RecordedRequest& r : webhook.requests()) {
    Scan("a webhook body", r.body);
    for (const auto& [name, value] : r.headers)
      Scan("webhook header " + name, value);
  }
  const std::string log_text = ReadFile(log);
  // The notifications are in the log as JSON objects, not strings.
  EXPECT_NE(log_text.find("\"notification\":{\"schema\":\"cbpipe.event.v1\""),
            std::string::npos)
      << log_text;

  // 7. Every byte written under the test folder: work folders, outputs,
  //    logs, databases with their WAL files, and every file name.
  ScanTree(dir_->path());
  EXPECT_GT(scanned_, 50);
  EXPECT_GT(kept_copies_, 0);  // the archive holds the originals
  EXPECT_GE(planter_.planted().size(), 30u);

  // 8. Files that hold record data are as private as the batches (0640).
  for (const std::string& rel :
       {std::string("swork/state.db"), std::string("swork/ledger.db"),
        std::string("rwork/ledger.db")}) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      struct stat st;
      const std::string path = *dir_ / (rel + suffix);
      if (::stat(path.c_str(), &st) != 0) continue;
      EXPECT_EQ(st.st_mode & 0137, 0u)
          << path << " mode " << std::oct << (st.st_mode & 0777);
    }
  }
  int rejects_files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_->path())) {
    // The stored copies of inputs (object store, quarantine) hold card
    // data as it arrived: as private too.
    const std::string rel = fs::relative(e.path(), dir_->path()).string();
    if (e.is_regular_file() &&
        (rel.rfind("swork/objects/", 0) == 0 ||
         (rel.find("/quarantine/") != std::string::npos &&
          e.path().filename() != "reason.txt"))) {
      struct stat st;
      ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0137, 0u)
          << rel << " mode " << std::oct << (st.st_mode & 0777);
    }
    if (e.path().filename() != "rejects.csv") continue;
    ++rejects_files;
    struct stat st;
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0137, 0u)
        << e.path() << " mode " << std::oct << (st.st_mode & 0777);
  }
  EXPECT_GE(rejects_files, 2);
  // The rejected case id is in the report, masked.
  const std::string rejects =
      ReadFile(*dir_ / "rwork/runs/" + RunIdOf(csv) + "/rejects.csv");
  EXPECT_NE(rejects.find("\"" + Masked(id_card) + "\",case_id,PAN_IN_FIELD"),
            std::string::npos)
      << rejects;
}

// Run ids are the first 16 hex digits of the input's SHA-256; this input is
// chosen so that they are all digits and form a Luhn-valid Visa number. The
// program wrote them, so the log keeps them as they are.
TEST_F(PanLeakTest, AllDigitIdsStayIntactInTheLog) {
  dir_ = std::make_unique<TempDir>("pan_digit_ids");
  std::string input, run_id;
  for (int n = 0;; ++n) {
    input =
        "case_id,network,arn,merchant_id,transaction_date,chargeback_date,"
        "amount,currency,reason_code\nCB" +
        std::to_string(n) + ",visa," + Arn(1) +
        ",M1,2025-01-10,2025-02-01,10.00,USD,10.4\n";
    Sha256 sha;
    sha.Update(input.data(), input.size());
    StatusOr<std::string> hex = sha.FinishHex();
    ASSERT_TRUE(hex.ok());
    run_id = hex->substr(0, 16);
    if (run_id.find_first_not_of("0123456789") == std::string::npos &&
        Luhn(run_id) && InCardRange(run_id))
      break;
    ASSERT_LT(n, 20000000);
  }
  HttpReceiver webhook;
  ASSERT_TRUE(webhook.Start());
  const std::string serve_toml = *dir_ / "serve.toml";
  const std::string log = *dir_ / "serve.log";
  WriteFile(serve_toml,
            "[output]\nwork_dir = \"" + *dir_ / "work" +
                "\"\n\n[service]\nsettle_ms = 50\npoll_interval_ms = 50\n"
                "admin_listen = \"\"\nlog_file = \"" +
                log + "\"\n\n[[notify.webhook]]\nurl = \"http://127.0.0.1:" +
                std::to_string(webhook.port()) +
                "/hook\"\nsecret = \"env:CBPIPE_TEST_WEBHOOK_SECRET\"\n" +
                FileDestinations(*dir_ / "out"));
  {
    ServeProcess serve(serve_toml, *dir_ / "serve.out",
                       {"CBPIPE_TEST_WEBHOOK_SECRET=whsec-test", kNow});
    DropIntoInbox(*dir_ / "work/inbox", "in.csv", input);
    ASSERT_TRUE(WaitForRuns(*dir_ / "work/state.db", 1, 60000))
        << ReadFile(log);
    ASSERT_TRUE(webhook.WaitForRequests(1, std::chrono::seconds(20)));
    ASSERT_TRUE(serve.Stop(15000));
  }
  const std::string text = ReadFile(log);
  EXPECT_NE(text.find("\"run_id\":\"" + run_id + "\""), std::string::npos)
      << text;
  EXPECT_NE(text.find("\"batch_id\":\"" + run_id + "-b001\""),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find(run_id.substr(0, 6) + "******"), std::string::npos)
      << text;
  // Timestamps are numbers, written in full.
  EXPECT_NE(text.find("\"time_ms\":1"), std::string::npos) << text;
  EXPECT_EQ(text.find("***"), std::string::npos) << text;
  for (const RecordedRequest& r : webhook.requests())
    EXPECT_NE(r.body.find(run_id), std::string::npos) << r.body;
}

}  // namespace
}  // namespace cbpipe::testing
