#include "ledger/sqlite_ledger.h"

#include "common/sqlite_util.h"

namespace cbpipe {
namespace {

constexpr std::string_view kOwner = "ledger";
using Stmt = SqliteStatement;

Status SqlError(sqlite3* db, std::string_view what) {
  return SqliteError(db, kOwner, what);
}

}  // namespace

StatusOr<std::unique_ptr<DeliveryLedger>> SqliteDeliveryLedger::Open(
    const std::string& path, Env* env) {
  // FULL: a delivery recorded is on disk before the next file starts.
  CBPIPE_ASSIGN_OR_RETURN(sqlite3 * db, OpenSqlite(path, "FULL", kOwner));
  std::unique_ptr<SqliteDeliveryLedger> ledger(
      new SqliteDeliveryLedger(db, env));
  CBPIPE_RETURN_IF_ERROR(ledger->Exec(
      "CREATE TABLE IF NOT EXISTS deliveries ("
      " destination TEXT NOT NULL,"
      " remote_name TEXT NOT NULL,"
      " size INTEGER NOT NULL,"
      " sha256 TEXT NOT NULL,"
      " batch_id TEXT NOT NULL,"
      " state TEXT NOT NULL CHECK (state IN ('intent','delivered')),"
      " updated_at INTEGER NOT NULL,"
      " replay INTEGER NOT NULL DEFAULT 0,"
      " temp_name TEXT NOT NULL DEFAULT '',"
      " run_id TEXT NOT NULL DEFAULT '',"
      " PRIMARY KEY (destination, remote_name))"));
  CBPIPE_RETURN_IF_ERROR(
      ledger->Exec("CREATE TABLE IF NOT EXISTS delivery_failures ("
                   " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " destination TEXT NOT NULL,"
                   " remote_name TEXT NOT NULL,"
                   " batch_id TEXT NOT NULL,"
                   " failed_at INTEGER NOT NULL,"
                   " attempt INTEGER NOT NULL,"
                   " attempt_at INTEGER NOT NULL,"
                   " error_class TEXT NOT NULL,"
                   " code TEXT NOT NULL,"
                   " message TEXT NOT NULL,"
                   " run_id TEXT NOT NULL DEFAULT '')"));
  // temp_name and the run_ids came later: older files get the columns here
  // (a second process doing the same at once makes one ALTER fail,
  // harmlessly).
  CBPIPE_RETURN_IF_ERROR(ledger->AddColumn("deliveries", "temp_name"));
  CBPIPE_RETURN_IF_ERROR(ledger->AddColumn("deliveries", "run_id"));
  CBPIPE_RETURN_IF_ERROR(ledger->AddColumn("delivery_failures", "run_id"));
  // The delivery claim (ledger.h): one row per file being delivered.
  CBPIPE_RETURN_IF_ERROR(
      ledger->Exec("CREATE TABLE IF NOT EXISTS delivery_claims ("
                   " destination TEXT NOT NULL,"
                   " remote_name TEXT NOT NULL,"
                   " owner TEXT NOT NULL,"
                   " until_ms INTEGER NOT NULL,"
                   " PRIMARY KEY (destination, remote_name))"));
  return std::unique_ptr<DeliveryLedger>(std::move(ledger));
}

SqliteDeliveryLedger::~SqliteDeliveryLedger() { sqlite3_close(db_); }

Status SqliteDeliveryLedger::AddColumn(const std::string& table,
                                       const std::string& column) {
  const std::string probe =
      "SELECT " + column + " FROM " + table + " LIMIT 0";
  if (Stmt(db_, probe.c_str()).ok()) return OkStatus();
  const std::string alter = "ALTER TABLE " + table + " ADD COLUMN " + column +
                            " TEXT NOT NULL DEFAULT ''";
  Exec(alter.c_str()).IgnoreError();
  if (!Stmt(db_, probe.c_str()).ok())
    return InternalError("ledger: cannot add the " + column + " column to " +
                         table);
  return OkStatus();
}

Status SqliteDeliveryLedger::Exec(const char* sql) {
  return ExecSql(db_, sql, kOwner);
}

StatusOr<std::optional<LedgerEntry>> SqliteDeliveryLedger::Find(
    const std::string& destination, const std::string& remote_name) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "SELECT size, sha256, batch_id, state, updated_at, replay,"
         " temp_name, run_id FROM deliveries WHERE destination = ?1 AND"
         " remote_name = ?2");
  if (!s.ok()) return SqlError(db_, "find");
  s.Text(1, destination);
  s.Text(2, remote_name);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<LedgerEntry>();
  if (rc != SQLITE_ROW) return SqlError(db_, "find");
  LedgerEntry e;
  e.destination = destination;
  e.remote_name = remote_name;
  e.size = static_cast<uint64_t>(sqlite3_column_int64(s.get(), 0));
  e.sha256 = ColumnText(s.get(), 1);
  e.batch_id = ColumnText(s.get(), 2);
  e.state = ColumnText(s.get(), 3);
  e.updated_at = sqlite3_column_int64(s.get(), 4);
  e.replay = sqlite3_column_int64(s.get(), 5) != 0;
  e.temp_name = ColumnText(s.get(), 6);
  e.run_id = ColumnText(s.get(), 7);
  return std::optional<LedgerEntry>(std::move(e));
}

Status SqliteDeliveryLedger::Upsert(const LedgerEntry& entry,
                                    const char* state) {
  std::lock_guard<std::mutex> lock(mu_);
  // An intent never downgrades a delivery of the same content.
  Stmt s(db_,
         "INSERT INTO deliveries (destination, remote_name, size, sha256,"
         " batch_id, state, updated_at, replay, temp_name, run_id)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
         " ON CONFLICT (destination, remote_name) DO UPDATE SET"
         "  size = excluded.size, sha256 = excluded.sha256,"
         "  batch_id = excluded.batch_id, updated_at = excluded.updated_at,"
         "  replay = excluded.replay, temp_name = excluded.temp_name,"
         "  run_id = excluded.run_id,"
         "  state = CASE WHEN excluded.state = 'intent'"
         "               AND deliveries.state = 'delivered'"
         "               AND deliveries.sha256 = excluded.sha256"
         "          THEN 'delivered' ELSE excluded.state END");
  if (!s.ok()) return SqlError(db_, "prepare upsert");
  s.Text(1, entry.destination);
  s.Text(2, entry.remote_name);
  s.Int(3, static_cast<int64_t>(entry.size));
  s.Text(4, entry.sha256);
  s.Text(5, entry.batch_id);
  s.Text(6, state);
  s.Int(7, entry.updated_at ? entry.updated_at : env_->NowSeconds());
  s.Int(8, entry.replay ? 1 : 0);
  // A delivered file has no temporary name left to clean up.
  s.Text(9, std::string_view(state) == "intent" ? entry.temp_name : "");
  s.Text(10, entry.run_id);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return SqlError(db_, "upsert");
  return OkStatus();
}

Status SqliteDeliveryLedger::RecordIntent(const LedgerEntry& entry) {
  return Upsert(entry, "intent");
}

Status SqliteDeliveryLedger::MarkDelivered(const LedgerEntry& entry) {
  return Upsert(entry, "delivered");
}

Status SqliteDeliveryLedger::RecordFailure(
    const LedgerEntry& entry, const std::vector<AttemptRecord>& attempts) {
  std::lock_guard<std::mutex> lock(mu_);
  CBPIPE_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  const int64_t now = env_->NowSeconds();
  int n = 0;
  for (const AttemptRecord& a : attempts) {
    Stmt s(db_,
           "INSERT INTO delivery_failures (destination, remote_name,"
           " batch_id, failed_at, attempt, attempt_at, error_class, code,"
           " message, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
           " ?10)");
    if (!s.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return SqlError(db_, "prepare failure");
    }
    s.Text(1, entry.destination);
    s.Text(2, entry.remote_name);
    s.Text(3, entry.batch_id);
    s.Int(4, now);
    s.Int(5, ++n);
    s.Int(6, a.at);
    s.Text(7, a.error_class);
    s.Text(8, a.code);
    s.Text(9, a.message);
    s.Text(10, a.run_id);
    if (sqlite3_step(s.get()) != SQLITE_DONE) {
      Status st = SqlError(db_, "record failure");
      Exec("ROLLBACK").IgnoreError();
      return st;
    }
  }
  return Exec("COMMIT");
}

StatusOr<std::vector<AttemptRecord>> SqliteDeliveryLedger::FailedAttempts(
    const std::string& destination, const std::string& remote_name) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "SELECT attempt_at, error_class, code, message, run_id FROM"
         " delivery_failures WHERE destination = ?1 AND remote_name = ?2"
         " ORDER BY id");
  if (!s.ok()) return SqlError(db_, "prepare failed attempts");
  s.Text(1, destination);
  s.Text(2, remote_name);
  std::vector<AttemptRecord> attempts;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    attempts.push_back({sqlite3_column_int64(s.get(), 0),
                        ColumnText(s.get(), 1), ColumnText(s.get(), 2),
                        ColumnText(s.get(), 3), ColumnText(s.get(), 4)});
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "failed attempts");
  return attempts;
}

StatusOr<int64_t> SqliteDeliveryLedger::CountDelivered() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT count(*) FROM deliveries WHERE state = 'delivered'");
  if (!s.ok() || sqlite3_step(s.get()) != SQLITE_ROW)
    return SqlError(db_, "count");
  return sqlite3_column_int64(s.get(), 0);
}

StatusOr<bool> SqliteDeliveryLedger::ClaimDelivery(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner, int64_t lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = env_->NowMs();
  // One statement: a free, own or expired claim is taken, any other left.
  Stmt s(db_,
         "INSERT INTO delivery_claims (destination, remote_name, owner,"
         " until_ms) VALUES (?1, ?2, ?3, ?4)"
         " ON CONFLICT (destination, remote_name) DO UPDATE SET"
         "  owner = excluded.owner, until_ms = excluded.until_ms"
         " WHERE delivery_claims.owner = excluded.owner"
         "  OR delivery_claims.until_ms <= ?5");
  if (!s.ok()) return SqlError(db_, "prepare claim");
  s.Text(1, destination);
  s.Text(2, remote_name);
  s.Text(3, owner);
  s.Int(4, now + lease_ms);
  s.Int(5, now);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return SqlError(db_, "claim");
  return sqlite3_changes(db_) > 0;
}

StatusOr<bool> SqliteDeliveryLedger::RenewDeliveryClaim(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner, int64_t lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "UPDATE delivery_claims SET until_ms = ?4 WHERE destination = ?1"
         " AND remote_name = ?2 AND owner = ?3");
  if (!s.ok()) return SqlError(db_, "prepare renew claim");
  s.Text(1, destination);
  s.Text(2, remote_name);
  s.Text(3, owner);
  s.Int(4, env_->NowMs() + lease_ms);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return SqlError(db_, "renew claim");
  return sqlite3_changes(db_) > 0;
}

Status SqliteDeliveryLedger::ReleaseDeliveryClaim(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "DELETE FROM delivery_claims WHERE destination = ?1"
         " AND remote_name = ?2 AND owner = ?3");
  if (!s.ok()) return SqlError(db_, "prepare release claim");
  s.Text(1, destination);
  s.Text(2, remote_name);
  s.Text(3, owner);
  if (sqlite3_step(s.get()) != SQLITE_DONE)
    return SqlError(db_, "release claim");
  return OkStatus();
}

}  // namespace cbpipe
