#include "telemetry/trace.h"

#include <sys/random.h>

#include <cerrno>
#include <cstddef>
#include <random>

namespace cbpipe {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

template <size_t N>
std::string BytesToHex(const std::array<uint8_t, N>& bytes) {
  std::string out(2 * N, '0');
  for (size_t i = 0; i < N; ++i) {
    out[2 * i] = kHexDigits[bytes[i] >> 4];
    out[2 * i + 1] = kHexDigits[bytes[i] & 0xf];
  }
  return out;
}

// Lower-case hex only: the W3C grammar is HEXDIGLC.
int LowerHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

template <size_t N>
bool HexToBytes(std::string_view hex, std::array<uint8_t, N>* bytes) {
  if (hex.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    int hi = LowerHexValue(hex[2 * i]);
    int lo = LowerHexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*bytes)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
bool AllZero(const std::array<uint8_t, N>& bytes) {
  for (uint8_t b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

// getrandom(2) is not interrupted for requests this small once the pool is
// initialised; std::random_device covers a kernel without it.
void FillRandom(uint8_t* out, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::getrandom(out + done, n - done, 0);
    if (got > 0) {
      done += static_cast<size_t>(got);
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  if (done < n) {
    thread_local std::random_device device;
    for (; done < n; ++done) out[done] = static_cast<uint8_t>(device());
  }
}

template <size_t N>
void FillNonZero(std::array<uint8_t, N>* bytes, size_t from) {
  do {
    FillRandom(bytes->data() + from, N - from);
  } while (AllZero(*bytes));
}

}  // namespace

bool TraceId::IsValid() const { return !AllZero(bytes); }
std::string TraceId::ToHex() const { return BytesToHex(bytes); }
StatusOr<TraceId> TraceId::FromHex(std::string_view hex) {
  TraceId id;
  if (!HexToBytes(hex, &id.bytes)) {
    return InvalidArgumentError("trace id is not 32 lower-case hex digits");
  }
  if (!id.IsValid()) return InvalidArgumentError("trace id is all zero");
  return id;
}

bool SpanId::IsValid() const { return !AllZero(bytes); }
std::string SpanId::ToHex() const { return BytesToHex(bytes); }
StatusOr<SpanId> SpanId::FromHex(std::string_view hex) {
  SpanId id;
  if (!HexToBytes(hex, &id.bytes)) {
    return InvalidArgumentError("span id is not 16 lower-case hex digits");
  }
  if (!id.IsValid()) return InvalidArgumentError("span id is all zero");
  return id;
}

std::string TraceContext::ToTraceparent() const {
  std::string out = "00-";
  out += trace_id.ToHex();
  out += '-';
  out += span_id.ToHex();
  out += '-';
  out += kHexDigits[flags >> 4];
  out += kHexDigits[flags & 0xf];
  return out;
}

TraceContext TraceContext::NewChild() const {
  TraceContext child = *this;
  child.span_id = NewSpanId();
  return child;
}

TraceId NewTraceId() {
  TraceId id;
  FillNonZero(&id.bytes, 0);
  return id;
}

SpanId NewSpanId() {
  SpanId id;
  FillNonZero(&id.bytes, 0);
  return id;
}

TraceId NewXRayCompatibleTraceId(std::chrono::system_clock::time_point now) {
  auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch())
          .count();
  uint32_t epoch = static_cast<uint32_t>(seconds);
  TraceId id;
  id.bytes[0] = static_cast<uint8_t>(epoch >> 24);
  id.bytes[1] = static_cast<uint8_t>(epoch >> 16);
  id.bytes[2] = static_cast<uint8_t>(epoch >> 8);
  id.bytes[3] = static_cast<uint8_t>(epoch);
  FillNonZero(&id.bytes, 4);
  return id;
}

TraceContext NewTraceContext() {
  TraceContext context;
  context.trace_id = NewTraceId();
  context.span_id = NewSpanId();
  context.flags = kTraceFlagSampled;
  return context;
}

StatusOr<TraceContext> ParseTraceparent(std::string_view header) {
  // version(2) - trace-id(32) - parent-id(16) - flags(2)
  constexpr size_t kV00Size = 55;
  if (header.size() < kV00Size) {
    return InvalidArgumentError("traceparent is shorter than 55 characters");
  }
  std::array<uint8_t, 1> version{};
  if (!HexToBytes(header.substr(0, 2), &version)) {
    return InvalidArgumentError("traceparent version is not 2 lower-case hex");
  }
  if (version[0] == 0xff) {
    return InvalidArgumentError("traceparent version ff is invalid");
  }
  if (version[0] == 0x00 && header.size() != kV00Size) {
    return InvalidArgumentError("traceparent version 00 must be 55 characters");
  }
  if (header.size() > kV00Size && header[kV00Size] != '-') {
    return InvalidArgumentError("traceparent has extra characters");
  }
  if (header[2] != '-' || header[35] != '-' || header[52] != '-') {
    return InvalidArgumentError("traceparent fields are not separated by '-'");
  }
  TraceContext context;
  if (!HexToBytes(header.substr(3, 32), &context.trace_id.bytes)) {
    return InvalidArgumentError(
        "traceparent trace-id is not 32 lower-case hex");
  }
  if (!context.trace_id.IsValid()) {
    return InvalidArgumentError("traceparent trace-id is all zero");
  }
  if (!HexToBytes(header.substr(36, 16), &context.span_id.bytes)) {
    return InvalidArgumentError(
        "traceparent parent-id is not 16 lower-case hex");
  }
  if (!context.span_id.IsValid()) {
    return InvalidArgumentError("traceparent parent-id is all zero");
  }
  std::array<uint8_t, 1> flags{};
  if (!HexToBytes(header.substr(53, 2), &flags)) {
    return InvalidArgumentError("traceparent flags are not 2 lower-case hex");
  }
  context.flags = flags[0];
  return context;
}

std::string ToXRayHeader(const TraceContext& context) {
  std::string trace = context.trace_id.ToHex();
  std::string out = "Root=1-";
  out.append(trace, 0, 8);
  out += '-';
  out.append(trace, 8, 24);
  out += ";Parent=";
  out += context.span_id.ToHex();
  out += context.sampled() ? ";Sampled=1" : ";Sampled=0";
  return out;
}

}  // namespace cbpipe
