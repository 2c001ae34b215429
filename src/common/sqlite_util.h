// Small helpers shared by the SQLite-backed stores (delivery ledger, run
// store): opening a database the way they all need it, and a prepared
// statement that is finalised on every path out of a function.
//
//   CBPIPE_ASSIGN_OR_RETURN(sqlite3* db, OpenSqlite(path, "FULL", "ledger"));
//   SqliteStatement s(db, "SELECT state FROM deliveries WHERE name = ?1");
//   if (!s.ok()) return s.Error("ledger", "prepare find");
//   s.Text(1, name);
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

// Opens (creating) `path` in WAL mode with a 10 s busy timeout and the given
// `synchronous` level ("FULL" or "NORMAL"), the files with kRecordFileMode
// (common/file_mode.h). `owner` names the store in
// errors. The caller closes the handle with sqlite3_close.
StatusOr<sqlite3*> OpenSqlite(const std::string& path,
                              std::string_view synchronous,
                              std::string_view owner);

// For the crash-consistency test: makes every commit on `db` a DurablePoint
// named `name` (a string with static storage). Does nothing unless crash
// points are enabled (common/crash_point.h). OpenSqlite calls it.
void InstallCommitCrashPoint(sqlite3* db, const char* name);

// Runs SQL without results; errors name `owner`.
Status ExecSql(sqlite3* db, const char* sql, std::string_view owner);

// The last error on `db` as "<owner>: <what>: <sqlite's message>":
// kUnavailable when busy or locked (retry), kInternal otherwise.
Status SqliteError(sqlite3* db, std::string_view owner, std::string_view what);

class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, const char* sql);
  ~SqliteStatement() { sqlite3_finalize(stmt_); }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Text(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()),
                      SQLITE_TRANSIENT);
  }
  void Int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  // SqliteError of the statement's database.
  Status Error(std::string_view owner, std::string_view what) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// Column `i` of the current row as text ("" for NULL).
std::string ColumnText(sqlite3_stmt* s, int i);

}  // namespace cbpipe
