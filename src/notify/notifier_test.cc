#include "notify/notifier.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "notify/log_notifier.h"

namespace cbpipe {
namespace {

Event SampleEvent() {
  Event e;
  e.type = "batch.delivered";
  e.run_id = "r1";
  e.batch_id = "b2";
  e.destination = "visa_sftp";
  e.trace_id = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  e.time_ms = 1714564800123;
  e.counts = {{"records", 1200}, {"files", 2}};
  e.totals = {{"USD", 89000}, {"EUR", 1234567}};
  e.message = "delivered";
  return e;
}

TEST(EventJsonTest, StableDocumentedShape) {
  EXPECT_EQ(
      EventJson(SampleEvent()),
      R"({"schema":"cbpipe.event.v1","type":"batch.delivered",)"
      R"("time":"2024-05-01T12:00:00.123Z","time_ms":1714564800123,)"
      R"("run_id":"r1","batch_id":"b2","destination":"visa_sftp",)"
      R"("trace_id":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",)"
      R"("counts":{"files":2,"records":1200},)"
      R"("totals":{"EUR":1234567,"USD":89000},"message":"delivered"})");
}

TEST(EventJsonTest, EveryKeyPresentWhenEmpty) {
  EXPECT_EQ(EventJson(Event{}),
            R"({"schema":"cbpipe.event.v1","type":"",)"
            R"("time":"1970-01-01T00:00:00.000Z","time_ms":0,"run_id":"",)"
            R"("batch_id":"","destination":"","trace_id":"","counts":{},)"
            R"("totals":{},"message":""})");
}

TEST(EventJsonTest, NegativeTimeAndInvalidUtf8DoNotThrow) {
  Event e;
  e.time_ms = -1;
  e.message = "bad \xff\xfe bytes";
  e.run_id = "quote\" and \\ and \n";
  std::string json = EventJson(e);
  EXPECT_NE(json.find(R"("time":"1969-12-31T23:59:59.999Z")"),
            std::string::npos);
  EXPECT_NE(json.find("bad \xEF\xBF\xBD\xEF\xBF\xBD bytes"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("run_id":"quote\" and \\ and \n")"),
            std::string::npos);
  EXPECT_EQ(json.find('\n'), std::string::npos);
}

TEST(EventJsonTest, CardNumbersInTheMessageAreMasked) {
  Event e;
  e.message =
      "rejected 4111 1111 1111 1111 and 5500-0000-0000-0004, "
      "pan=4115990000000006.";
  std::string json = EventJson(e);
  EXPECT_NE(json.find(R"("message":"rejected 4111 11** **** 1111 and )"
                      R"(5500-00**-****-0004, pan=411599******0006.")"),
            std::string::npos)
      << json;
}

TEST(EventJsonTest, ProgramValuesAreNeverMasked) {
  // Ids and times the program made keep every digit, even when they
  // happen to look like a card number; only the message is free text.
  Event e;
  e.type = "batch.delivered";
  e.run_id = "4111111111111111";
  e.batch_id = "4111111111111111-b001";
  e.trace_id = "00-41111111111111114111111111111111-4111111111111111-01";
  e.time_ms = 1796478000000;
  e.counts = {{"records", 4111111111111111}};
  e.message = "1200 records, arn 74567890123456789012345, 411111******1111";
  std::string json = EventJson(e);
  for (
      const char* kept :
      {R"("run_id":"4111111111111111")",
       R"("batch_id":"4111111111111111-b001")",
       R"("trace_id":"00-41111111111111114111111111111111-4111111111111111-01")",
       R"("time_ms":1796478000000)", R"("records":4111111111111111)",
       R"("message":"1200 records, arn 74567890123456789012345, )"
       R"(411111******1111")"}) {
    EXPECT_NE(json.find(kept), std::string::npos) << kept << "\n" << json;
  }
}

TEST(TraceparentTest, Format) {
  EXPECT_TRUE(
      IsTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(
      IsTraceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(
      IsTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(
      IsTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  EXPECT_FALSE(
      IsTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(IsTraceparent(""));
  EXPECT_FALSE(IsTraceparent(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"));
}

TEST(EventTypesTest, TheFiveOfTheDesign) {
  EXPECT_EQ(EventTypes().size(), 5u);
  EXPECT_TRUE(IsKnownEventType("deadletter.added"));
  EXPECT_TRUE(IsKnownEventType("input.rejected"));
  EXPECT_FALSE(IsKnownEventType("batch.started"));
}

class RecordingNotifier : public Notifier {
 public:
  explicit RecordingNotifier(std::vector<std::string>* seen, Status flush = {})
      : seen_(seen), flush_(std::move(flush)) {}
  void Notify(const Event& e) override { seen_->push_back(e.type); }
  Status Flush(std::chrono::milliseconds) override { return flush_; }

 private:
  std::vector<std::string>* seen_;
  Status flush_;
};

TEST(FanoutNotifierTest, SendsToAllAndReportsTheFirstFlushError) {
  std::vector<std::string> a, b;
  std::vector<std::unique_ptr<Notifier>> list;
  list.push_back(std::make_unique<RecordingNotifier>(&a));
  list.push_back(
      std::make_unique<RecordingNotifier>(&b, DeadlineExceededError("slow")));
  FanoutNotifier fanout(std::move(list));
  fanout.Notify(SampleEvent());
  EXPECT_EQ(a, std::vector<std::string>{"batch.delivered"});
  EXPECT_EQ(b, std::vector<std::string>{"batch.delivered"});
  EXPECT_EQ(fanout.Flush(std::chrono::milliseconds(10)).code(),
            StatusCode::kDeadlineExceeded);
}

TEST(FilteredNotifierTest, PassesOnOnlyChosenTypes) {
  std::vector<std::string> seen;
  FilteredNotifier filtered({"batch.failed", "deadletter.added"},
                            std::make_unique<RecordingNotifier>(&seen));
  Event e;
  for (std::string_view t : EventTypes()) {
    e.type = std::string(t);
    filtered.Notify(e);
  }
  EXPECT_EQ(seen,
            (std::vector<std::string>{"batch.failed", "deadletter.added"}));

  std::vector<std::string> all;
  FilteredNotifier everything({}, std::make_unique<RecordingNotifier>(&all));
  for (std::string_view t : EventTypes()) {
    e.type = std::string(t);
    everything.Notify(e);
  }
  EXPECT_EQ(all.size(), 5u);
}

TEST(LogNotifierTest, WritesOneJsonLinePerEvent) {
  std::vector<std::string> lines;
  LogNotifier log([&](std::string_view line) { lines.emplace_back(line); });
  log.Notify(SampleEvent());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], EventJson(SampleEvent()));
  EXPECT_TRUE(log.Flush(std::chrono::milliseconds(0)).ok());
}

TEST(LogNotifierTest, ASinkThatThrowsDoesNotEscape) {
  LogNotifier log(
      [](std::string_view) { throw std::runtime_error("disk full"); });
  EXPECT_NO_THROW(log.Notify(SampleEvent()));
  LogNotifier empty(nullptr);
  EXPECT_NO_THROW(empty.Notify(SampleEvent()));
}

}  // namespace
}  // namespace cbpipe
