#include "telemetry/log.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cbpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using Json = nlohmann::json;

// 2024-05-01T12:00:00.123Z
std::chrono::system_clock::time_point FixedTime() {
  return std::chrono::system_clock::time_point(
      std::chrono::milliseconds(1714564800123));
}

Json Parse(const std::string& line) {
  Json json = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(json.is_discarded()) << line;
  return json;
}

class LogTest : public ::testing::Test {
 protected:
  std::shared_ptr<MemoryLogSink> sink_ = std::make_shared<MemoryLogSink>();
  Logger logger_{sink_, LogLevel::kDebug, FixedTime};

  std::string OnlyLine() {
    std::vector<std::string> lines = sink_->Lines();
    EXPECT_EQ(lines.size(), 1u);
    return lines.empty() ? "" : lines.back();
  }
};

TEST_F(LogTest, GoldenLineWithContextAndFields) {
  LogContext context{.run_id = "r1",
                     .batch_id = "r1-b001",
                     .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                     .destination = "visa"};
  logger_.Info(context, "delivery.done", "delivered",
               {{"files", 2},
                {"bytes", uint64_t{1024}},
                {"ok", true},
                {"name", "a.csv"},
                {"delta", -5}});
  EXPECT_EQ(OnlyLine(),
            R"({"time":"2024-05-01T12:00:00.123Z","level":"info",)"
            R"("event":"delivery.done","msg":"delivered","run_id":"r1",)"
            R"("batch_id":"r1-b001",)"
            R"("trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",)"
            R"("destination":"visa","files":2,"bytes":1024,"ok":true,)"
            R"("name":"a.csv","delta":-5})");
}

TEST_F(LogTest, EmptyContextFieldsAreLeftOut) {
  logger_.Warn("service.started", "up");
  EXPECT_EQ(OnlyLine(), R"({"time":"2024-05-01T12:00:00.123Z","level":"warn",)"
                        R"("event":"service.started","msg":"up"})");
  sink_->Clear();
  logger_.Error(LogContext{}.WithDestination("amex"), "delivery.failed", "x");
  Json json = Parse(OnlyLine());
  EXPECT_EQ(json["destination"], "amex");
  EXPECT_FALSE(json.contains("run_id"));
  EXPECT_FALSE(json.contains("batch_id"));
}

TEST_F(LogTest, ContextHelpersCopy) {
  LogContext run{.run_id = "r", .trace_id = "t"};
  LogContext batch = run.WithBatch("r-b001");
  LogContext dest = batch.WithDestination("visa");
  EXPECT_EQ(run.batch_id, "");
  EXPECT_EQ(dest.run_id, "r");
  EXPECT_EQ(dest.trace_id, "t");
  EXPECT_EQ(dest.batch_id, "r-b001");
  EXPECT_EQ(dest.destination, "visa");
}

TEST_F(LogTest, RealClockIsRfc3339UtcWithMilliseconds) {
  Logger logger(sink_);
  logger.Info("a.b", "c");
  Json json = Parse(OnlyLine());
  EXPECT_THAT(json["time"].get<std::string>(),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                           "[0-9]{2}\\.[0-9]{3}Z"));
}

TEST_F(LogTest, LevelsFilter) {
  Logger logger(sink_, LogLevel::kWarn, FixedTime);
  EXPECT_FALSE(logger.Enabled(LogLevel::kInfo));
  EXPECT_TRUE(logger.Enabled(LogLevel::kError));
  logger.Debug("e.debug", "");
  logger.Info("e.info", "");
  logger.Warn("e.warn", "");
  logger.Error("e.error", "");
  logger.SetMinLevel(LogLevel::kDebug);
  logger.Debug("e.debug", "");
  std::vector<std::string> levels;
  for (const std::string& line : sink_->Lines()) {
    levels.push_back(Parse(line)["level"].get<std::string>());
  }
  EXPECT_THAT(levels, testing::ElementsAre("warn", "error", "debug"));
}

TEST(LogLevelTest, ParseAndName) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("INFO"), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarn);
  EXPECT_EQ(*ParseLogLevel("Warn"), LogLevel::kWarn);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("verbose").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(LogLevelName(LogLevel::kWarn), "warn");
}

TEST_F(LogTest, EscapesAndKeepsEveryLineValidJson) {
  std::string msg = "q\" b\\ n\n t\t c\x01 bad\xff\xc0 ok\xc3\xa9 \xe2\x82\xac";
  logger_.Info("odd.text", msg, {{"k\"ey", "v\nw"}});
  std::string line = OnlyLine();
  EXPECT_THAT(line, Not(HasSubstr("\n")));
  Json json = Parse(line);
  EXPECT_EQ(json["msg"],
            "q\" b\\ n\n t\t c\x01 bad\xef\xbf\xbd\xef\xbf\xbd ok\xc3\xa9 "
            "\xe2\x82\xac");
  EXPECT_EQ(json["k\"ey"], "v\nw");
}

TEST_F(LogTest, FixedFieldNamesAreNotOverwritten) {
  logger_.Info("a.b", "m", {{"level", "x"}, {"msg", 1}});
  Json json = Parse(OnlyLine());
  EXPECT_EQ(json["level"], "info");
  EXPECT_EQ(json["msg"], "m");
  EXPECT_EQ(json["_level"], "x");
  EXPECT_EQ(json["_msg"], 1);
}

TEST_F(LogTest, IntegerLimits) {
  logger_.Info("a.b", "m",
               {{"min", INT64_MIN}, {"max", UINT64_MAX}, {"zero", 0}});
  Json json = Parse(OnlyLine());
  EXPECT_EQ(json["min"].get<int64_t>(), INT64_MIN);
  EXPECT_EQ(json["max"].get<uint64_t>(), UINT64_MAX);
  EXPECT_EQ(json["zero"], 0);
}

// --- PAN and secret redaction ------------------------------------------------

TEST_F(LogTest, FreeTextIsMaskedInEveryForm) {
  logger_.Error({}, "record.rejected",
                "bad record with pan 4111 1111 1111 1111",
                {{"value", "5555555555554444"},
                 {"file", "4116-9900-0000-0005.csv"},
                 {"reply", "550 4115990000000006: no such file"}});
  std::string line = OnlyLine();
  EXPECT_THAT(line, Not(HasSubstr("4111111111111111")));
  EXPECT_THAT(line, Not(HasSubstr("5555555555554444")));
  EXPECT_THAT(line, Not(HasSubstr("1111 1111")));
  Json json = Parse(line);
  EXPECT_EQ(json["msg"], "bad record with pan 4111 11** **** 1111");
  EXPECT_EQ(json["value"], "555555******4444");
  EXPECT_EQ(json["file"], "4116-99**-****-0005.csv");
  EXPECT_EQ(json["reply"], "550 411599******0006: no such file");
}

TEST_F(LogTest, ValuesTheProgramMadeAreNeverMasked) {
  // Ids that are all digits and happen to form a Luhn-valid Visa number,
  // a traceparent, epoch milliseconds that pass Luhn: all the program's.
  const std::string run = "4111111111111111";
  LogContext context{.run_id = run,
                     .batch_id = run + "-b001",
                     .trace_id = "41111111111111114111111111111111",
                     .destination = "visa"};
  logger_.Info(context, "batch.delivered", "delivered",
               {{"time_ms", int64_t{1796478000000}},
                {"count", uint64_t{5555555555554444}},
                LogField::Id("traceparent",
                             "00-41111111111111114111111111111111-"
                             "4111111111111111-01"),
                LogField::Id("delivery_id", "5555555555554444"),
                LogField::Json("notification",
                               R"({"run_id":"4111111111111111","n":[1]})")});
  Json json = Parse(OnlyLine());
  EXPECT_EQ(json["run_id"], run);
  EXPECT_EQ(json["batch_id"], run + "-b001");
  EXPECT_EQ(json["trace_id"], "41111111111111114111111111111111");
  EXPECT_EQ(json["time_ms"], 1796478000000);
  EXPECT_EQ(json["count"], 5555555555554444u);
  EXPECT_EQ(json["traceparent"],
            "00-41111111111111114111111111111111-4111111111111111-01");
  EXPECT_EQ(json["delivery_id"], "5555555555554444");
  // Embedded as an object, not as a string.
  ASSERT_TRUE(json["notification"].is_object()) << OnlyLine();
  EXPECT_EQ(json["notification"]["run_id"], run);
  EXPECT_THAT(OnlyLine(), Not(HasSubstr("*")));
}

TEST_F(LogTest, JsonFieldThatIsNotAJsonValueIsFreeText) {
  logger_.Info("a.b", "m",
               {LogField::Json("x", "4111111111111111"),
                LogField::Json("y", "{\"a\":\n1}"), LogField::Json("z", "{")});
  Json json = Parse(OnlyLine());
  EXPECT_EQ(json["x"], "411111******1111");
  EXPECT_EQ(json["y"], "{\"a\":\n1}");
  EXPECT_EQ(json["z"], "{");
}

TEST_F(LogTest, SecretsAndSensitiveKeysAreRedacted) {
  logger_.AddSecret("hunter2-sftp-password");
  logger_.AddSecret("abc");  // too short: ignored
  logger_.Warn("delivery.failed", "login hunter2-sftp-password refused for abc",
               {{"password", "p4ss"},
                {"SFTP_PASSWORD", "p4ss"},
                {"api_token", 12345},
                {"cvv", "123"},
                {"track2", ";4111=2512?"},
                {"url", "sftp://u:hunter2-sftp-password@host/"},
                {"user", "alice"}});
  std::string line = OnlyLine();
  EXPECT_THAT(line, Not(HasSubstr("hunter2")));
  EXPECT_THAT(line, Not(HasSubstr("p4ss")));
  Json json = Parse(line);
  EXPECT_EQ(json["msg"], "login [REDACTED] refused for abc");
  EXPECT_EQ(json["password"], "[REDACTED]");
  EXPECT_EQ(json["SFTP_PASSWORD"], "[REDACTED]");
  EXPECT_EQ(json["api_token"], "[REDACTED]");
  EXPECT_EQ(json["cvv"], "[REDACTED]");
  EXPECT_EQ(json["track2"], "[REDACTED]");
  EXPECT_EQ(json["url"], "sftp://u:[REDACTED]@host/");
  EXPECT_EQ(json["user"], "alice");
}

// --- Sinks and concurrency
// -----------------------------------------------------

class LogFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cbpipe-log-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> ReadLines(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string text = buffer.str();
    EXPECT_TRUE(text.empty() || text.back() == '\n');
    std::vector<std::string> lines;
    std::string line;
    std::istringstream stream(text);
    while (std::getline(stream, line)) lines.push_back(line);
    return lines;
  }

  std::string dir_;
};

TEST_F(LogFileTest, EightThreadsWriteWholeLines) {
  std::string path = dir_ + "/cbpipe.log";
  StatusOr<std::shared_ptr<LogSink>> sink = OpenFileLogSink(path);
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  Logger logger(*sink, LogLevel::kInfo);
  constexpr int kThreads = 8;
  constexpr int kLines = 1000;
  // Long enough that a torn write would show.
  const std::string padding(300, 'x');
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      LogContext context{.run_id = "run-" + std::to_string(t)};
      for (int i = 0; i < kLines; ++i) {
        logger.Info(context, "test.line", padding, {{"thread", t}, {"seq", i}});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  std::vector<std::set<int>> seen(kThreads);
  for (const std::string& line : lines) {
    Json json = Json::parse(line, nullptr, false);
    ASSERT_FALSE(json.is_discarded()) << line;
    ASSERT_EQ(json["msg"], padding);
    int t = json["thread"].get<int>();
    ASSERT_EQ(json["run_id"], "run-" + std::to_string(t));
    EXPECT_TRUE(seen[t].insert(json["seq"].get<int>()).second);
  }
  for (const std::set<int>& s : seen) EXPECT_EQ(s.size(), size_t{kLines});
}

TEST_F(LogFileTest, FileSinkAppends) {
  std::string path = dir_ + "/append.log";
  { std::ofstream(path) << "existing\n"; }
  {
    Logger logger(*OpenFileLogSink(path), LogLevel::kInfo, FixedTime);
    logger.Info("a.b", "one");
  }
  Logger logger(*OpenFileLogSink(path), LogLevel::kInfo, FixedTime);
  logger.Info("a.b", "two");
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "existing");
  EXPECT_EQ(Parse(lines[2])["msg"], "two");
}

TEST_F(LogFileTest, OpenFailuresAreStatuses) {
  StatusOr<std::shared_ptr<LogSink>> missing =
      OpenFileLogSink(dir_ + "/no/such/dir/x.log");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("no/such/dir"));
}

TEST_F(LogFileTest, DefaultLoggerIsConfigurable) {
  std::string path = dir_ + "/default.log";
  ASSERT_TRUE(
      ConfigureLog(LogOptions{.path = path, .level = LogLevel::kWarn}).ok());
  Log().Info("not.written", "below the level");
  Log().Warn(LogContext{.run_id = "r"}, "written", "at the level");
  // A bad path leaves the logger as it was.
  EXPECT_FALSE(ConfigureLog(LogOptions{.path = dir_ + "/no/x.log"}).ok());
  Log().Error("also.written", "still to the file");
  ASSERT_TRUE(ConfigureLog(LogOptions{}).ok());  // back to stderr, info
  EXPECT_EQ(Log().min_level(), LogLevel::kInfo);

  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Parse(lines[0])["event"], "written");
  EXPECT_EQ(Parse(lines[0])["run_id"], "r");
  EXPECT_EQ(Parse(lines[1])["event"], "also.written");
}

}  // namespace
}  // namespace cbpipe
