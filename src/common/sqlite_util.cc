#include "common/sqlite_util.h"

#include "common/file_mode.h"
#include "common/crash_point.h"

namespace cbpipe {
namespace {

// SQLite calls this after every commit that wrote to the WAL (the commit is
// durable by then, per the `synchronous` level). Installing a WAL hook
// replaces the automatic checkpoint, so this does its job too.
int AfterCommit(void* name, sqlite3* db, const char* schema, int pages) {
  if (pages >= 1000) {
    sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                              nullptr);
  }
  DurablePoint(static_cast<const char*>(name));
  return SQLITE_OK;
}

}  // namespace

void InstallCommitCrashPoint(sqlite3* db, const char* name) {
  if (CrashPointsEnabled())
    sqlite3_wal_hook(db, &AfterCommit, const_cast<char*>(name));
}

StatusOr<sqlite3*> OpenSqlite(const std::string& path,
                              std::string_view synchronous,
                              std::string_view owner) {
  // The stores hold record data (names, ids, errors): as private as the
  // batches, and so are SQLite's -wal and -shm files, which take the mode
  // of the database file.
  CBPIPE_RETURN_IF_ERROR(RestrictDatabaseFiles(path));
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(
          path.c_str(), &db,
          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
          nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return FailedPreconditionError(std::string(owner) + " " + path + ": " +
                                   msg);
  }
  sqlite3_busy_timeout(db, 10000);
  const std::string pragma = "PRAGMA synchronous=" + std::string(synchronous);
  for (const char* sql : {"PRAGMA journal_mode=WAL", pragma.c_str()}) {
    Status st = ExecSql(db, sql, owner);
    if (!st.ok()) {
      sqlite3_close(db);
      return st;
    }
  }
  InstallCommitCrashPoint(db, "sqlite.commit");
  return db;
}

Status ExecSql(sqlite3* db, const char* sql, std::string_view owner) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return InternalError(std::string(owner) + ": " + msg);
  }
  return OkStatus();
}

SqliteStatement::SqliteStatement(sqlite3* db, const char* sql) : db_(db) {
  rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
}

Status SqliteError(sqlite3* db, std::string_view owner, std::string_view what) {
  const int code = sqlite3_errcode(db);
  std::string msg =
      std::string(owner) + ": " + std::string(what) + ": " + sqlite3_errmsg(db);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
    return UnavailableError(std::move(msg));
  return InternalError(std::move(msg));
}

Status SqliteStatement::Error(std::string_view owner,
                              std::string_view what) const {
  return SqliteError(db_, owner, what);
}

std::string ColumnText(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
}

}  // namespace cbpipe
