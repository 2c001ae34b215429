// The SQS adapter of the queue port (queue.h), over the JSON protocol of
// AwsClient (aws/client.h). The dead-letter queue is the one the queue's
// RedrivePolicy names: SQS itself moves a message there after
// maxReceiveCount receives.
//
//   SqsQueueOptions options;
//   options.create_if_missing = true;   // NAME and NAME-dlq (tests, bench)
//   options.max_receive_count = 5;      // only used when creating
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<SqsQueue> q,
//                           SqsQueue::Open(aws, "raw-events", options));
//   CBPIPE_RETURN_IF_ERROR(q->Send(R"({"key":"raw/a.csv"})").status());
//
// `queue` is a queue name ("raw-events", "jobs.fifo") or a queue URL
// ("https://sqs.eu-west-1.amazonaws.com/123456789012/raw-events").
//
// How the port maps onto SQS (docs/aws.md, "SQS queue"):
// - SendBatch is SendMessageBatch: SQS stores entries one by one, so when
//   SQS rejects some entries the call fails with the first entry's error
//   although the others were queued (at-least-once: consumers are
//   idempotent anyway). Delays and visibility timeouts are whole seconds,
//   rounded up.
// - dedup_id: standard queues have no deduplication, so it is ignored and
//   the run store's claim is the guard against a double run; a FIFO queue
//   (name ending ".fifo") gets it as MessageDeduplicationId (5 minutes, as
//   SQS keeps it) and one message group.
// - Bodies that SQS cannot carry (invalid UTF-8, control characters) are
//   sent in base64 and decoded on receive. The adapter keeps its own data
//   (original id and sent time across redrives, dead-letter reason) in one
//   message attribute "cbpipe", so such messages can carry at most
//   kMaxAttributes - 1 attributes of their own.
// - A stale receipt: SQS accepts a delete with an older receipt of a
//   message nobody deleted yet (moto too), so Delete is kNotFound only when
//   SQS says ReceiptHandleIsInvalid.
// - MoveToDeadLetter needs the message's body: it works for messages
//   received through this instance (kFailedPrecondition otherwise); it sends
//   the message to the dead-letter queue, then deletes it here.
// - Dead-letter listing (ListDeadLetters, GetDeadLetter, Redrive): SQS has
//   no browse operation, so the dead-letter queue is received in full with
//   a 30 s visibility timeout, then released (visibility 0). The listed
//   receive_count of a message SQS moved includes earlier listings; moved_at
//   is 0 for those. Ids are SQS message ids (not ordered by time).
// - Stats: ApproximateNumberOf* attributes; oldest_age_ms is always 0
//   (SQS publishes it as a CloudWatch metric only). Purge is PurgeQueue
//   (once a minute on AWS) and returns the approximate count before.
//
// Errors: as queue.h, plus what AwsClient maps (kNotFound for a missing
// queue, kUnauthenticated, kPermissionDenied, kUnavailable after retries).
// kFailedPrecondition for a dead-letter operation on a queue without a
// RedrivePolicy.
//
// Thread safety: every method may be called from several threads at once.
// Ownership: shares the AwsClient.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client.h"
#include "common/status.h"
#include "queue/queue.h"

namespace cbpipe {

struct SqsQueueOptions {
  // Creates the queue (and, with max_receive_count > 0, NAME-dlq as its
  // dead-letter queue) when it does not exist. Off in production: queues
  // are infrastructure.
  bool create_if_missing = false;
  int max_receive_count = 5;  // the created RedrivePolicy's maxReceiveCount
};

class SqsQueue final : public Queue {
 public:
  // Resolves the queue URL and its dead-letter queue. kNotFound when the
  // queue does not exist (and create_if_missing is off).
  static StatusOr<std::unique_ptr<SqsQueue>> Open(
      std::shared_ptr<AwsClient> aws, std::string_view queue,
      SqsQueueOptions options = {});

  const std::string& name() const { return name_; }
  const std::string& url() const { return url_; }
  // "" when the queue has no RedrivePolicy.
  const std::string& dead_letter_url() const { return dlq_url_; }
  int max_receive_count() const { return max_receive_count_; }

  StatusOr<std::vector<std::string>> SendBatch(
      const std::vector<OutgoingMessage>& messages) override;
  StatusOr<std::vector<Message>> Receive(int max_messages,
                                         int64_t visibility_ms,
                                         int64_t wait_ms = 0) override;
  StatusOr<std::vector<Status>> DeleteBatch(
      const std::vector<std::string>& receipts) override;
  Status ChangeVisibility(std::string_view receipt,
                          int64_t visibility_ms) override;
  Status MoveToDeadLetter(std::string_view receipt,
                          std::string_view reason) override;
  StatusOr<QueueStats> Stats() override;
  StatusOr<int64_t> Purge() override;
  StatusOr<std::vector<DeadLetter>> ListDeadLetters(
      int limit, std::string_view after_id = "") override;
  StatusOr<DeadLetter> GetDeadLetter(std::string_view id) override;
  Status Redrive(std::string_view dead_letter_id) override;
  StatusOr<int64_t> RedriveAll() override;
  StatusOr<int64_t> PurgeDeadLetters() override;

  // One received message: the port's view and what a resend needs.
  struct Received {
    Message message;          // id, body and attributes as the port shows them
    std::string reason;       // dead letters: why moved
    int64_t moved_at_ms = 0;  // dead letters moved by this adapter
    int64_t delay_seconds = 0;  // sending only
    std::string dedup_id;       // sending only (FIFO queues)
  };

 private:
  SqsQueue(std::shared_ptr<AwsClient> aws, std::string name, std::string url);

  StatusOr<std::string> Call(std::string_view action, const std::string& json,
                             std::string_view resource,
                             AwsError* error = nullptr);
  StatusOr<std::vector<Received>> ReceiveFrom(const std::string& url,
                                              int max_messages,
                                              int64_t visibility_seconds,
                                              int64_t wait_seconds);
  Status SendRaw(const std::string& url, const std::vector<Received>& batch,
                 std::vector<std::string>* ids);
  StatusOr<std::vector<Status>> DeleteFrom(
      const std::string& url, const std::vector<std::string>& receipts);
  // Every dead letter, received and hidden; Release shows them again.
  StatusOr<std::vector<Received>> CollectDeadLetters();
  void Release(const std::vector<Received>& held);
  Status RequireDeadLetterQueue() const;
  StatusOr<std::map<std::string, int64_t>> Counts(const std::string& url);

  void Remember(const Received& r);
  bool Forget(std::string_view receipt, Received* out);

  const std::shared_ptr<AwsClient> aws_;
  const std::string name_;
  const std::string url_;
  std::string dlq_url_;  // set by Open
  int max_receive_count_ = 0;
  bool fifo_ = false;

  std::mutex mu_;  // guards in_flight_, in_flight_order_
  std::map<std::string, Received, std::less<>> in_flight_;  // by receipt
  std::deque<std::string> in_flight_order_;  // oldest first, for the cap
};

}  // namespace cbpipe
