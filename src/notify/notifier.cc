#include "notify/notifier.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <utility>

#include "domain/pan.h"

namespace cbpipe {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }

// "2024-05-01T12:00:00.000Z"; the epoch for times gmtime cannot represent.
std::string FormatTimeMs(int64_t time_ms) {
  int64_t seconds = time_ms / 1000;
  int64_t millis = time_ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "1970-01-01T00:00:00.000Z";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(millis));
  return buf;
}

}  // namespace

const std::vector<std::string_view>& EventTypes() {
  static const std::vector<std::string_view> kTypes = {
      kEventBatchDelivered, kEventBatchFailed, kEventDeliveryFailed,
      kEventDeadletterAdded, kEventInputRejected};
  return kTypes;
}

bool IsKnownEventType(std::string_view type) {
  for (std::string_view t : EventTypes()) {
    if (t == type) return true;
  }
  return false;
}

bool IsTraceparent(std::string_view v) {
  // 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
  if (v.size() != 55 || v.substr(0, 3) != "00-" || v[35] != '-' ||
      v[52] != '-') {
    return false;
  }
  auto hex_run = [&](size_t from, size_t n, bool nonzero) {
    bool any_nonzero = false;
    for (size_t k = from; k < from + n; ++k) {
      if (!IsLowerHex(v[k])) return false;
      if (v[k] != '0') any_nonzero = true;
    }
    return !nonzero || any_nonzero;
  };
  return hex_run(3, 32, true) && hex_run(36, 16, true) && hex_run(53, 2, false);
}

std::string EventJson(const Event& e) {
  try {
    nlohmann::ordered_json j;
    j["schema"] = "cbpipe.event.v1";
    j["type"] = e.type;
    j["time"] = FormatTimeMs(e.time_ms);
    j["time_ms"] = e.time_ms;
    j["run_id"] = e.run_id;
    j["batch_id"] = e.batch_id;
    j["destination"] = e.destination;
    j["trace_id"] = e.trace_id;
    nlohmann::ordered_json counts = nlohmann::ordered_json::object();
    for (const auto& [k, v] : e.counts) counts[k] = v;
    j["counts"] = std::move(counts);
    nlohmann::ordered_json totals = nlohmann::ordered_json::object();
    for (const auto& [k, v] : e.totals) totals[k] = v;
    j["totals"] = std::move(totals);
    j["message"] = MaskCardNumbers(e.message);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (...) {
    // Only allocation failure can get here.
    return R"({"schema":"cbpipe.event.v1","error":"event not serializable"})";
  }
}

FanoutNotifier::FanoutNotifier(std::vector<std::unique_ptr<Notifier>> n)
    : notifiers_(std::move(n)) {}

void FanoutNotifier::Notify(const Event& event) {
  for (auto& n : notifiers_) n->Notify(event);
}

Status FanoutNotifier::Flush(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Status first;
  for (auto& n : notifiers_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    Status s = n->Flush(std::max(left, std::chrono::milliseconds(0)));
    if (!s.ok() && first.ok()) first = std::move(s);
  }
  return first;
}

FilteredNotifier::FilteredNotifier(std::set<std::string> types,
                                   std::unique_ptr<Notifier> inner)
    : types_(std::move(types)), inner_(std::move(inner)) {}

void FilteredNotifier::Notify(const Event& event) {
  if (types_.empty() || types_.count(event.type) != 0) inner_->Notify(event);
}

Status FilteredNotifier::Flush(std::chrono::milliseconds timeout) {
  return inner_->Flush(timeout);
}

}  // namespace cbpipe
