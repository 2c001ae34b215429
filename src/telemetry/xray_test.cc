#include "telemetry/xray.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "telemetry/xray_test_daemon.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<XRayTracer> Tracer(const std::string& address,
                                   bool enabled = true) {
  XRayOptions o;
  o.enabled = enabled;
  o.daemon_address = address;
  StatusOr<std::unique_ptr<XRayTracer>> t = XRayTracer::Create(o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(XRayAddressTest, HostPortAndTheUdpTcpForm) {
  StatusOr<XRayDaemonAddress> a = ParseXRayDaemonAddress("127.0.0.1:2000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->udp_host, "127.0.0.1");
  EXPECT_EQ(a->udp_port, 2000);
  EXPECT_EQ(a->tcp_host, "127.0.0.1");
  EXPECT_EQ(a->tcp_port, 2000);

  a = ParseXRayDaemonAddress("tcp:daemon.local:2001 udp:10.0.0.2:2002");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->udp_host, "10.0.0.2");
  EXPECT_EQ(a->udp_port, 2002);
  EXPECT_EQ(a->tcp_host, "daemon.local");
  EXPECT_EQ(a->tcp_port, 2001);

  a = ParseXRayDaemonAddress("[::1]:2000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->udp_host, "::1");

  for (const char* bad :
       {"", "  ", "127.0.0.1", "127.0.0.1:", ":2000", "h:0", "h:65536",
        "h:20x0", "::1:2000", "[::1:2000", "udp:h:1", "udp:h:1 udp:h:2",
        "udp:h:1 tcp:h:2 tcp:h:3", "udp:h:1 h:2"}) {
    StatusOr<XRayDaemonAddress> r = ParseXRayDaemonAddress(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(XRayIdsTest, TheW3CTraceIdMapsToXRayAndBack) {
  StatusOr<TraceId> w3c = TraceId::FromHex("5759e988bd862e3fe1be46a994272793");
  ASSERT_TRUE(w3c.ok());
  EXPECT_EQ(XRayTraceId(*w3c), "1-5759e988-bd862e3fe1be46a994272793");
  StatusOr<TraceId> back =
      TraceIdFromXRay("1-5759e988-bd862e3fe1be46a994272793");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, *w3c);
  for (const char* bad : {"", "1-5759e988bd862e3fe1be46a994272793",
                          "2-5759e988-bd862e3fe1be46a994272793",
                          "1-5759e988-bd862e3fe1be46a99427279",
                          "1-5759E988-bd862e3fe1be46a994272793",
                          "1-00000000-000000000000000000000000"}) {
    EXPECT_FALSE(TraceIdFromXRay(bad).ok()) << bad;
  }
}

TEST(XRayOptionsTest, TheEnvironmentEnablesDisablesAndAddresses) {
  static std::map<std::string, std::string> env;
  auto fake = [](const char* name) -> char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.data();
  };
  env = {};
  XRayOptions o = ResolveXRayOptions({}, fake);
  EXPECT_FALSE(o.enabled);
  EXPECT_EQ(o.daemon_address, "127.0.0.1:2000");
  env = {{"AWS_XRAY_SDK_ENABLED", "true"},
         {"AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"}};
  o = ResolveXRayOptions({}, fake);
  EXPECT_TRUE(o.enabled);
  EXPECT_EQ(o.daemon_address, "169.254.79.129:2000");
  XRayOptions configured;
  configured.enabled = true;
  configured.daemon_address = "10.1.1.1:3000";  // the config wins
  env = {{"AWS_XRAY_SDK_ENABLED", "false"},
         {"AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"}};
  o = ResolveXRayOptions(configured, fake);
  EXPECT_FALSE(o.enabled);
  EXPECT_EQ(o.daemon_address, "10.1.1.1:3000");
}

TEST(XRayTracerTest, DisabledSendsNothing) {
  XRayTestDaemon daemon;
  std::unique_ptr<XRayTracer> t = Tracer(daemon.address(), false);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->enabled());
  {
    XRaySpan run = t->BeginSegment(NewTraceId(), "cbpipe", "run1");
    EXPECT_FALSE(run.active());
    EXPECT_EQ(run.TraceHeader(), "");
    XRaySpan step = t->BeginSubsegmentOf("run1", "validate");
    EXPECT_FALSE(step.active());
    step.SetStatus(Status(StatusCode::kInternal, "x"));
  }
  EXPECT_TRUE(daemon.Datagrams(200).empty());
  EXPECT_EQ(t->sent(), 0u);
}

TEST(XRayTraceHeaderTest, RootParentAndSampledInAnyOrder) {
  XRayTraceHeader h = ParseXRayTraceHeader(
      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
      "Sampled=1");
  EXPECT_EQ(h.root, "1-5759e988-bd862e3fe1be46a994272793");
  EXPECT_EQ(h.parent, "53995c3f42cd8ad8");
  EXPECT_TRUE(h.sampled);
  h = ParseXRayTraceHeader(
      "Sampled=0; Parent=53995c3f42cd8ad8; Lineage=a:1; "
      "Root=1-5759e988-bd862e3fe1be46a994272793");
  EXPECT_EQ(h.root, "1-5759e988-bd862e3fe1be46a994272793");
  EXPECT_EQ(h.parent, "53995c3f42cd8ad8");
  EXPECT_FALSE(h.sampled);
  h = ParseXRayTraceHeader("");
  EXPECT_EQ(h.root, "");
  EXPECT_EQ(h.parent, "");
  EXPECT_FALSE(h.sampled);
}

// Lambda's case: the segment is the Lambda service's; the function's spans
// hang under the header's Parent.
TEST(XRayTracerTest, ASubsegmentUnderAnotherProcesssSegment) {
  XRayTestDaemon daemon;
  std::unique_ptr<XRayTracer> t = Tracer(daemon.address());
  const XRayTraceHeader header = ParseXRayTraceHeader(
      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
      "Sampled=1");
  std::string step_id;
  {
    XRaySpan step = t->BeginSubsegmentUnder(header, "scan");
    ASSERT_TRUE(step.active());
    step_id = step.id();
    XRayCurrentScope scope(&step);
    XRaySpan call = XRayBeginAwsCall("S3", "GetObject", "eu-west-1");
    EXPECT_TRUE(call.active());
  }
  std::vector<nlohmann::json> docs = daemon.Documents();
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0]["parent_id"], step_id);  // the call ends first
  EXPECT_EQ(docs[1]["id"], step_id);
  EXPECT_EQ(docs[1]["type"], "subsegment");
  EXPECT_EQ(docs[1]["parent_id"], "53995c3f42cd8ad8");
  EXPECT_EQ(docs[1]["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
  // Not sampled, or a header without a usable Root or Parent: nothing.
  XRayTraceHeader unsampled = header;
  unsampled.sampled = false;
  XRayTraceHeader no_parent = header;
  no_parent.parent = "";
  XRayTraceHeader bad_root = header;
  bad_root.root = "5759e988bd862e3fe1be46a994272793";
  for (const XRayTraceHeader& h : {unsampled, no_parent, bad_root})
    EXPECT_FALSE(t->BeginSubsegmentUnder(h, "scan").active());
  EXPECT_TRUE(daemon.Datagrams(200).empty());
}

TEST(XRayTracerTest, ABadAddressIsAnError) {
  XRayOptions o;
  o.enabled = true;
  o.daemon_address = "127.0.0.1";
  EXPECT_EQ(XRayTracer::Create(o).status().code(),
            StatusCode::kInvalidArgument);
  o.daemon_address = "no-such-host.invalid:2000";
  EXPECT_FALSE(XRayTracer::Create(o).ok());
}

TEST(XRayTracerTest, SegmentSubsegmentsLinksTimesAndErrors) {
  XRayTestDaemon daemon;
  std::unique_ptr<XRayTracer> t = Tracer(daemon.address());
  StatusOr<TraceId> trace =
      TraceId::FromHex("6a1b2c3d4e5f60718293a4b5c6d7e8f9");
  ASSERT_TRUE(trace.ok());
  std::string run_id, step_id, call_id;
  {
    XRaySpan run = t->BeginSegment(*trace, "cbpipe", "run-1");
    run.Annotate("run_id", "run-1");
    run_id = run.id();
    {
      XRaySpan step = t->BeginSubsegmentOf("run-1", "deliver");
      step_id = step.id();
      XRayCurrentScope scope(&step);
      {
        XRaySpan call = XRayBeginAwsCall("S3", "PutObject", "eu-west-1");
        ASSERT_TRUE(call.active());
        call_id = call.id();
        EXPECT_EQ(call.TraceHeader(),
                  "Root=1-6a1b2c3d-4e5f60718293a4b5c6d7e8f9;Parent=" + call_id +
                      ";Sampled=1");
        call.SetHttp("PUT", "https://b.s3.amazonaws.com/k", 503);
        call.SetAws("", "", "REQ123");
      }
      step.SetStatus(Status(StatusCode::kUnavailable,
                            "upload of card 4111111111111111 refused"));
    }
    EXPECT_EQ(CurrentXRaySpan(), nullptr);
    XRaySpan bad = t->BeginSubsegmentOf("run-1", "validate");
    bad.SetStatus(Status(StatusCode::kInvalidArgument, "bad header"));
    bad.End();
    bad.End();  // once
    run.SetStatus(Status(StatusCode::kDataLoss, "truncated"));
  }
  EXPECT_FALSE(t->BeginSubsegmentOf("run-1", "late").active());
  std::vector<json> docs = daemon.Documents();
  ASSERT_EQ(docs.size(), 5u);
  // Begin of the run (in progress), the call, the step, validate, the run.
  const std::string trace_x = "1-6a1b2c3d-4e5f60718293a4b5c6d7e8f9";
  EXPECT_EQ(docs[0]["id"], run_id);
  EXPECT_EQ(docs[0]["in_progress"], true);
  EXPECT_FALSE(docs[0].contains("end_time"));
  EXPECT_EQ(docs[0]["name"], "cbpipe");
  const json& call = docs[1];
  EXPECT_EQ(call["type"], "subsegment");
  EXPECT_EQ(call["id"], call_id);
  EXPECT_EQ(call["parent_id"], step_id);
  EXPECT_EQ(call["namespace"], "aws");
  EXPECT_EQ(call["name"], "S3");
  EXPECT_EQ(call["aws"]["operation"], "PutObject");
  EXPECT_EQ(call["aws"]["region"], "eu-west-1");
  EXPECT_EQ(call["aws"]["request_id"], "REQ123");
  EXPECT_EQ(call["http"]["response"]["status"], 503);
  EXPECT_EQ(call["fault"], true);
  const json& step = docs[2];
  EXPECT_EQ(step["id"], step_id);
  EXPECT_EQ(step["parent_id"], run_id);
  EXPECT_EQ(step["name"], "deliver");
  EXPECT_EQ(step["fault"], true);
  EXPECT_FALSE(step.contains("error"));
  EXPECT_EQ(step["cause"]["exceptions"][0]["type"], "UNAVAILABLE");
  EXPECT_THAT(step["cause"]["exceptions"][0]["message"].get<std::string>(),
              HasSubstr("refused"));
  const json& validate = docs[3];
  EXPECT_EQ(validate["error"], true);
  EXPECT_FALSE(validate.contains("fault"));
  EXPECT_EQ(validate["parent_id"], run_id);
  const json& end = docs[4];
  EXPECT_EQ(end["id"], run_id);
  EXPECT_FALSE(end.contains("in_progress"));
  EXPECT_FALSE(end.contains("type"));
  EXPECT_EQ(end["annotations"]["run_id"], "run-1");
  EXPECT_EQ(end["fault"], true);
  for (const json& d : docs) {
    EXPECT_EQ(d["trace_id"], trace_x);
    EXPECT_EQ(d["id"].get<std::string>().size(), 16u);
    if (d.contains("end_time")) {
      EXPECT_LE(d["start_time"].get<double>(), d["end_time"].get<double>());
    }
    EXPECT_GE(d["start_time"].get<double>(),
              docs[0]["start_time"].get<double>());
    EXPECT_GT(d["start_time"].get<double>(), 1.6e9);  // epoch seconds
  }
  // Children lie within their parents.
  EXPECT_LE(step["start_time"].get<double>(), call["start_time"].get<double>());
  EXPECT_GE(step["end_time"].get<double>(), call["end_time"].get<double>());
  EXPECT_GE(end["end_time"].get<double>(), step["end_time"].get<double>());
  EXPECT_EQ(t->sent(), 5u);
  EXPECT_EQ(t->dropped(), 0u);
}

TEST(XRayTracerTest, HttpStatusFlags) {
  XRayTestDaemon daemon;
  std::unique_ptr<XRayTracer> t = Tracer(daemon.address());
  {
    XRaySpan run = t->BeginSegment(NewTraceId(), "", "r");
    XRaySpan a = run.BeginSubsegment("SQS", true);
    a.SetHttp("POST", "https://sqs", 429);
    a.End();
    XRaySpan b = run.BeginSubsegment("SQS", true);
    b.SetHttp("POST", "https://sqs", 200);
    b.End();
  }
  std::vector<json> docs = daemon.Documents();
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[0]["name"], "cbpipe");  // the service name by default
  EXPECT_EQ(docs[1]["throttle"], true);
  EXPECT_EQ(docs[1]["error"], true);
  EXPECT_FALSE(docs[2].contains("error"));
  EXPECT_FALSE(docs[2].contains("fault"));
}

TEST(XRayTracerTest, AUrlIsRecordedWithoutQueryOrUserInfo) {
  XRayTestDaemon daemon;
  std::unique_ptr<XRayTracer> t = Tracer(daemon.address());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"https://b.s3.eu-west-1.amazonaws.com/in/k.csv?X-Amz-Algorithm=AWS4-"
       "HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20240501&X-Amz-Signature="
       "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
       "https://b.s3.eu-west-1.amazonaws.com/in/k.csv"},
      {"http://user:s3cret@127.0.0.1:9000/bucket/key#frag",
       "http://127.0.0.1:9000/bucket/key"},
      {"https://sqs.us-east-1.amazonaws.com/",
       "https://sqs.us-east-1.amazonaws.com/"},
      {"https://host/p@th", "https://host/p@th"},
  };
  {
    XRaySpan run = t->BeginSegment(NewTraceId(), "", "r");
    for (const auto& [url, recorded] : cases) {
      XRaySpan call = run.BeginSubsegment("S3", true);
      call.SetHttp("GET", url, 200);
    }
  }
  std::vector<std::string> datagrams = daemon.Datagrams();
  for (const std::string& d : datagrams) {
    EXPECT_THAT(d, Not(HasSubstr("Signature")));
    EXPECT_THAT(d, Not(HasSubstr("AKIDEXAMPLE")));
    EXPECT_THAT(d, Not(HasSubstr("s3cret")));
  }
  std::vector<json> docs = XRayTestDaemon::Parse(datagrams);
  ASSERT_EQ(docs.size(), cases.size() + 2);
  for (size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(docs[i + 1]["http"]["request"]["url"], cases[i].second);
}

TEST(XRayTracerTest, NoCurrentSpanNoAwsCall) {
  EXPECT_EQ(CurrentXRaySpan(), nullptr);
  EXPECT_FALSE(XRayBeginAwsCall("S3", "GetObject", "us-east-1").active());
}

TEST(XRayTracerTest, ADatagramNeverExceeds64KB) {
  XRayTestDaemon daemon;
  std::unique_ptr<XRayTracer> t = Tracer(daemon.address());
  {
    XRaySpan run = t->BeginSegment(NewTraceId(), std::string(5000, 'n'), "r");
    run.SetStatus(Status(StatusCode::kInternal, std::string(200000, 'e')));
    run.SetHttp("GET", std::string(100000, 'u'), 500);
    for (int i = 0; i < 2000; ++i)
      run.Annotate("k" + std::to_string(i), std::string(100, 'v'));
  }
  std::vector<json> docs = daemon.Documents();
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[1]["annotations"], json::parse(R"({"trimmed":true})"));
  EXPECT_EQ(docs[1]["name"].get<std::string>().size(), 200u);
  EXPECT_EQ(
      docs[1]["cause"]["exceptions"][0]["message"].get<std::string>().size(),
      4096u);
  EXPECT_EQ(docs[1]["fault"], true);
  EXPECT_EQ(t->dropped(), 0u);
}

}  // namespace
}  // namespace cbpipe
