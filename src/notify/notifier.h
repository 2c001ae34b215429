// The notifier port: tells people and systems what a run did.
//
//   Event e;
//   e.type = kEventBatchDelivered;
//   e.run_id = run.id; e.batch_id = batch.id; e.destination = "visa_sftp";
//   e.trace_id = run.traceparent; e.time_ms = clock.NowMs();
//   e.counts = {{"records", 1200}, {"files", 2}};
//   e.totals = {{"EUR", 1234567}};  // minor units
//   notifier->Notify(e);            // returns at once; delivery is async
//   ...
//   notifier->Flush(std::chrono::seconds(10)).IgnoreError();  // at shutdown
//
// What an event may carry: identifiers, counts and amount totals. Never a
// PAN, never a secret: the Event has no field for either, and EventJson
// masks any card number in `message` (MaskCardNumbers, domain/pan.h: first
// 6 and last 4 digits kept) as defence in depth. docs/notifications.md
// documents the JSON and the adapters.
//
// Adapters: LogNotifier (always on), WebhookNotifier (HMAC-signed HTTP
// POST), EmailNotifier (SMTP). FanoutNotifier sends to several;
// FilteredNotifier passes on only chosen event types.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cbpipe {

// The event types (DESIGN.md §7).
inline constexpr std::string_view kEventBatchDelivered = "batch.delivered";
inline constexpr std::string_view kEventBatchFailed = "batch.failed";
inline constexpr std::string_view kEventDeliveryFailed = "delivery.failed";
inline constexpr std::string_view kEventDeadletterAdded = "deadletter.added";
inline constexpr std::string_view kEventInputRejected = "input.rejected";

// All of the above, in that order.
const std::vector<std::string_view>& EventTypes();
bool IsKnownEventType(std::string_view type);

struct Event {
  std::string type;  // one of EventTypes()
  std::string run_id, batch_id, destination;
  std::string trace_id;  // W3C traceparent, "00-<32 hex>-<16 hex>-<2 hex>"
  int64_t time_ms = 0;   // Unix epoch milliseconds
  std::map<std::string, int64_t> counts;  // "records", "rejected", "files"...
  std::map<std::string, int64_t> totals;  // currency -> minor units
  std::string message;                    // one human sentence; no PANs
};

// The event as one line of compact JSON (no trailing newline), keys in this
// fixed order:
//   {"schema":"cbpipe.event.v1","type":...,"time":"2024-05-01T12:00:00.000Z",
//    "time_ms":...,"run_id":...,"batch_id":...,"destination":...,
//    "trace_id":...,"counts":{...},"totals":{...},"message":...}
// Every key is always present ("" and {} when empty); map keys sorted.
// Invalid UTF-8 is replaced with U+FFFD. Never throws.
std::string EventJson(const Event& event);

// True for a well-formed W3C traceparent (version 00, lowercase hex, ids not
// all zero). Adapters put only such a value in a `traceparent` header.
bool IsTraceparent(std::string_view value);

// Thread-safe: Notify and Flush may be called from any thread at any time.
class Notifier {
 public:
  virtual ~Notifier() = default;

  // Hands the event over for delivery. Never blocks for long (no network
  // I/O on the caller's thread), never throws; a failure to deliver is the
  // notifier's to retry, count and log, not the pipeline's.
  virtual void Notify(const Event& event) = 0;

  // Waits until every event handed over before the call has been delivered
  // or given up on, or until `timeout` passes: kDeadlineExceeded then. For
  // shutdown and tests.
  virtual Status Flush(std::chrono::milliseconds timeout) = 0;
};

// Sends each event to every notifier, in order. Flush flushes each within
// the one overall deadline and returns the first error.
class FanoutNotifier : public Notifier {
 public:
  explicit FanoutNotifier(std::vector<std::unique_ptr<Notifier>> notifiers);
  void Notify(const Event& event) override;
  Status Flush(std::chrono::milliseconds timeout) override;

 private:
  std::vector<std::unique_ptr<Notifier>> notifiers_;
};

// Passes on only events whose type is in `types` (empty: all of them); the
// `events = [...]` list of a webhook or email in the config.
class FilteredNotifier : public Notifier {
 public:
  FilteredNotifier(std::set<std::string> types,
                   std::unique_ptr<Notifier> inner);
  void Notify(const Event& event) override;
  Status Flush(std::chrono::milliseconds timeout) override;

 private:
  std::set<std::string> types_;
  std::unique_ptr<Notifier> inner_;
};

// Counters of an asynchronous notifier (webhook, email).
struct NotifierStats {
  uint64_t accepted = 0;   // Notify() calls whose event was queued
  uint64_t delivered = 0;  // events the receiver accepted
  uint64_t failed = 0;     // given up: permanent error or attempts used up
  uint64_t dropped = 0;    // pushed out of a full queue, or still queued at
                           // destruction
  uint64_t attempts = 0;   // sends tried, first attempts and retries
  uint64_t queued = 0;     // waiting now, not counting one being sent
};

}  // namespace cbpipe
