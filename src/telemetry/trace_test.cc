#include "telemetry/trace.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cbpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr char kExample[] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceTest, NewIdsAreValidLowerHexAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    TraceContext context = NewTraceContext();
    ASSERT_TRUE(context.IsValid());
    EXPECT_TRUE(context.sampled());
    std::string trace = context.trace_id.ToHex();
    EXPECT_THAT(trace, MatchesRegex("[0-9a-f]{32}"));
    EXPECT_THAT(context.span_id.ToHex(), MatchesRegex("[0-9a-f]{16}"));
    EXPECT_TRUE(seen.insert(trace).second) << trace;
  }
}

TEST(TraceTest, ParsesTheSpecExample) {
  StatusOr<TraceContext> parsed = ParseTraceparent(kExample);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->trace_id.ToHex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(parsed->span_id.ToHex(), "00f067aa0ba902b7");
  EXPECT_EQ(parsed->flags, 0x01);
  EXPECT_TRUE(parsed->sampled());
  EXPECT_EQ(parsed->ToTraceparent(), kExample);
}

TEST(TraceTest, RoundTrip) {
  for (int i = 0; i < 100; ++i) {
    TraceContext context = NewTraceContext();
    std::string header = context.ToTraceparent();
    EXPECT_THAT(header, MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-01"));
    StatusOr<TraceContext> parsed = ParseTraceparent(header);
    ASSERT_TRUE(parsed.ok()) << header;
    EXPECT_EQ(*parsed, context);
  }
}

TEST(TraceTest, UnsampledFlagsAreKept) {
  StatusOr<TraceContext> parsed = ParseTraceparent(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->sampled());
  EXPECT_THAT(parsed->ToTraceparent(), testing::EndsWith("-00"));
}

TEST(TraceTest, NewChildKeepsTraceAndFlags) {
  TraceContext parent = *ParseTraceparent(kExample);
  TraceContext child = parent.NewChild();
  EXPECT_EQ(child.trace_id, parent.trace_id);
  EXPECT_EQ(child.flags, parent.flags);
  EXPECT_TRUE(child.span_id.IsValid());
  EXPECT_NE(child.span_id, parent.span_id);
}

TEST(TraceTest, InvalidHeadersAreRejected) {
  const char* kInvalid[] = {
      "",
      "00",
      // upper-case hex anywhere
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
      "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
      // version ff
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // all-zero ids
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // lengths and separators
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
      "004bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
      // non-hex
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // white space is the caller's to trim
      " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
      // a future version still needs the dash after the flags
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
  };
  for (const char* header : kInvalid) {
    StatusOr<TraceContext> parsed = ParseTraceparent(header);
    EXPECT_FALSE(parsed.ok()) << '"' << header << '"';
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(TraceTest, FutureVersionsAreReadWithTheVersion00Layout) {
  StatusOr<TraceContext> parsed = ParseTraceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->trace_id.ToHex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  // What we send on is version 00.
  EXPECT_EQ(parsed->ToTraceparent(), kExample);
  EXPECT_TRUE(ParseTraceparent(
                  "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                  .ok());
}

TEST(TraceTest, IdsFromHex) {
  EXPECT_TRUE(TraceId::FromHex("4bf92f3577b34da6a3ce929d0e0e4736").ok());
  EXPECT_FALSE(TraceId::FromHex("4BF92F3577B34DA6A3CE929D0E0E4736").ok());
  EXPECT_FALSE(TraceId::FromHex("00000000000000000000000000000000").ok());
  EXPECT_FALSE(TraceId::FromHex("4bf92f35").ok());
  EXPECT_TRUE(SpanId::FromHex("00f067aa0ba902b7").ok());
  EXPECT_FALSE(SpanId::FromHex("0000000000000000").ok());
  EXPECT_FALSE(SpanId::FromHex("00f067aa0ba902b").ok());
}

TEST(TraceTest, XRayHeader) {
  TraceContext context = *ParseTraceparent(kExample);
  EXPECT_EQ(ToXRayHeader(context),
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;"
            "Sampled=1");
  context.flags = 0;
  EXPECT_THAT(ToXRayHeader(context), testing::EndsWith(";Sampled=0"));
}

TEST(TraceTest, XRayCompatibleIdStartsWithTheEpoch) {
  // 2024-05-01T12:00:00Z = 1714564800 = 0x66322ec0
  auto now =
      std::chrono::system_clock::time_point(std::chrono::seconds(1714564800));
  TraceId id = NewXRayCompatibleTraceId(now);
  EXPECT_TRUE(id.IsValid());
  EXPECT_EQ(id.ToHex().substr(0, 8), "66322ec0");
  TraceContext context{id, NewSpanId(), kTraceFlagSampled};
  EXPECT_THAT(ToXRayHeader(context), HasSubstr("Root=1-66322ec0-"));
  EXPECT_NE(NewXRayCompatibleTraceId(now), id);
}

}  // namespace
}  // namespace cbpipe
