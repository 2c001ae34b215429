#include "queue/sqlite_queue.h"

#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "common/file_mode.h"
#include "common/sqlite_util.h"
#include "queue/queue_limits.h"

namespace cbpipe {
namespace {

// Other processes' sends are not signalled; a long poll looks this often.
constexpr std::chrono::milliseconds kPollInterval(50);

// Busy and locked are what another process holding the write lock for too
// long looks like: worth a retry, unlike a corrupt file.
Status SqlError(sqlite3* db, std::string_view what) {
  std::string msg =
      "queue: " + std::string(what) + ": " + std::string(sqlite3_errmsg(db));
  switch (sqlite3_errcode(db) & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return UnavailableError(std::move(msg));
    case SQLITE_FULL: return ResourceExhaustedError(std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return DataLossError(std::move(msg));
    default: return InternalError(std::move(msg));
  }
}

// Finalises a statement on every path out of a function.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  // A null pointer would bind SQL NULL, so empty values point at "".
  void Text(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.empty() ? "" : s.data(),
                      static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Blob(int i, std::string_view s) {
    sqlite3_bind_blob(stmt_, i, s.empty() ? "" : s.data(),
                      static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::string Column(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}

std::string ColumnBlob(sqlite3_stmt* s, int i) {
  const void* b = sqlite3_column_blob(s, i);
  return b ? std::string(static_cast<const char*>(b),
                         static_cast<size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}

StatusOr<std::string> RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()),
                 static_cast<int>(n)) != 1) {
    return InternalError("queue: RAND_bytes failed");
  }
  return bytes;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

// 128 random bits: a receipt cannot be guessed, so only its receiver can
// delete or extend the message.
StatusOr<std::string> NewReceipt() {
  CBPIPE_ASSIGN_OR_RETURN(std::string bytes, RandomBytes(16));
  return Hex(bytes);
}

// A UUIDv7 (RFC 9562): 48 bits of epoch ms, then random bits. Ids sort by
// send time, which gives dead-letter listings a stable, meaningful order and
// lets a page continue after an id that has since been redriven.
StatusOr<std::string> NewMessageId(int64_t now_ms) {
  CBPIPE_ASSIGN_OR_RETURN(std::string b, RandomBytes(16));
  const uint64_t ms = static_cast<uint64_t>(std::max<int64_t>(now_ms, 0));
  for (int i = 0; i < 6; ++i) b[i] = static_cast<char>(ms >> (40 - 8 * i));
  b[6] = static_cast<char>(0x70 | (b[6] & 0x0f));  // version 7
  b[8] = static_cast<char>(0x80 | (b[8] & 0x3f));  // variant 10
  const std::string h = Hex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" +
         h.substr(16, 4) + "-" + h.substr(20);
}

// JSON, so an operator can read a stuck message with the sqlite3 shell.
std::string EncodeAttributes(const std::map<std::string, std::string>& a) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : a) j[name] = value;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

StatusOr<std::map<std::string, std::string>> DecodeAttributes(
    std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return DataLossError("queue: corrupt attributes: " + std::string(text));
  }
  std::map<std::string, std::string> a;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) {
      return DataLossError("queue: corrupt attribute " + it.key());
    }
    a[it.key()] = it.value().get<std::string>();
  }
  return a;
}

// Reads id, body, attributes, sent_at, first_received_at, receive_count from
// consecutive columns starting at `first`.
Status ReadMessage(sqlite3_stmt* s, int first, Message* m) {
  m->id = Column(s, first);
  m->body = ColumnBlob(s, first + 1);
  CBPIPE_ASSIGN_OR_RETURN(m->attributes,
                          DecodeAttributes(Column(s, first + 2)));
  m->sent_at_ms = sqlite3_column_int64(s, first + 3);
  m->first_received_at_ms = sqlite3_column_int64(s, first + 4);
  m->receive_count = sqlite3_column_int(s, first + 5);
  return OkStatus();
}

constexpr char kDeadLetterColumns[] =
    "SELECT id, body, attributes, sent_at, first_received_at, receive_count,"
    " reason, moved_at FROM queue_dead_letters";

Status ReadDeadLetter(sqlite3_stmt* s, DeadLetter* d) {
  CBPIPE_RETURN_IF_ERROR(ReadMessage(s, 0, &d->message));
  d->reason = Column(s, 6);
  d->moved_at_ms = sqlite3_column_int64(s, 7);
  return OkStatus();
}

}  // namespace

SqliteQueue::SqliteQueue(sqlite3* db, std::string name, QueueOptions options)
    : db_(db), name_(std::move(name)), options_(std::move(options)) {}

SqliteQueue::~SqliteQueue() { sqlite3_close(db_); }

StatusOr<std::unique_ptr<SqliteQueue>> SqliteQueue::Open(
    const std::string& path, std::string_view name, QueueOptions options) {
  if (!ValidQueueName(name)) {
    return InvalidArgumentError("queue: bad queue name: " + std::string(name));
  }
  if (options.max_receive_count < 0 ||
      options.max_receive_count > kMaxReceiveCountLimit) {
    return InvalidArgumentError("queue: max_receive_count out of range: " +
                                std::to_string(options.max_receive_count));
  }
  if (options.env == nullptr) {
    return InvalidArgumentError("queue: no clock (QueueOptions::env)");
  }

  // Messages name inputs: the database is as private as the batches.
  CBPIPE_RETURN_IF_ERROR(RestrictDatabaseFiles(path));
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return FailedPreconditionError("queue " + path + ": " + msg);
  }
  std::unique_ptr<SqliteQueue> q(
      new SqliteQueue(db, std::string(name), std::move(options)));
  sqlite3_busy_handler(db, &SqliteQueue::OnBusy, q.get());
  InstallCommitCrashPoint(db, "queue.commit");
  {
    // WAL lets readers (Stats, listings) run beside a writer, and commits
    // cost one fsync of the log instead of two.
    Stmt wal(db, "PRAGMA journal_mode=WAL");
    if (!wal.ok() || sqlite3_step(wal.get()) != SQLITE_ROW) {
      return SqlError(db, "journal_mode");
    }
    const std::string mode = Column(wal.get(), 0);
    if (mode != "wal" && mode != "memory") {
      return FailedPreconditionError("queue " + path +
                                     ": WAL unavailable, journal mode " + mode);
    }
  }
  // FULL: a message is on disk before Send returns, and a delete or receive
  // is not undone by a power cut.
  CBPIPE_RETURN_IF_ERROR(q->Exec("PRAGMA synchronous=FULL"));
  std::unique_lock<std::mutex> lock(q->mu_);
  CBPIPE_RETURN_IF_ERROR(q->InWriteTransaction([&]() -> Status {
    // receipt is NULL until the first receive; that is how a delayed
    // message is told from one in flight.
    CBPIPE_RETURN_IF_ERROR(
        q->Exec("CREATE TABLE IF NOT EXISTS queue_messages ("
                " queue TEXT NOT NULL,"
                " id TEXT NOT NULL,"
                " body BLOB NOT NULL,"
                " attributes TEXT NOT NULL,"
                " sent_at INTEGER NOT NULL,"
                " visible_at INTEGER NOT NULL,"
                " receipt TEXT UNIQUE,"
                " receive_count INTEGER NOT NULL DEFAULT 0,"
                " first_received_at INTEGER NOT NULL DEFAULT 0,"
                " dedup_id TEXT,"
                " PRIMARY KEY (queue, id))"));
    // Receive walks this index in order (rowid is its hidden last column),
    // so taking the first visible messages never sorts.
    CBPIPE_RETURN_IF_ERROR(
        q->Exec("CREATE INDEX IF NOT EXISTS queue_messages_by_visibility"
                " ON queue_messages (queue, visible_at)"));
    // dedup_id came later: files from before get the column here (inside
    // this write transaction, so two processes cannot both add it).
    if (!Stmt(q->db_, "SELECT dedup_id FROM queue_messages LIMIT 0").ok()) {
      CBPIPE_RETURN_IF_ERROR(
          q->Exec("ALTER TABLE queue_messages ADD COLUMN dedup_id TEXT"));
    }
    CBPIPE_RETURN_IF_ERROR(
        q->Exec("CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_by_dedup"
                " ON queue_messages (queue, dedup_id)"
                " WHERE dedup_id IS NOT NULL"));
    return q->Exec(
        "CREATE TABLE IF NOT EXISTS queue_dead_letters ("
        " queue TEXT NOT NULL,"
        " id TEXT NOT NULL,"
        " body BLOB NOT NULL,"
        " attributes TEXT NOT NULL,"
        " sent_at INTEGER NOT NULL,"
        " first_received_at INTEGER NOT NULL,"
        " receive_count INTEGER NOT NULL,"
        " reason TEXT NOT NULL,"
        " moved_at INTEGER NOT NULL,"
        " PRIMARY KEY (queue, id))");
  }));
  lock.unlock();
  return q;
}

int SqliteQueue::OnBusy(void* self, int attempt) {
  // Long enough to ride out another process's burst of commits, each of
  // which holds the write lock for about one fsync.
  constexpr auto kBusyTimeout = std::chrono::seconds(10);
  // SQLite's own handler (sqlite3_busy_timeout) backs off to 100 ms sleeps,
  // so with two consumer processes the one that just committed won the lock
  // again and again while the other slept (950 vs 50 messages). Short,
  // jittered sleeps keep every waiter in the race.
  thread_local std::minstd_rand jitter(std::random_device{}());
  auto* q = static_cast<SqliteQueue*>(self);
  const auto now = std::chrono::steady_clock::now();
  if (attempt == 0) q->busy_since_ = now;
  if (now - q->busy_since_ > kBusyTimeout) return 0;  // SQLITE_BUSY
  std::this_thread::sleep_for(std::chrono::microseconds(
      200 + std::uniform_int_distribution<int>(0, 800)(jitter)));
  return 1;
}

Status SqliteQueue::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    sqlite3_free(err);
    return SqlError(db_, sql);
  }
  return OkStatus();
}

Status SqliteQueue::InWriteTransaction(const std::function<Status()>& body) {
  // IMMEDIATE takes the write lock up front: two receivers cannot both read
  // the same visible row and then both claim it, and a reader never has to
  // be upgraded to a writer (which fails in WAL mode instead of waiting).
  CBPIPE_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Status st = body();
  if (st.ok()) st = Exec("COMMIT");
  if (!st.ok() && !sqlite3_get_autocommit(db_)) {
    Exec("ROLLBACK").IgnoreError();
  }
  return st;
}

StatusOr<std::vector<std::string>> SqliteQueue::SendBatch(
    const std::vector<OutgoingMessage>& messages) {
  CBPIPE_RETURN_IF_ERROR(ValidateSendBatch(messages));
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    CBPIPE_RETURN_IF_ERROR(InWriteTransaction([&]() -> Status {
      const int64_t now = Now();
      for (const OutgoingMessage& m : messages) {
        if (!m.dedup_id.empty()) {
          Stmt d(db_,
                 "SELECT id FROM queue_messages WHERE queue = ?1 AND"
                 " dedup_id = ?2");
          if (!d.ok()) return SqlError(db_, "prepare dedup");
          d.Text(1, name_);
          d.Text(2, m.dedup_id);
          const int rc = sqlite3_step(d.get());
          if (rc == SQLITE_ROW) {
            ids.push_back(Column(d.get(), 0));  // already queued
            continue;
          }
          if (rc != SQLITE_DONE) return SqlError(db_, "dedup");
        }
        CBPIPE_ASSIGN_OR_RETURN(std::string id, NewMessageId(now));
        Stmt s(db_,
               "INSERT INTO queue_messages (queue, id, body, attributes,"
               " sent_at, visible_at, dedup_id)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
        if (!s.ok()) return SqlError(db_, "prepare send");
        s.Text(1, name_);
        s.Text(2, id);
        s.Blob(3, m.body);
        s.Text(4, EncodeAttributes(m.attributes));
        s.Int(5, now);
        s.Int(6, now + m.delay_ms);
        if (m.dedup_id.empty()) {
          sqlite3_bind_null(s.get(), 7);
        } else {
          s.Text(7, m.dedup_id);
        }
        if (sqlite3_step(s.get()) != SQLITE_DONE) return SqlError(db_, "send");
        ids.push_back(std::move(id));
      }
      return OkStatus();
    }));
  }
  sent_.notify_all();
  return ids;
}

StatusOr<std::vector<Message>> SqliteQueue::Receive(int max_messages,
                                                    int64_t visibility_ms,
                                                    int64_t wait_ms) {
  CBPIPE_RETURN_IF_ERROR(ValidateReceive(max_messages, visibility_ms, wait_ms));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    CBPIPE_ASSIGN_OR_RETURN(std::vector<Message> got,
                            ReceiveOnce(max_messages, visibility_ms));
    const auto now = std::chrono::steady_clock::now();
    if (!got.empty() || now >= deadline) return got;
    sent_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(
                             deadline - now, kPollInterval));
  }
}

StatusOr<std::vector<Message>> SqliteQueue::ReceiveOnce(int max_messages,
                                                        int64_t visibility_ms) {
  std::vector<Message> out;
  Status st = InWriteTransaction([&]() -> Status {
    const int64_t now = Now();
    // With visibility 0 a returned message stays visible; it must not be
    // returned twice in one call.
    std::set<int64_t> returned;
    bool moved_any = true;
    while (moved_any && out.size() < static_cast<size_t>(max_messages)) {
      moved_any = false;
      std::vector<std::pair<int64_t, int>> candidates;  // rowid, count
      {
        Stmt s(db_,
               "SELECT rowid, receive_count FROM queue_messages"
               " WHERE queue = ?1 AND visible_at <= ?2"
               " ORDER BY visible_at, rowid LIMIT ?3");
        if (!s.ok()) return SqlError(db_, "prepare receive");
        s.Text(1, name_);
        s.Int(2, now);
        s.Int(3, max_messages - static_cast<int64_t>(out.size()) +
                     static_cast<int64_t>(returned.size()));
        int rc;
        while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
          const int64_t rowid = sqlite3_column_int64(s.get(), 0);
          if (returned.count(rowid) == 0) {
            candidates.emplace_back(rowid, sqlite3_column_int(s.get(), 1));
          }
        }
        if (rc != SQLITE_DONE) return SqlError(db_, "receive");
      }
      for (const auto& [rowid, count] : candidates) {
        if (out.size() == static_cast<size_t>(max_messages)) break;
        if (options_.max_receive_count > 0 &&
            count >= options_.max_receive_count) {
          CBPIPE_RETURN_IF_ERROR(MoveRowToDeadLetter(
              rowid,
              "received " + std::to_string(count) +
                  " times without being deleted (max_receive_count " +
                  std::to_string(options_.max_receive_count) + ")",
              now));
          moved_any = true;  // a slot is free: look again
          continue;
        }
        CBPIPE_ASSIGN_OR_RETURN(std::string receipt, NewReceipt());
        Stmt u(db_,
               "UPDATE queue_messages SET receipt = ?2, visible_at = ?3,"
               " receive_count = receive_count + 1,"
               " first_received_at = CASE first_received_at WHEN 0 THEN ?4"
               "   ELSE first_received_at END"
               " WHERE rowid = ?1 RETURNING id, body, attributes, sent_at,"
               " first_received_at, receive_count");
        if (!u.ok()) return SqlError(db_, "prepare claim");
        u.Int(1, rowid);
        u.Text(2, receipt);
        u.Int(3, now + visibility_ms);
        u.Int(4, now);
        if (sqlite3_step(u.get()) != SQLITE_ROW) return SqlError(db_, "claim");
        Message m;
        CBPIPE_RETURN_IF_ERROR(ReadMessage(u.get(), 0, &m));
        if (sqlite3_step(u.get()) != SQLITE_DONE) {
          return SqlError(db_, "claim");
        }
        m.receipt = std::move(receipt);
        out.push_back(std::move(m));
        returned.insert(rowid);
      }
    }
    return OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

Status SqliteQueue::MoveRowToDeadLetter(int64_t rowid, std::string_view reason,
                                        int64_t now) {
  // OR REPLACE: a leftover dead letter with the same id must not wedge every
  // later receive of the queue; the newer copy is the one that matters.
  Stmt ins(db_,
           "INSERT OR REPLACE INTO queue_dead_letters (queue, id, body,"
           " attributes, sent_at, first_received_at, receive_count, reason,"
           " moved_at) SELECT queue, id, body, attributes, sent_at,"
           " first_received_at, receive_count, ?2, ?3 FROM queue_messages"
           " WHERE rowid = ?1");
  if (!ins.ok()) return SqlError(db_, "prepare dead-letter");
  ins.Int(1, rowid);
  ins.Text(2, reason);
  ins.Int(3, now);
  if (sqlite3_step(ins.get()) != SQLITE_DONE) {
    return SqlError(db_, "dead-letter");
  }
  Stmt del(db_, "DELETE FROM queue_messages WHERE rowid = ?1");
  if (!del.ok()) return SqlError(db_, "prepare dead-letter");
  del.Int(1, rowid);
  if (sqlite3_step(del.get()) != SQLITE_DONE) {
    return SqlError(db_, "dead-letter");
  }
  return OkStatus();
}

StatusOr<std::vector<Status>> SqliteQueue::DeleteBatch(
    const std::vector<std::string>& receipts) {
  CBPIPE_RETURN_IF_ERROR(ValidateDeleteBatch(receipts));
  std::vector<Status> results;
  std::lock_guard<std::mutex> lock(mu_);
  CBPIPE_RETURN_IF_ERROR(InWriteTransaction([&]() -> Status {
    Stmt s(db_, "DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2");
    if (!s.ok()) return SqlError(db_, "prepare delete");
    s.Text(1, name_);
    for (const std::string& receipt : receipts) {
      sqlite3_reset(s.get());
      s.Text(2, receipt);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return SqlError(db_, "delete");
      results.push_back(
          sqlite3_changes(db_) == 1
              ? OkStatus()
              : NotFoundError("queue " + name_ + ": stale receipt"));
    }
    return OkStatus();
  }));
  return results;
}

Status SqliteQueue::ChangeVisibility(std::string_view receipt,
                                     int64_t visibility_ms) {
  CBPIPE_RETURN_IF_ERROR(CheckReceipt(receipt));
  CBPIPE_RETURN_IF_ERROR(CheckVisibility(visibility_ms));
  {
    std::lock_guard<std::mutex> lock(mu_);
    CBPIPE_RETURN_IF_ERROR(InWriteTransaction([&]() -> Status {
      const int64_t now = Now();
      Stmt s(db_,
             "SELECT rowid, visible_at FROM queue_messages"
             " WHERE queue = ?1 AND receipt = ?2");
      if (!s.ok()) return SqlError(db_, "prepare change visibility");
      s.Text(1, name_);
      s.Text(2, receipt);
      const int rc = sqlite3_step(s.get());
      if (rc == SQLITE_DONE) {
        return NotFoundError("queue " + name_ + ": stale receipt");
      }
      if (rc != SQLITE_ROW) return SqlError(db_, "change visibility");
      if (sqlite3_column_int64(s.get(), 1) <= now) {
        return FailedPreconditionError("queue " + name_ +
                                       ": message not in flight");
      }
      Stmt u(db_, "UPDATE queue_messages SET visible_at = ?2 WHERE rowid = ?1");
      if (!u.ok()) return SqlError(db_, "prepare change visibility");
      u.Int(1, sqlite3_column_int64(s.get(), 0));
      u.Int(2, now + visibility_ms);
      if (sqlite3_step(u.get()) != SQLITE_DONE) {
        return SqlError(db_, "change visibility");
      }
      return OkStatus();
    }));
  }
  if (visibility_ms == 0) sent_.notify_all();
  return OkStatus();
}

Status SqliteQueue::MoveToDeadLetter(std::string_view receipt,
                                     std::string_view reason) {
  CBPIPE_RETURN_IF_ERROR(CheckReceipt(receipt));
  std::lock_guard<std::mutex> lock(mu_);
  return InWriteTransaction([&]() -> Status {
    Stmt s(
        db_,
        "SELECT rowid FROM queue_messages WHERE queue = ?1 AND receipt = ?2");
    if (!s.ok()) return SqlError(db_, "prepare dead-letter");
    s.Text(1, name_);
    s.Text(2, receipt);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) {
      return NotFoundError("queue " + name_ + ": stale receipt");
    }
    if (rc != SQLITE_ROW) return SqlError(db_, "dead-letter");
    return MoveRowToDeadLetter(sqlite3_column_int64(s.get(), 0), reason, Now());
  });
}

StatusOr<QueueStats> SqliteQueue::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  // One statement reads one snapshot, so the counts agree with each other.
  Stmt s(db_,
         "SELECT count(*),"
         " coalesce(sum(visible_at <= ?2), 0),"
         " coalesce(sum(visible_at > ?2 AND receipt IS NOT NULL), 0),"
         " coalesce(sum(visible_at > ?2 AND receipt IS NULL), 0),"
         " min(sent_at),"
         " (SELECT count(*) FROM queue_dead_letters WHERE queue = ?1)"
         " FROM queue_messages WHERE queue = ?1");
  if (!s.ok()) return SqlError(db_, "prepare stats");
  const int64_t now = Now();
  s.Text(1, name_);
  s.Int(2, now);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return SqlError(db_, "stats");
  QueueStats stats;
  stats.visible = sqlite3_column_int64(s.get(), 1);
  stats.in_flight = sqlite3_column_int64(s.get(), 2);
  stats.delayed = sqlite3_column_int64(s.get(), 3);
  if (sqlite3_column_type(s.get(), 4) != SQLITE_NULL) {
    stats.oldest_age_ms =
        std::max<int64_t>(0, now - sqlite3_column_int64(s.get(), 4));
  }
  stats.dead_letters = sqlite3_column_int64(s.get(), 5);
  return stats;
}

StatusOr<int64_t> SqliteQueue::Purge() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "DELETE FROM queue_messages WHERE queue = ?1");
  if (!s.ok()) return SqlError(db_, "prepare purge");
  s.Text(1, name_);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return SqlError(db_, "purge");
  return static_cast<int64_t>(sqlite3_changes(db_));
}

StatusOr<std::vector<DeadLetter>> SqliteQueue::ListDeadLetters(
    int limit, std::string_view after_id) {
  if (limit < 1 || limit > 1000) {
    return InvalidArgumentError("queue: limit out of range: " +
                                std::to_string(limit));
  }
  std::lock_guard<std::mutex> lock(mu_);
  const std::string sql = std::string(kDeadLetterColumns) +
                          " WHERE queue = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return SqlError(db_, "prepare list dead letters");
  s.Text(1, name_);
  s.Text(2, after_id);
  s.Int(3, limit);
  std::vector<DeadLetter> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    DeadLetter d;
    CBPIPE_RETURN_IF_ERROR(ReadDeadLetter(s.get(), &d));
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "list dead letters");
  return out;
}

StatusOr<DeadLetter> SqliteQueue::GetDeadLetter(std::string_view id) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string sql =
      std::string(kDeadLetterColumns) + " WHERE queue = ?1 AND id = ?2";
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return SqlError(db_, "prepare get dead letter");
  s.Text(1, name_);
  s.Text(2, id);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) {
    return NotFoundError("queue " + name_ + ": no dead letter " +
                         std::string(id));
  }
  if (rc != SQLITE_ROW) return SqlError(db_, "get dead letter");
  DeadLetter d;
  CBPIPE_RETURN_IF_ERROR(ReadDeadLetter(s.get(), &d));
  return d;
}

namespace {

// Copies dead letters back as fresh, visible messages: receive count and
// first receive reset, so they get a full max_receive_count again. Callers
// append the WHERE clause (?1 is the queue, ?2 the time, ?3 an id).
constexpr char kRedriveInsert[] =
    "INSERT INTO queue_messages (queue, id, body, attributes, sent_at,"
    " visible_at, receipt, receive_count, first_received_at)"
    " SELECT queue, id, body, attributes, sent_at, ?2, NULL, 0, 0"
    " FROM queue_dead_letters";

}  // namespace

Status SqliteQueue::Redrive(std::string_view dead_letter_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    CBPIPE_RETURN_IF_ERROR(InWriteTransaction([&]() -> Status {
      const std::string sql =
          std::string(kRedriveInsert) + " WHERE queue = ?1 AND id = ?3";
      Stmt ins(db_, sql.c_str());
      if (!ins.ok()) return SqlError(db_, "prepare redrive");
      ins.Text(1, name_);
      ins.Int(2, Now());
      ins.Text(3, dead_letter_id);
      if (sqlite3_step(ins.get()) != SQLITE_DONE) {
        return SqlError(db_, "redrive");
      }
      if (sqlite3_changes(db_) == 0) {
        return NotFoundError("queue " + name_ + ": no dead letter " +
                             std::string(dead_letter_id));
      }
      Stmt del(db_,
               "DELETE FROM queue_dead_letters WHERE queue = ?1 AND id = ?2");
      if (!del.ok()) return SqlError(db_, "prepare redrive");
      del.Text(1, name_);
      del.Text(2, dead_letter_id);
      if (sqlite3_step(del.get()) != SQLITE_DONE) {
        return SqlError(db_, "redrive");
      }
      return OkStatus();
    }));
  }
  sent_.notify_all();
  return OkStatus();
}

StatusOr<int64_t> SqliteQueue::RedriveAll() {
  int64_t n = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    CBPIPE_RETURN_IF_ERROR(InWriteTransaction([&]() -> Status {
      // In id order, so redriven messages keep their send order.
      const std::string sql =
          std::string(kRedriveInsert) + " WHERE queue = ?1 ORDER BY id";
      Stmt ins(db_, sql.c_str());
      if (!ins.ok()) return SqlError(db_, "prepare redrive all");
      ins.Text(1, name_);
      ins.Int(2, Now());
      if (sqlite3_step(ins.get()) != SQLITE_DONE) {
        return SqlError(db_, "redrive all");
      }
      n = sqlite3_changes(db_);
      Stmt del(db_, "DELETE FROM queue_dead_letters WHERE queue = ?1");
      if (!del.ok()) return SqlError(db_, "prepare redrive all");
      del.Text(1, name_);
      if (sqlite3_step(del.get()) != SQLITE_DONE) {
        return SqlError(db_, "redrive all");
      }
      return OkStatus();
    }));
  }
  if (n > 0) sent_.notify_all();
  return n;
}

StatusOr<int64_t> SqliteQueue::PurgeDeadLetters() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "DELETE FROM queue_dead_letters WHERE queue = ?1");
  if (!s.ok()) return SqlError(db_, "prepare purge dead letters");
  s.Text(1, name_);
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    return SqlError(db_, "purge dead letters");
  }
  return static_cast<int64_t>(sqlite3_changes(db_));
}

}  // namespace cbpipe
