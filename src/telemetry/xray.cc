#include "telemetry/xray.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "domain/pan.h"

namespace cbpipe {
namespace {

using ojson = nlohmann::ordered_json;

constexpr char kDatagramHeader[] = "{\"format\":\"json\",\"version\":1}\n";
// Free text (messages, URLs, annotation values) is cut to this; names to
// X-Ray's 200 characters.
constexpr size_t kMaxText = 4096;
constexpr size_t kMaxName = 200;

thread_local const XRaySpan* g_current_span = nullptr;

double NowSeconds() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count() /
         1e6;
}

// Masked, then cut to `max` bytes without splitting a UTF-8 sequence.
std::string Text(std::string_view text, size_t max = kMaxText) {
  std::string out = MaskCardNumbers(text);
  if (out.size() > max) {
    size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
      --cut;
    out.resize(cut);
  }
  return out;
}

// scheme://host/path of `url`: the query (a presigned URL's
// X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token), the fragment
// and any user:password@ are left out.
std::string UrlWithoutSecrets(std::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = url.find("://");
  const size_t host = scheme == std::string_view::npos ? 0 : scheme + 3;
  const size_t path = url.find('/', host);
  const size_t at = url.substr(0, path).rfind('@');
  std::string out;
  if (at != std::string_view::npos && at >= host) {
    out.append(url.substr(0, host));
    out.append(url.substr(at + 1));
  } else {
    out.append(url);
  }
  return out;
}

bool ValidAnnotationKey(std::string_view key) {
  if (key.empty() || key.size() > 500) return false;
  for (char c : key) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
      return false;
  }
  return true;
}

// A caller's mistake (X-Ray "error", 4xx) rather than a failure of the
// system (X-Ray "fault", 5xx).
bool IsClientError(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kPermissionDenied:
    case StatusCode::kUnauthenticated: return true;
    default: return false;
  }
}

StatusOr<int> ParsePort(std::string_view text, std::string_view whole) {
  int port = 0;
  if (text.empty() || text.size() > 5) {
    return InvalidArgumentError("X-Ray daemon address \"" + std::string(whole) +
                                "\": port must be 1-65535");
  }
  for (char c : text) {
    if (c < '0' || c > '9') {
      return InvalidArgumentError("X-Ray daemon address \"" +
                                  std::string(whole) +
                                  "\": port must be 1-65535");
    }
    port = port * 10 + (c - '0');
  }
  if (port < 1 || port > 65535) {
    return InvalidArgumentError("X-Ray daemon address \"" + std::string(whole) +
                                "\": port must be 1-65535");
  }
  return port;
}

// "host:port" or "[v6]:port".
Status ParseHostPort(std::string_view text, std::string_view whole,
                     std::string* host, int* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgumentError("X-Ray daemon address \"" + std::string(whole) +
                                "\": expected host:port");
  }
  std::string_view h = text.substr(0, colon);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') {
      return InvalidArgumentError("X-Ray daemon address \"" +
                                  std::string(whole) +
                                  "\": unclosed [ in the host");
    }
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    return InvalidArgumentError("X-Ray daemon address \"" + std::string(whole) +
                                "\": an IPv6 host needs [brackets]");
  }
  CBPIPE_ASSIGN_OR_RETURN(*port, ParsePort(text.substr(colon + 1), whole));
  *host = std::string(h);
  return OkStatus();
}

}  // namespace

StatusOr<XRayDaemonAddress> ParseXRayDaemonAddress(std::string_view text) {
  XRayDaemonAddress address;
  std::vector<std::string_view> parts;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(' ', at);
    if (end == std::string_view::npos) end = text.size();
    if (end > at) parts.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  if (parts.empty()) {
    return InvalidArgumentError("X-Ray daemon address is empty");
  }
  if (parts.size() == 1 && !parts[0].starts_with("udp:") &&
      !parts[0].starts_with("tcp:")) {
    CBPIPE_RETURN_IF_ERROR(
        ParseHostPort(parts[0], text, &address.udp_host, &address.udp_port));
    address.tcp_host = address.udp_host;
    address.tcp_port = address.udp_port;
    return address;
  }
  if (parts.size() != 2) {
    return InvalidArgumentError(
        "X-Ray daemon address \"" + std::string(text) +
        "\": expected host:port or \"udp:host:port tcp:host:port\"");
  }
  for (std::string_view part : parts) {
    if (part.starts_with("udp:") && address.udp_port == 0) {
      CBPIPE_RETURN_IF_ERROR(ParseHostPort(
          part.substr(4), text, &address.udp_host, &address.udp_port));
    } else if (part.starts_with("tcp:") && address.tcp_port == 0) {
      CBPIPE_RETURN_IF_ERROR(ParseHostPort(
          part.substr(4), text, &address.tcp_host, &address.tcp_port));
    } else {
      return InvalidArgumentError(
          "X-Ray daemon address \"" + std::string(text) +
          "\": expected one udp:host:port and one tcp:host:port");
    }
  }
  return address;
}

std::string XRayTraceId(const TraceId& id) {
  const std::string hex = id.ToHex();
  return "1-" + hex.substr(0, 8) + "-" + hex.substr(8);
}

StatusOr<TraceId> TraceIdFromXRay(std::string_view xray_id) {
  if (xray_id.size() != 35 || !xray_id.starts_with("1-") ||
      xray_id[10] != '-') {
    return InvalidArgumentError("X-Ray trace id is not 1-<8 hex>-<24 hex>");
  }
  std::string hex(xray_id.substr(2, 8));
  hex.append(xray_id.substr(11));
  return TraceId::FromHex(hex);
}

XRayTraceHeader ParseXRayTraceHeader(std::string_view header) {
  XRayTraceHeader out;
  size_t start = 0;
  while (start <= header.size()) {
    size_t end = header.find(';', start);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = header.substr(start, end - start);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.starts_with("Root=")) out.root = std::string(part.substr(5));
    if (part.starts_with("Parent=")) out.parent = std::string(part.substr(7));
    if (part == "Sampled=1") out.sampled = true;
    start = end + 1;
  }
  return out;
}

XRayOptions ResolveXRayOptions(XRayOptions options,
                               char* (*getenv)(const char*)) {
  if (const char* on = getenv("AWS_XRAY_SDK_ENABLED")) {
    std::string_view v(on);
    if (v == "true" || v == "1") options.enabled = true;
    if (v == "false" || v == "0") options.enabled = false;
  }
  if (options.daemon_address.empty()) {
    const char* address = getenv("AWS_XRAY_DAEMON_ADDRESS");
    options.daemon_address =
        address && *address ? address : kXRayDefaultDaemonAddress;
  }
  return options;
}

// --- XRaySpan ---------------------------------------------------------------

struct XRaySpan::Fields {
  std::string name;
  bool aws_namespace = false;
  bool sampled = true;
  double start_time = 0;
  std::vector<std::pair<std::string, std::string>> annotations;
  bool error = false, fault = false, throttle = false;
  std::string cause_type, cause_message;
  std::string operation, region, request_id;
  std::string method, url;
  int http_status = 0;
};

XRaySpan::XRaySpan(XRaySpan&& other) noexcept
    : tracer_(std::exchange(other.tracer_, nullptr)),
      id_(std::move(other.id_)),
      trace_id_(std::move(other.trace_id_)),
      parent_id_(std::move(other.parent_id_)),
      registered_key_(std::move(other.registered_key_)),
      fields_(std::move(other.fields_)) {}

XRaySpan::XRaySpan() = default;
XRaySpan::~XRaySpan() { End(); }

XRaySpan& XRaySpan::operator=(XRaySpan&& other) noexcept {
  if (this != &other) {
    End();
    tracer_ = std::exchange(other.tracer_, nullptr);
    id_ = std::move(other.id_);
    trace_id_ = std::move(other.trace_id_);
    parent_id_ = std::move(other.parent_id_);
    registered_key_ = std::move(other.registered_key_);
    fields_ = std::move(other.fields_);
  }
  return *this;
}

std::string XRaySpan::TraceHeader() const {
  if (!tracer_) return "";
  return "Root=" + trace_id_ + ";Parent=" + id_ +
         (fields_->sampled ? ";Sampled=1" : ";Sampled=0");
}

XRaySpan XRaySpan::BeginSubsegment(std::string_view name, bool aws) const {
  XRaySpan child;
  if (!tracer_) return child;
  child.tracer_ = tracer_;
  child.id_ = NewSpanId().ToHex();
  child.trace_id_ = trace_id_;
  child.parent_id_ = id_;
  child.fields_ = std::make_unique<Fields>();
  child.fields_->name = Text(name, kMaxName);
  child.fields_->aws_namespace = aws;
  child.fields_->start_time = NowSeconds();
  return child;
}

void XRaySpan::Annotate(std::string_view key, std::string_view value) {
  if (!tracer_ || !ValidAnnotationKey(key)) return;
  for (auto& [k, v] : fields_->annotations) {
    if (k == key) {
      v = Text(value);
      return;
    }
  }
  fields_->annotations.emplace_back(std::string(key), Text(value));
}

void XRaySpan::SetStatus(const Status& status) {
  if (!tracer_ || status.ok()) return;
  if (IsClientError(status.code())) {
    fields_->error = true;
  } else {
    fields_->fault = true;
  }
  fields_->cause_type = std::string(StatusCodeName(status.code()));
  fields_->cause_message = Text(status.message());
}

void XRaySpan::SetAws(std::string_view operation, std::string_view region,
                      std::string_view request_id) {
  if (!tracer_) return;
  if (!operation.empty()) fields_->operation = Text(operation, kMaxName);
  if (!region.empty()) fields_->region = Text(region, kMaxName);
  if (!request_id.empty()) fields_->request_id = Text(request_id, kMaxName);
}

void XRaySpan::SetHttp(std::string_view method, std::string_view url,
                       int status) {
  if (!tracer_) return;
  fields_->method = Text(method, kMaxName);
  fields_->url = Text(UrlWithoutSecrets(url));
  fields_->http_status = status;
  if (status == 429) fields_->throttle = true;
  if (status >= 400 && status < 500) fields_->error = true;
  if (status >= 500) fields_->fault = true;
}

void XRaySpan::End() {
  if (!tracer_) return;
  XRayTracer* tracer = std::exchange(tracer_, nullptr);
  const Fields& f = *fields_;
  ojson doc = ojson::object();
  doc["name"] = f.name;
  doc["id"] = id_;
  doc["trace_id"] = trace_id_;
  if (!parent_id_.empty()) {
    doc["type"] = "subsegment";
    doc["parent_id"] = parent_id_;
  }
  doc["start_time"] = f.start_time;
  doc["end_time"] = std::max(f.start_time, NowSeconds());
  if (f.aws_namespace) doc["namespace"] = "aws";
  if (f.error) doc["error"] = true;
  if (f.throttle) doc["throttle"] = true;
  if (f.fault) doc["fault"] = true;
  if (!f.cause_type.empty()) {
    doc["cause"] = {
        {"exceptions", ojson::array({{{"id", NewSpanId().ToHex()},
                                      {"type", f.cause_type},
                                      {"message", f.cause_message}}})}};
  }
  if (!f.method.empty() || f.http_status != 0) {
    ojson http = ojson::object();
    http["request"] = {{"method", f.method}, {"url", f.url}};
    if (f.http_status != 0) http["response"] = {{"status", f.http_status}};
    doc["http"] = std::move(http);
  }
  if (!f.operation.empty() || !f.region.empty() || !f.request_id.empty()) {
    ojson aws = ojson::object();
    if (!f.operation.empty()) aws["operation"] = f.operation;
    if (!f.region.empty()) aws["region"] = f.region;
    if (!f.request_id.empty()) aws["request_id"] = f.request_id;
    doc["aws"] = std::move(aws);
  }
  if (!f.annotations.empty()) {
    ojson annotations = ojson::object();
    for (const auto& [k, v] : f.annotations) annotations[k] = v;
    doc["annotations"] = std::move(annotations);
  }
  auto dump = [](const ojson& d) {
    return d.dump(-1, ' ', false, ojson::error_handler_t::replace);
  };
  std::string text = dump(doc);
  if (text.size() + sizeof(kDatagramHeader) - 1 > kXRayMaxDatagramBytes) {
    // Only the annotations can be long enough (every text is capped).
    doc["annotations"] = {{"trimmed", true}};
    text = dump(doc);
  }
  tracer->Send(text);
  if (!registered_key_.empty()) tracer->Unregister(registered_key_, id_);
  fields_.reset();
}

// --- XRayTracer -------------------------------------------------------------

StatusOr<std::unique_ptr<XRayTracer>> XRayTracer::Create(
    const XRayOptions& options) {
  std::unique_ptr<XRayTracer> tracer(new XRayTracer());
  tracer->service_name_ = Text(options.service_name, kMaxName);
  if (!options.enabled) return tracer;
  const std::string address_text = options.daemon_address.empty()
                                       ? kXRayDefaultDaemonAddress
                                       : options.daemon_address;
  CBPIPE_ASSIGN_OR_RETURN(XRayDaemonAddress address,
                          ParseXRayDaemonAddress(address_text));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.udp_port);
  int rc =
      ::getaddrinfo(address.udp_host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0 || !found) {
    return InvalidArgumentError("X-Ray daemon address \"" + address_text +
                                "\": " + ::gai_strerror(rc));
  }
  int fd =
      ::socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    const int err = errno;
    ::freeaddrinfo(found);
    return Status(StatusCode::kUnavailable,
                  std::string("X-Ray socket: ") + std::strerror(err));
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(found->ai_addr);
  tracer->address_.assign(bytes, bytes + found->ai_addrlen);
  tracer->address_len_ = static_cast<unsigned>(found->ai_addrlen);
  ::freeaddrinfo(found);
  tracer->fd_ = fd;
  return tracer;
}

XRayTracer::~XRayTracer() {
  if (fd_ >= 0) ::close(fd_);
}

XRaySpan XRayTracer::BeginSegment(const TraceId& trace, std::string_view name,
                                  std::string_view key) {
  XRaySpan span;
  if (fd_ < 0 || !trace.IsValid()) return span;
  span.tracer_ = this;
  span.id_ = NewSpanId().ToHex();
  span.trace_id_ = XRayTraceId(trace);
  span.fields_ = std::make_unique<XRaySpan::Fields>();
  span.fields_->name = name.empty() ? service_name_ : Text(name, kMaxName);
  span.fields_->start_time = NowSeconds();
  ojson doc = {{"name", span.fields_->name},
               {"id", span.id_},
               {"trace_id", span.trace_id_},
               {"start_time", span.fields_->start_time},
               {"in_progress", true}};
  Send(doc.dump(-1, ' ', false, ojson::error_handler_t::replace));
  if (!key.empty()) {
    span.registered_key_ = std::string(key);
    std::lock_guard<std::mutex> lock(mu_);
    open_[span.registered_key_] = {span.trace_id_, span.id_};
  }
  return span;
}

XRaySpan XRayTracer::BeginSubsegmentUnder(const XRayTraceHeader& header,
                                          std::string_view name) {
  XRaySpan span;
  if (fd_ < 0 || !header.sampled || !TraceIdFromXRay(header.root).ok() ||
      header.parent.size() != 16 ||
      header.parent.find_first_not_of("0123456789abcdef") != std::string::npos)
    return span;
  span.tracer_ = this;
  span.id_ = NewSpanId().ToHex();
  span.trace_id_ = header.root;
  span.parent_id_ = header.parent;
  span.fields_ = std::make_unique<XRaySpan::Fields>();
  span.fields_->name = Text(name, kMaxName);
  span.fields_->start_time = NowSeconds();
  return span;
}

XRaySpan XRayTracer::BeginSubsegmentOf(std::string_view key,
                                       std::string_view name) {
  XRaySpan span;
  if (fd_ < 0) return span;
  std::pair<std::string, std::string> parent;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = open_.find(key);
    if (it == open_.end()) return span;
    parent = it->second;
  }
  return BeginSubsegmentUnder(
      XRayTraceHeader{std::move(parent.first), std::move(parent.second), true},
      name);
}

void XRayTracer::Unregister(const std::string& key, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(key);
  if (it != open_.end() && it->second.second == id) open_.erase(it);
}

void XRayTracer::Send(const std::string& document) {
  if (fd_ < 0) return;
  std::string datagram = kDatagramHeader;
  datagram += document;
  if (datagram.size() > kXRayMaxDatagramBytes) {
    dropped_.fetch_add(1);
    return;
  }
  ssize_t n = ::sendto(fd_, datagram.data(), datagram.size(), MSG_DONTWAIT,
                       reinterpret_cast<const sockaddr*>(address_.data()),
                       static_cast<socklen_t>(address_len_));
  if (n == static_cast<ssize_t>(datagram.size())) {
    sent_.fetch_add(1);
  } else {
    dropped_.fetch_add(1);
  }
}

// --- current span -----------------------------------------------------------

XRayCurrentScope::XRayCurrentScope(const XRaySpan* span)
    : previous_(g_current_span) {
  g_current_span = span;
}

XRayCurrentScope::~XRayCurrentScope() { g_current_span = previous_; }

const XRaySpan* CurrentXRaySpan() { return g_current_span; }

XRaySpan XRayBeginAwsCall(std::string_view service, std::string_view operation,
                          std::string_view region) {
  const XRaySpan* current = CurrentXRaySpan();
  if (!current) return XRaySpan();
  XRaySpan call = current->BeginSubsegment(service, /*aws=*/true);
  call.SetAws(operation, region);
  return call;
}

}  // namespace cbpipe
