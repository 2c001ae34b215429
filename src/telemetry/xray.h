// AWS X-Ray tracing: a segment per run, subsegments per step and per AWS
// call, sent as UDP datagrams to the X-Ray daemon (or the Lambda runtime's
// daemon at AWS_XRAY_DAEMON_ADDRESS).
//
//   StatusOr<std::unique_ptr<XRayTracer>> t = XRayTracer::Create(
//       ResolveXRayOptions(options, std::getenv));
//   XRaySpan run = (*t)->BeginSegment(trace_id, "cbpipe", run_id);
//   {
//     XRaySpan step = (*t)->BeginSubsegmentOf(run_id, "validate");
//     XRayCurrentScope scope(&step);      // AWS calls in it find it
//     Status st = Validate(...);
//     step.SetStatus(st);                 // error/fault flags and cause
//   }                                     // ended (sent) when it goes
//   // in the AWS client (next session):
//   XRaySpan call = XRayBeginAwsCall("S3", "PutObject", "eu-west-1");
//   call.SetHttp("PUT", url, 200); call.SetRequestId(id);
//
// Ids (docs/aws.md, "Metrics and tracing"): the X-Ray trace id is the run's
// W3C trace id written "1-<first 8 hex>-<last 24 hex>" (the same 128 bits;
// TraceIdFromXRay maps it back by removing "1-" and the second "-"), the
// segment/subsegment ids are 16 hex like W3C span ids.
//
// What is sent: a segment is sent "in_progress" when it begins and complete
// when it ends; subsegments are sent once, complete, when they end (as
// separate documents with "type":"subsegment", "parent_id" and
// "trace_id"), so the console shows a run while it runs and each step when
// it is done. Each document is one datagram
// `{"format":"json","version":1}\n<document>`, never more than
// kXRayMaxDatagramBytes: free text (error messages, URLs) is cut to 4 KiB,
// names to 200, and a document still too large loses its annotations for
// the single annotation "trimmed": true (a document is never split).
// Errors: a step's Status sets "error" (the caller's input:
// INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
// PERMISSION_DENIED, UNAUTHENTICATED) or "fault" (every other code), with a
// cause {"exceptions":[{"type":<code name>,"message":<masked>}]}; an HTTP
// status sets "error" (4xx), also "throttle" (429), or "fault" (5xx). Card
// numbers in any text are masked (MaskCardNumbers).
// Thread safety: XRayTracer is thread-safe; an XRaySpan is used by one
// thread at a time, but BeginSubsegment on it may be called from any thread
// (its ids never change). Sending never blocks and never fails the caller
// (a datagram that cannot be sent is counted in dropped()).
// Ownership: the tracer must outlive its spans.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "telemetry/trace.h"

namespace cbpipe {

inline constexpr size_t kXRayMaxDatagramBytes = 64000;
inline constexpr char kXRayDefaultDaemonAddress[] = "127.0.0.1:2000";

// Where the daemon listens: segments go to the UDP address; the TCP one
// (sampling rules) is parsed for completeness and unused.
struct XRayDaemonAddress {
  std::string udp_host;
  int udp_port = 0;
  std::string tcp_host;
  int tcp_port = 0;
};
// "host:port" (both), or "udp:host:port tcp:host:port" in either order
// (the AWS_XRAY_DAEMON_ADDRESS forms). IPv6 hosts in brackets
// ("[::1]:2000"). kInvalidArgument naming what is wrong.
StatusOr<XRayDaemonAddress> ParseXRayDaemonAddress(std::string_view text);

// "1-<8 hex>-<24 hex>" for `id`.
std::string XRayTraceId(const TraceId& id);
// The W3C trace id of an X-Ray trace id; kInvalidArgument when it is not
// "1-" + 8 hex + "-" + 24 hex (lower case).
StatusOr<TraceId> TraceIdFromXRay(std::string_view xray_id);

// An X-Amzn-Trace-Id header ("Root=1-...;Parent=<16 hex>;Sampled=1", the
// fields in any order, spaces after ';' allowed; others ignored), as
// Lambda gives it in _X_AMZN_TRACE_ID. Fields missing are "" / false; no
// check of their form here (BeginSubsegmentUnder checks what it uses).
struct XRayTraceHeader {
  std::string root;    // "1-5759e988-bd862e3fe1be46a994272793"
  std::string parent;  // the segment to nest under
  bool sampled = false;
};
XRayTraceHeader ParseXRayTraceHeader(std::string_view header);

struct XRayOptions {
  bool enabled = false;
  // "" = AWS_XRAY_DAEMON_ADDRESS, else kXRayDefaultDaemonAddress.
  std::string daemon_address;
  std::string service_name = "cbpipe";  // the name of run segments
};

// `options` with the environment applied: AWS_XRAY_SDK_ENABLED "true"/"1"
// enables, "false"/"0" disables (either way over the config);
// AWS_XRAY_DAEMON_ADDRESS is the address when the config gives none.
// `getenv` is std::getenv in production.
XRayOptions ResolveXRayOptions(XRayOptions options,
                               char* (*getenv)(const char*));

class XRayTracer;

// One segment or subsegment. Default-constructed (or from a disabled
// tracer) it records nothing and sends nothing, so callers never test
// whether tracing is on. Ends (is sent) at End() or destruction.
class XRaySpan {
 public:
  XRaySpan();
  XRaySpan(XRaySpan&& other) noexcept;
  XRaySpan& operator=(XRaySpan&& other) noexcept;
  XRaySpan(const XRaySpan&) = delete;
  XRaySpan& operator=(const XRaySpan&) = delete;
  ~XRaySpan();  // End()

  bool active() const { return tracer_ != nullptr; }
  const std::string& id() const { return id_; }              // 16 hex
  const std::string& trace_id() const { return trace_id_; }  // 1-...
  // The X-Amzn-Trace-Id header of a call made inside this span
  // ("Root=1-...;Parent=<id>;Sampled=1"); "" when inactive.
  std::string TraceHeader() const;

  // A child of this span (inactive when this one is). `aws` marks a call
  // to an AWS service ("namespace":"aws"; `name` is the service: "S3").
  XRaySpan BeginSubsegment(std::string_view name, bool aws = false) const;

  // A string annotation (indexed by X-Ray, filterable); key
  // [A-Za-z0-9_]+, others are dropped. Value masked.
  void Annotate(std::string_view key, std::string_view value);
  // Not OK: error or fault by code, and the cause (see the file comment).
  void SetStatus(const Status& status);
  // An AWS call: {"aws":{"operation","region","request_id"}} (empty ones
  // left out).
  void SetAws(std::string_view operation, std::string_view region,
              std::string_view request_id = "");
  // {"http":{"request":{"method","url"},"response":{"status"}}}; the
  // status sets error/throttle/fault. status 0 = no response. The URL is
  // recorded without its query, fragment or user:password@ (a presigned
  // URL's signature and credentials are in its query).
  void SetHttp(std::string_view method, std::string_view url, int status);
  // Sends the complete document once; later calls do nothing.
  void End();

 private:
  friend class XRayTracer;
  struct Fields;
  XRayTracer* tracer_ = nullptr;
  std::string id_, trace_id_, parent_id_;  // parent "" for a segment
  std::string registered_key_;  // BeginSegment's key, unregistered at End
  std::unique_ptr<Fields> fields_;
};

class XRayTracer {
 public:
  // A disabled tracer (options.enabled false) opens no socket and sends
  // nothing. kInvalidArgument for a bad daemon address or a host that does
  // not resolve.
  static StatusOr<std::unique_ptr<XRayTracer>> Create(
      const XRayOptions& options);
  ~XRayTracer();

  bool enabled() const { return fd_ >= 0; }
  // A segment named `name` in trace `trace` (inactive when the tracer is
  // disabled or `trace` is invalid). With a `key` (the run id) it is found
  // by BeginSubsegmentOf(key) until it ends; a second segment under the
  // same key replaces the first there.
  XRaySpan BeginSegment(const TraceId& trace, std::string_view name,
                        std::string_view key = "");
  // A subsegment of the segment open under `key`; inactive when none is.
  XRaySpan BeginSubsegmentOf(std::string_view key, std::string_view name);
  // A subsegment of a segment another process sends (Lambda's function
  // segment): the header's Root and Parent. Inactive when the tracer is
  // disabled, the header is not sampled, or its Root is not an X-Ray trace
  // id or its Parent not 16 hex.
  XRaySpan BeginSubsegmentUnder(const XRayTraceHeader& header,
                                std::string_view name);

  // Datagrams sent and those that could not be (socket errors).
  uint64_t sent() const { return sent_.load(); }
  uint64_t dropped() const { return dropped_.load(); }

 private:
  friend class XRaySpan;
  XRayTracer() = default;
  void Send(const std::string& document);
  void Unregister(const std::string& key, const std::string& id);

  std::string service_name_;
  int fd_ = -1;
  std::vector<unsigned char> address_;  // a sockaddr_storage's bytes
  unsigned address_len_ = 0;
  std::atomic<uint64_t> sent_{0}, dropped_{0};
  std::mutex mu_;
  // key -> (trace id, segment id) of open segments (under mu_).
  std::map<std::string, std::pair<std::string, std::string>, std::less<>> open_;
};

// The span code on this thread runs in (the current step), for code that
// cannot be handed one (the AWS client). Set for a scope; scopes nest.
class XRayCurrentScope {
 public:
  explicit XRayCurrentScope(const XRaySpan* span);
  ~XRayCurrentScope();
  XRayCurrentScope(const XRayCurrentScope&) = delete;
  XRayCurrentScope& operator=(const XRayCurrentScope&) = delete;

 private:
  const XRaySpan* previous_;
};
// The innermost scope's span on this thread, or null.
const XRaySpan* CurrentXRaySpan();
// A subsegment for one call to AWS `service` ("S3", "SQS", ...) under the
// current span, with {"aws":{"operation","region"}} set; inactive when
// there is no current span. The caller adds SetHttp/SetAws(request id) and
// SetStatus, and the X-Amzn-Trace-Id header from TraceHeader().
XRaySpan XRayBeginAwsCall(std::string_view service, std::string_view operation,
                          std::string_view region);

}  // namespace cbpipe
