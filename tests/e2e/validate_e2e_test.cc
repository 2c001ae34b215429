// End-to-end tests of `cbpipe validate`: the binary, real files, its output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "e2e/cli.h"

namespace cbpipe::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Fixed clock: 2025-06-01T12:00:00Z.
const std::string kNow = "CBPIPE_NOW=1748779200";

const std::string kHeader =
    "case_id,network,arn,pan,merchant_id,transaction_date,chargeback_date,"
    "amount,currency,reason_code,stage,mcc\n";
// Luhn-valid ARNs.
const std::string kArn1 = "74567890123456789012341";
const std::string kArn2 = "00000000000000000000018";

std::string Row(const std::string& case_id, const std::string& network,
                const std::string& arn, const std::string& pan,
                const std::string& amount = "12.50",
                const std::string& currency = "USD",
                const std::string& reason = "10.4",
                const std::string& txn = "2025-03-01",
                const std::string& cb = "2025-04-01",
                const std::string& extra = ",first_chargeback,5411") {
  return case_id + "," + network + "," + arn + "," + pan + ",M1," + txn +
         "," + cb + "," + amount + "," + currency + "," + reason + extra +
         "\n";
}

nlohmann::json Validate(const std::string& file, int* exit_code,
                        const std::string& extra = "") {
  CliResult r = RunCli("validate --json " + extra + " " + ShellQuote(file),
                       kNow);
  *exit_code = r.exit_code;
  return nlohmann::json::parse(r.out, nullptr, false);
}

TEST(ValidateE2E, ValidFileExitsZero) {
  TempDir dir("validate_ok");
  WriteFile(dir / "in.csv",
            kHeader + Row("A1", "VISA", kArn1, "411111******1111") +
                Row("A2", "MC", kArn2, "555555******4444", "9.99", "EUR",
                    "4853") +
                Row("A3", "AX", "", "", "1000", "JPY", "C08") +
                Row("A4", "DISCOVER", "", "6011********0004", "1.234", "KWD",
                    "UA02"));
  int rc = 0;
  nlohmann::json doc = Validate(dir / "in.csv", &rc);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(doc["ok"]);
  const auto& in = doc["inputs"][0];
  EXPECT_EQ(in["format"], "csv");
  EXPECT_EQ(in["records"], 4);
  EXPECT_EQ(in["accepted"], 4);
  EXPECT_EQ(in["rejected"], 0);
  EXPECT_EQ(in["by_network"]["visa"], 1);
  EXPECT_EQ(in["by_network"]["mastercard"], 1);
  EXPECT_EQ(in["by_network"]["amex"], 1);
  EXPECT_EQ(in["by_network"]["discover"], 1);
  EXPECT_TRUE(in["input_error"].is_null());
}

TEST(ValidateE2E, EveryErrorCodeWithPositionAndCaseId) {
  TempDir dir("validate_codes");
  std::string bad_arn = kArn1;
  bad_arn.back() = '5';
  std::string text = kHeader;
  text += Row("E1", "VISA", kArn1, "411111******1111", "12.50", "USD", "10.4",
              "2025-03-01", "2025-04-01", ",first_chargeback,5411,extra");
  text += Row("E2", "VISA", kArn1, "411111******1111", "12.50", "", "10.4");
  text += Row("E3", "JCB", kArn1, "");
  text += Row("E4", "VISA", bad_arn, "411111******1111");
  text += Row("E5", "VISA", "1234", "411111******1111");
  text += Row("E6", "VISA", kArn1, "411111******1111", "12.50", "USD", "99");
  text += Row("E7", "VISA", kArn1, "411111******1111", "12.50", "XXY");
  text += Row("E8", "VISA", kArn1, "411111******1111", "1e3");
  text += Row("E9", "VISA", kArn1, "411111******1111", "12.345");
  text += Row("E10", "VISA", kArn1, "411111******1111", "1", "USD", "10.4",
              "2025-02-30");
  text += Row("E11", "VISA", kArn1, "411111******1111", "1", "USD", "10.4",
              "2025-03-01", "2025-02-01");
  text += Row("E12", "VISA", kArn1, "411111******1111", "1", "USD", "10.4",
              "2025-03-01", "2025-06-01T13:00:00Z");
  text += Row("E1", "VISA", kArn1, "411111******1111");
  text += Row("E14", "MC", kArn2, "411111******1111", "1", "USD", "4853");
  WriteFile(dir / "in.csv", text);
  // A sensitive column in JSON Lines.
  WriteFile(dir / "in.jsonl",
            R"({"case_id":"S1","network":"visa","arn":")" + kArn1 +
                R"(","merchant_id":"M","transaction_date":"2025-03-01",)"
                R"("chargeback_date":"2025-04-01","amount":12.5,)"
                R"("currency":"USD","reason_code":"10.4","cvv2":"737",)"
                R"("track2":";4111111111111111=2512"})"
                "\n");
  int rc = 0;
  nlohmann::json doc = Validate(dir / "in.csv", &rc);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(rc, 1);
  EXPECT_FALSE(doc["ok"]);
  const auto& in = doc["inputs"][0];
  EXPECT_EQ(in["records"], 14);
  EXPECT_EQ(in["accepted"], 0);
  std::map<std::string, std::pair<int, std::string>> first;  // code -> pos
  for (const auto& e : in["errors"]) {
    first.emplace(e["code"].get<std::string>(),
                  std::make_pair(e["position"].get<int>(),
                                 e["case_id"].get<std::string>()));
    EXPECT_FALSE(e["message"].get<std::string>().empty());
    EXPECT_FALSE(e["field"].get<std::string>().empty());
  }
  EXPECT_EQ(first["BAD_FORMAT"], std::make_pair(2, std::string("E1")));
  EXPECT_EQ(first["MISSING_FIELD"], std::make_pair(3, std::string("E2")));
  EXPECT_EQ(first["NETWORK_UNKNOWN"], std::make_pair(4, std::string("E3")));
  EXPECT_EQ(first["ARN_CHECK_DIGIT"], std::make_pair(5, std::string("E4")));
  EXPECT_EQ(first["ARN_FORMAT"], std::make_pair(6, std::string("E5")));
  EXPECT_EQ(first["UNKNOWN_REASON_CODE"],
            std::make_pair(7, std::string("E6")));
  EXPECT_EQ(first["CURRENCY_UNKNOWN"], std::make_pair(8, std::string("E7")));
  EXPECT_EQ(first["AMOUNT_INVALID"], std::make_pair(9, std::string("E8")));
  EXPECT_EQ(first["AMOUNT_PRECISION"], std::make_pair(10, std::string("E9")));
  EXPECT_EQ(first["DATE_INVALID"], std::make_pair(11, std::string("E10")));
  EXPECT_EQ(first["DATE_ORDER"], std::make_pair(12, std::string("E11")));
  EXPECT_EQ(first["DATE_FUTURE"], std::make_pair(13, std::string("E12")));
  EXPECT_EQ(first["DUPLICATE_CASE"], std::make_pair(14, std::string("E1")));
  EXPECT_EQ(first["NETWORK_MISMATCH"], std::make_pair(15, std::string("E14")));

  doc = Validate(dir / "in.jsonl", &rc);
  EXPECT_EQ(rc, 1);
  const auto& j = doc["inputs"][0];
  EXPECT_EQ(j["format"], "jsonl");
  ASSERT_EQ(j["errors"].size(), 2u);
  std::set<std::string> fields;
  for (const auto& e : j["errors"]) {
    EXPECT_EQ(e["code"], "SENSITIVE_DATA");
    EXPECT_EQ(e["position"], 1);
    fields.insert(e["field"].get<std::string>());
  }
  EXPECT_EQ(fields, (std::set<std::string>{"cvv2", "track2"}));
  EXPECT_THAT(doc.dump(), Not(HasSubstr("737")));
  EXPECT_THAT(doc.dump(), Not(HasSubstr("4111111111111111")));
}

TEST(ValidateE2E, FullPanIsNeverPrinted) {
  TempDir dir("validate_pan");
  WriteFile(dir / "in.csv",
            kHeader + Row("P1", "VISA", kArn1, "4111111111111111") +
                Row("P2", "VISA", kArn1, "4111111111111111", "bad"));
  CliResult human = RunCli("validate " + ShellQuote(dir / "in.csv"), kNow);
  CliResult json =
      RunCli("validate --json " + ShellQuote(dir / "in.csv"), kNow);
  EXPECT_EQ(human.exit_code, 1);
  for (const std::string& out : {human.out, human.err, json.out, json.err})
    EXPECT_THAT(out, Not(HasSubstr("4111111111111111")));

  WriteFile(dir / "strict.toml", "[input]\npan_policy = \"reject\"\n");
  int rc = 0;
  nlohmann::json doc = Validate(
      dir / "in.csv", &rc, "--config " + ShellQuote(dir / "strict.toml"));
  EXPECT_EQ(doc["inputs"][0]["errors"][0]["code"], "PAN_NOT_MASKED");
  EXPECT_THAT(doc.dump(), Not(HasSubstr("4111111111111111")));
}

TEST(ValidateE2E, JsonArrayAndGzipAndFormatOverride) {
  TempDir dir("validate_formats");
  const std::string rec =
      R"({"dispute_id":"J1","network":"mc","arn":")" + kArn2 +
      R"(","mid":"M","transaction_date":"2025-03-01T10:00:00+02:00",)"
      R"("dispute_date":"2025-04-01","dispute_amount":"10.00",)"
      R"("currency":"GBP","reason_code":"4837"})";
  WriteFile(dir / "a.json", "[" + rec + ",\n" + rec + "]");
  int rc = 0;
  nlohmann::json doc = Validate(dir / "a.json", &rc);
  EXPECT_EQ(doc["inputs"][0]["format"], "json");
  EXPECT_EQ(doc["inputs"][0]["records"], 2);
  EXPECT_EQ(doc["inputs"][0]["errors"][0]["code"], "DUPLICATE_CASE");
  EXPECT_EQ(doc["inputs"][0]["errors"][0]["position"], 1);  // index

  const std::string csv = kHeader + Row("G1", "VISA", kArn1, "");
  gzFile gz = gzopen((dir / "g.csv.gz").c_str(), "wb");
  gzwrite(gz, csv.data(), static_cast<unsigned>(csv.size()));
  gzclose(gz);
  doc = Validate(dir / "g.csv.gz", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(doc["inputs"][0]["accepted"], 1);

  // Forcing JSON Lines on a CSV: every line is a malformed record.
  doc = Validate(dir / "g.csv.gz", &rc, "--format jsonl");
  EXPECT_EQ(doc["inputs"][0]["format"], "jsonl");
  EXPECT_EQ(doc["inputs"][0]["rejected"], 2);
}

TEST(ValidateE2E, UnreadableInputsExitTwoWithAClearReason) {
  TempDir dir("validate_unreadable");
  WriteFile(dir / "empty.csv", "");
  WriteFile(dir / "binary.csv", std::string("case_id\nab\0cd\n", 14));
  WriteFile(dir / "latin1.csv", "case_id\n\xe9t\xe9\n");
  WriteFile(dir / "trunc.gz", std::string("\x1f\x8b\x08\x00\x00\x00", 6));
  WriteFile(dir / "bad.json", "[{\"case_id\": \"x\"}, ");
  for (const std::string name :
       {"empty.csv", "binary.csv", "latin1.csv", "trunc.gz", "bad.json"}) {
    int rc = 0;
    nlohmann::json doc = Validate(dir / name, &rc);
    ASSERT_FALSE(doc.is_discarded()) << name;
    EXPECT_EQ(rc, 2) << name;
    const auto& err = doc["inputs"][0]["input_error"];
    ASSERT_TRUE(err.is_object()) << name;
    EXPECT_FALSE(err["message"].get<std::string>().empty()) << name;
    CliResult human = RunCli("validate " + ShellQuote(dir / name), kNow);
    EXPECT_EQ(human.exit_code, 2);
    EXPECT_THAT(human.out, HasSubstr("UNREADABLE")) << name;
  }
  CliResult missing = RunCli("validate " + ShellQuote(dir / "nope.csv"), kNow);
  EXPECT_EQ(missing.exit_code, 2);
}

TEST(ValidateE2E, UsageAndConfigErrorsExitTwo) {
  TempDir dir("validate_usage");
  EXPECT_EQ(RunCli("validate").exit_code, 2);
  EXPECT_EQ(RunCli("frobnicate x").exit_code, 2);
  EXPECT_EQ(RunCli("validate --format xml x.csv").exit_code, 2);
  WriteFile(dir / "bad.toml", "[input]\nformat = 3\n");
  WriteFile(dir / "in.csv", kHeader);
  CliResult r = RunCli("validate --config " + ShellQuote(dir / "bad.toml") +
                       " " + ShellQuote(dir / "in.csv"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("input.format"));
}

// Every file under `root` (recursively), concatenated.
std::string AllBytesUnder(const std::string& root) {
  std::string all;
  if (!std::filesystem::exists(root)) return all;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.is_regular_file()) all += ReadFile(e.path().string());
  return all;
}

TEST(ValidateE2E, ControlCharactersAreRejectedAndNeverReachTheTerminal) {
  TempDir dir("validate_control");
  const std::string header =
      "case_id,network,arn,merchant_id,transaction_date,chargeback_date,"
      "amount,currency,reason_code,merchant_name,reason_text\n";
  auto row = [&](const std::string& id, const std::string& name,
                 const std::string& text) {
    return id + ",VISA," + kArn1 + ",M1,2025-03-01,2025-04-01,12.50,USD,10.4," +
           name + "," + text + "\n";
  };
  // A file name that is itself an escape sequence.
  const std::string input = dir / "in\x1b[2J.csv";
  WriteFile(
      input,
      header + row("OK1", "Plain Shop", "fine") +
          row("T1", "Shop\x1b]0;pwned\x07", "x") +
          row("T2", "Shop", "clear\x1b[2Jscreen") +
          row("T3", "evil\xE2\x80\xAEtxt.exe", "x") +
          row("T4", "tab\there", "x") + row("C\x1b[31m5", "Shop", "x") +
          row("T6",
              "csi\xC2\x9B"
              "2J",
              "x") +
          row("OK2", "Caf\xC3\xA9 \xE2\x82\xAC", "goods \xE2\x80\x94 ok"));

  CliResult human = RunCli("validate " + ShellQuote(input), kNow);
  EXPECT_EQ(human.exit_code, 1);
  for (const std::string& out : {human.out, human.err}) {
    EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
    EXPECT_EQ(out.find('\x07'), std::string::npos) << out;
    EXPECT_EQ(out.find('\t'), std::string::npos) << out;
    EXPECT_EQ(out.find("\xE2\x80\xAE"), std::string::npos) << out;
    EXPECT_EQ(out.find("\xC2\x9B"), std::string::npos) << out;
  }
  // Shown escaped: the input's name and the case id.
  EXPECT_THAT(human.out, HasSubstr("in\\x1b[2J.csv"));
  EXPECT_THAT(human.out, HasSubstr("case C\\x1b[31m5"));
  EXPECT_THAT(human.out, HasSubstr("8 records, 2 accepted, 6 rejected"));

  int rc = 0;
  nlohmann::json doc = Validate(input, &rc);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(rc, 1);
  std::map<std::string, std::string> field_of_case;
  for (const auto& e : doc["inputs"][0]["errors"]) {
    EXPECT_EQ(e["code"], "CONTROL_CHARACTER") << e.dump();
    field_of_case[e["case_id"].get<std::string>()] =
        e["field"].get<std::string>();
  }
  EXPECT_EQ(field_of_case,
            (std::map<std::string, std::string>{{"T1", "merchant_name"},
                                                {"T2", "reason_text"},
                                                {"T3", "merchant_name"},
                                                {"T4", "merchant_name"},
                                                {"C\x1b[31m5", "case_id"},
                                                {"T6", "merchant_name"}}));

  // run delivers the two clean records and none of the others' bytes.
  CliResult run = RunCli(
      "run --work-dir " + ShellQuote(dir / "w") + " " + ShellQuote(input),
      kNow);
  EXPECT_NE(run.exit_code, 2) << run.out << run.err;
  const std::string delivered = AllBytesUnder(dir / "w/outbox");
  EXPECT_THAT(delivered, HasSubstr("OK1"));
  EXPECT_THAT(delivered, HasSubstr("OK2"));
  EXPECT_EQ(delivered.find('\x1b'), std::string::npos);
  EXPECT_EQ(delivered.find("\xE2\x80\xAE"), std::string::npos);
  EXPECT_EQ(delivered.find("tab\there"), std::string::npos);
}

TEST(ValidateE2E, JsonOutputSurvivesAFileNameThatIsNotUtf8) {
  TempDir dir("validate_name_bytes");
  const std::string input = dir / "bad\xff\xfe.csv";
  WriteFile(input, kHeader + Row("A1", "VISA", kArn1, "411111******1111"));
  int rc = -1;
  nlohmann::json doc = Validate(input, &rc);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(doc["inputs"][0]["accepted"], 1);
  CliResult human = RunCli("validate " + ShellQuote(input), kNow);
  EXPECT_EQ(human.exit_code, 0);
  EXPECT_THAT(human.out, HasSubstr("bad\\xff\\xfe.csv"));
}

// `cbpipe run` prints names and messages from inputs and servers escaped,
// as validate does: an ESC in a file name cannot reach the terminal.
TEST(ValidateE2E, RunOutputEscapesControlCharactersInNames) {
  TempDir dir("run_name_escape");
  const std::string input = dir / "x\x1b]0;pwned\x07\x1b[2J.csv";
  WriteFile(input, kHeader + Row("A1", "VISA", kArn1, "411111******1111"));
  CliResult run = RunCli("run --work-dir " + ShellQuote(dir / "w") + " " +
                             ShellQuote(input),
                         kNow);
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(run.out.find('\x1b'), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find('\x07'), std::string::npos) << run.out;
  EXPECT_THAT(run.out, HasSubstr("x\\x1b]0;pwned\\x07\\x1b[2J.csv"));
}

TEST(ValidateE2E, GeneratedSampleHasTheExactInvalidShare) {
  TempDir dir("validate_sample");
  for (const std::string format : {"csv", "jsonl"}) {
    const std::string file = dir / ("s." + format);
    CliResult gen = RunCli("gen-sample --records 5000 --invalid-ratio 0.04 "
                           "--seed 11 --format " + format + " --output " +
                           ShellQuote(file),
                       kNow);
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    int rc = 0;
    nlohmann::json doc = Validate(file, &rc);
    EXPECT_EQ(rc, 1);
    EXPECT_EQ(doc["inputs"][0]["records"], 5000) << format;
    EXPECT_EQ(doc["inputs"][0]["rejected"], 200) << format;
    EXPECT_EQ(doc["inputs"][0]["accepted"], 4800) << format;
  }
}

}  // namespace
}  // namespace cbpipe::testing
