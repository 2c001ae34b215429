// W3C Trace Context: one trace id per input, carried through every step, log
// line and notification.
//
//   TraceContext trace = NewTraceContext();             // a new input
//   std::string header = trace.ToTraceparent();         // "00-<32>-<16>-01"
//   StatusOr<TraceContext> in = ParseTraceparent(header);  // a step resumes
//   TraceContext step = in->NewChild();                 // same trace, new span
//   std::string xray = ToXRayHeader(step);              // on AWS
//
// Ids are plain values: copy them freely. Everything here is thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

// 16 bytes; valid when not all zero. Written as 32 lower-case hex digits.
struct TraceId {
  std::array<uint8_t, 16> bytes{};

  bool IsValid() const;
  std::string ToHex() const;
  // Exactly 32 lower-case hex digits, not all zero; kInvalidArgument else.
  static StatusOr<TraceId> FromHex(std::string_view hex);
  friend bool operator==(const TraceId&, const TraceId&) = default;
};

// 8 bytes; valid when not all zero. Written as 16 lower-case hex digits.
struct SpanId {
  std::array<uint8_t, 8> bytes{};

  bool IsValid() const;
  std::string ToHex() const;
  // Exactly 16 lower-case hex digits, not all zero; kInvalidArgument else.
  static StatusOr<SpanId> FromHex(std::string_view hex);
  friend bool operator==(const SpanId&, const SpanId&) = default;
};

inline constexpr uint8_t kTraceFlagSampled = 0x01;

// One position in a trace: the trace, the current span (the `parent-id` of
// a traceparent header this process sends) and the trace flags.
struct TraceContext {
  TraceId trace_id;
  SpanId span_id;
  uint8_t flags = kTraceFlagSampled;

  bool IsValid() const { return trace_id.IsValid() && span_id.IsValid(); }
  bool sampled() const { return (flags & kTraceFlagSampled) != 0; }
  // "00-<trace id>-<span id>-<flags>", always version 00.
  std::string ToTraceparent() const;
  // The same trace and flags with a fresh span id: call it when a step
  // starts work on behalf of this context.
  TraceContext NewChild() const;
  friend bool operator==(const TraceContext&, const TraceContext&) = default;
};

// 16 random bytes (getrandom(2)), never all zero.
TraceId NewTraceId();
// 8 random bytes, never all zero.
SpanId NewSpanId();
// The first 4 bytes are `now` in Unix seconds (big-endian), the other 12
// random: the layout AWS X-Ray expects (its trace id is "1-<8 hex epoch>-<24
// hex>"), so a trace started this way keeps its real start time in X-Ray.
// Use it on AWS; NewTraceId() elsewhere.
TraceId NewXRayCompatibleTraceId(std::chrono::system_clock::time_point now);
// A new trace id and span id, sampled.
TraceContext NewTraceContext();

// Parses a `traceparent` header value, strictly per W3C Trace Context Level 1:
//   version "-" trace-id "-" parent-id "-" trace-flags
// with lower-case hex only (upper case is invalid), version "ff" invalid, an
// all-zero trace-id or parent-id invalid. Version 00 must be exactly 55
// characters. A higher version is read with the version 00 layout and may be
// followed by "-" and more fields (ignored). No surrounding white space is
// accepted (trim it first). Returns kInvalidArgument naming the problem.
StatusOr<TraceContext> ParseTraceparent(std::string_view header);

// The AWS X-Ray trace header for `context`:
//   "Root=1-<first 8 hex of trace id>-<last 24 hex>;Parent=<span id>;Sampled=1"
// (Sampled=0 when the sampled flag is clear). This is the mapping AWS uses
// between W3C and X-Ray ids (the OpenTelemetry X-Ray propagator and the
// X-Ray SDKs): the 128-bit trace id is the same number, X-Ray just writes its
// first 32 bits (the epoch seconds of an X-Ray id) apart; the span id is the
// X-Ray segment id unchanged. See NewXRayCompatibleTraceId.
std::string ToXRayHeader(const TraceContext& context);

}  // namespace cbpipe
