// The queue port: a durable, at-least-once message queue with a visibility
// timeout, a receive count and a dead-letter queue (DESIGN.md §6, §8). The
// embedded adapter is SqliteQueue (sqlite_queue.h); an SQS adapter will
// implement the same interface, so the semantics and limits are SQS's.
//
//   auto q = SqliteQueue::Open("/var/lib/cbpipe/state.db", "inputs", {});
//   CBPIPE_RETURN_IF_ERROR((*q)->Send(R"({"key":"raw/a.csv"})").status());
//   CBPIPE_ASSIGN_OR_RETURN(auto batch, (*q)->Receive(10, 60'000, 20'000));
//   for (const Message& m : batch) {
//     Status done = Process(m);
//     if (done.ok()) {
//       CBPIPE_RETURN_IF_ERROR((*q)->Delete(m.receipt));
//     } else if (!done.IsTransient()) {
//       CBPIPE_RETURN_IF_ERROR((*q)->MoveToDeadLetter(m.receipt,
//                                                     done.ToString()));
//     }  // else: left alone, it becomes visible again after 60 s
//   }
//
// Delivery is at least once: a message whose visibility timeout runs out
// before it is deleted is received again, so consumers must be idempotent.
// While a message is in flight (received, not yet visible again) no other
// receiver gets it. Order is roughly first-available first-out, not strict
// FIFO.
//
// Errors (every method): kInvalidArgument for arguments outside the limits
// below; kUnavailable when the store is busy or unreachable (retry);
// kDataLoss for a corrupt store; kInternal for anything unexpected.
//
// Thread safety: every method may be called from several threads at once.
// Ownership: results are plain values owned by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace cbpipe {

// Limits every adapter enforces. They are SQS's, so code that runs against
// the embedded queue keeps running against SQS.
inline constexpr int kMaxReceiveMessages = 10;  // per Receive
inline constexpr int kMaxBatchEntries = 10;     // SendBatch, DeleteBatch
inline constexpr int kMaxAttributes = 10;       // per message
inline constexpr size_t kMaxMessageBytes = 256 * 1024;  // body + attributes
inline constexpr int64_t kMaxVisibilityMs = 12 * 3600 * 1000;
inline constexpr int64_t kMaxDelayMs = 15 * 60 * 1000;
inline constexpr int64_t kMaxWaitMs = 20 * 1000;
inline constexpr int kMaxReceiveCountLimit = 1000;  // for max_receive_count

struct OutgoingMessage {
  std::string body;  // any bytes
  // Names: 1-256 of [A-Za-z0-9_.-]; values: valid UTF-8 (e.g. "traceparent").
  std::map<std::string, std::string> attributes;
  int64_t delay_ms = 0;  // 0..kMaxDelayMs; invisible until then
  // Idempotent send (SQS FIFO's MessageDeduplicationId), up to 128 chars:
  // while a message with the same non-empty dedup_id is in the queue (not
  // yet deleted, dead-lettered or purged), sending it again stores nothing
  // and returns the id of the message already there.
  std::string dedup_id{};
};

struct Message {
  std::string id;  // assigned by Send; stable across redrives
  std::string body;
  std::string receipt;     // this receive's handle; empty in a DeadLetter
  int receive_count = 0;   // including this receive
  int64_t sent_at_ms = 0;  // epoch ms
  int64_t first_received_at_ms = 0;  // epoch ms; 0 if never received
  std::map<std::string, std::string> attributes;
};

struct DeadLetter {
  Message message;     // receive_count as it was when moved
  std::string reason;  // why it was moved: the last error, or the count
  int64_t moved_at_ms = 0;
};

struct QueueStats {
  int64_t visible = 0;    // receivable now
  int64_t in_flight = 0;  // received, visibility timeout running
  int64_t delayed = 0;    // sent with a delay that has not elapsed
  int64_t dead_letters = 0;
  int64_t oldest_age_ms = 0;  // now - sent_at of the oldest message; 0 if none
};

class Queue {
 public:
  virtual ~Queue() = default;

  // Sends 1..kMaxBatchEntries messages in one durable write: all are stored
  // or none. Returns their ids in order (for a message deduplicated by its
  // dedup_id, the id of the one already queued). A message is durable (survives
  // a crash or kill -9) when this returns OK.
  virtual StatusOr<std::vector<std::string>> SendBatch(
      const std::vector<OutgoingMessage>& messages) = 0;

  // A convenience for SendBatch of one message. Returns the message id.
  StatusOr<std::string> Send(
      std::string_view body,
      const std::map<std::string, std::string>& attributes = {},
      int64_t delay_ms = 0, std::string_view dedup_id = "");

  // Receives up to max_messages (1..kMaxReceiveMessages) visible messages and
  // hides each for visibility_ms (0..kMaxVisibilityMs). Each receive
  // increments receive_count and issues a new receipt, which invalidates the
  // previous one. A message that would be received more than
  // max_receive_count times is moved to the dead-letter queue instead of being
  // returned. With wait_ms > 0 (long polling, up to kMaxWaitMs) blocks until
  // at least one message is available or wait_ms has passed; an empty result
  // is not an error.
  virtual StatusOr<std::vector<Message>> Receive(int max_messages,
                                                 int64_t visibility_ms,
                                                 int64_t wait_ms = 0) = 0;

  // Deletes 1..kMaxBatchEntries messages by receipt in one durable write.
  // Returns one Status per receipt, in order: OK, or kNotFound for a stale
  // receipt: the message was received again (by anyone) or deleted, moved or
  // purged since. Deleting with the latest receipt succeeds even if the
  // visibility timeout has run out, as long as nobody received it again.
  // Do not retry a kNotFound: someone else owns the message now.
  virtual StatusOr<std::vector<Status>> DeleteBatch(
      const std::vector<std::string>& receipts) = 0;

  // A convenience for DeleteBatch of one receipt.
  Status Delete(std::string_view receipt);

  // Hides the message for visibility_ms (0..kMaxVisibilityMs) from now,
  // extending or shortening its timeout; 0 makes it visible at once.
  // kNotFound for a stale receipt; kFailedPrecondition if the message is not
  // in flight any more (its timeout ran out), as SQS does.
  virtual Status ChangeVisibility(std::string_view receipt,
                                  int64_t visibility_ms) = 0;

  // Moves the message received with `receipt` to the dead-letter queue at
  // once, keeping `reason` (e.g. a permanent error). kNotFound if stale.
  virtual Status MoveToDeadLetter(std::string_view receipt,
                                  std::string_view reason) = 0;

  // Approximate counts (exact for the SQLite adapter, at one instant).
  virtual StatusOr<QueueStats> Stats() = 0;

  // Deletes every message of the queue, in flight or not; dead letters stay.
  // Returns how many were deleted.
  virtual StatusOr<int64_t> Purge() = 0;

  // Dead letters, ordered by message id (which grows with the send time).
  // Pages: pass the id of the last one seen as after_id; an after_id that no
  // longer exists still works. limit: 1..1000.
  virtual StatusOr<std::vector<DeadLetter>> ListDeadLetters(
      int limit, std::string_view after_id = "") = 0;
  // kNotFound if there is no dead letter with this id.
  virtual StatusOr<DeadLetter> GetDeadLetter(std::string_view id) = 0;
  // Moves a dead letter back to the queue, visible at once, with its id,
  // body, attributes and sent time, and receive_count reset to 0. kNotFound
  // if there is no dead letter with this id.
  virtual Status Redrive(std::string_view dead_letter_id) = 0;
  // Redrives every dead letter of the queue; returns how many.
  virtual StatusOr<int64_t> RedriveAll() = 0;
  // Deletes every dead letter of the queue; returns how many.
  virtual StatusOr<int64_t> PurgeDeadLetters() = 0;
};

inline StatusOr<std::string> Queue::Send(
    std::string_view body, const std::map<std::string, std::string>& attributes,
    int64_t delay_ms, std::string_view dedup_id) {
  std::vector<OutgoingMessage> one(1);
  one[0].dedup_id = std::string(dedup_id);
  one[0].body = std::string(body);
  one[0].attributes = attributes;
  one[0].delay_ms = delay_ms;
  CBPIPE_ASSIGN_OR_RETURN(std::vector<std::string> ids, SendBatch(one));
  return std::move(ids[0]);
}

inline Status Queue::Delete(std::string_view receipt) {
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Status> results,
                          DeleteBatch({std::string(receipt)}));
  return results[0];
}

}  // namespace cbpipe
