// The embedded queue adapter: named queues in one SQLite file.
//
//   QueueOptions options;
//   options.max_receive_count = 5;
//   auto inputs = SqliteQueue::Open("/var/lib/cbpipe/state.db", "inputs",
//                                   options);
//
// One file may hold several queues ("inputs", "deliveries", ...), each with
// its own dead letters. Several SqliteQueue instances, threads and processes
// may share the file: a receive is one BEGIN IMMEDIATE transaction, so a
// message in flight is never handed to a second receiver. The file is in WAL
// mode with synchronous=FULL: a message is on disk when Send returns and
// survives kill -9 or a power cut.
//
// Thread safety: all methods may be called from several threads; they share
// one connection and are serialised by a mutex (open one instance per
// thread for parallel receives). Time comes from QueueOptions::env (epoch
// ms); every process sharing a file must agree on it (the system clock).
// Long polling waits on the steady clock: it wakes at once for a Send on the
// same instance and polls every 50 ms for other instances and processes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "queue/queue.h"

struct sqlite3;

namespace cbpipe {

struct QueueOptions {
  // 1..kMaxReceiveCountLimit: receives allowed before a message is moved to
  // the dead-letter queue. 0 disables dead-lettering (SQS without a redrive
  // policy). Every opener of a queue should pass the same value.
  int max_receive_count = 5;
  // The clock (not owned; must outlive the queue). Tests pass a FakeEnv.
  Env* env = Env::Default();
};

class SqliteQueue final : public Queue {
 public:
  // Opens (creating if needed) the file at `path` and the queue `name`
  // (1-80 of [A-Za-z0-9_-], as in SQS). kFailedPrecondition if the file
  // cannot be opened; kInvalidArgument for a bad name or options.
  static StatusOr<std::unique_ptr<SqliteQueue>> Open(const std::string& path,
                                                     std::string_view name,
                                                     QueueOptions options = {});
  ~SqliteQueue() override;
  SqliteQueue(const SqliteQueue&) = delete;
  SqliteQueue& operator=(const SqliteQueue&) = delete;

  const std::string& name() const { return name_; }

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

 private:
  SqliteQueue(sqlite3* db, std::string name, QueueOptions options);

  int64_t Now() const { return options_.env->NowMs(); }
  Status Exec(const char* sql);
  // Runs `body` between BEGIN IMMEDIATE and COMMIT; rolls back if it fails.
  // Callers hold mu_.
  Status InWriteTransaction(const std::function<Status()>& body);
  // One non-blocking receive attempt. Callers hold mu_.
  StatusOr<std::vector<Message>> ReceiveOnce(int max_messages,
                                             int64_t visibility_ms);
  // Moves the row to the dead letters. Inside a write transaction.
  Status MoveRowToDeadLetter(int64_t rowid, std::string_view reason,
                             int64_t now);

  // SQLite's busy handler: retries a locked file for up to 10 s.
  static int OnBusy(void* self, int attempt);

  std::mutex mu_;
  std::condition_variable sent_;  // a Send on this instance; for long polls
  std::chrono::steady_clock::time_point busy_since_;  // for OnBusy
  sqlite3* db_;
  const std::string name_;
  const QueueOptions options_;
};

}  // namespace cbpipe
