#include "runs/sqlite_run_store.h"

#include "common/sqlite_util.h"

namespace cbpipe {
namespace {

constexpr std::string_view kOwner = "run store";

// Statement errors here are reported as "run store: <what>: <sqlite>".
class Stmt : public SqliteStatement {
 public:
  using SqliteStatement::SqliteStatement;
  Status Error(std::string_view what) const {
    return SqliteStatement::Error(kOwner, what);
  }
};

std::string Text(sqlite3_stmt* s, int i) { return ColumnText(s, i); }

RunRecord ReadRun(sqlite3_stmt* s) {
  RunRecord r;
  r.run_id = Text(s, 0);
  r.input_key = Text(s, 1);
  r.input_name = Text(s, 2);
  r.trace_id = Text(s, 3);
  r.state = Text(s, 4);
  r.current_step = Text(s, 5);
  r.error = Text(s, 6);
  r.created_ms = sqlite3_column_int64(s, 7);
  r.updated_ms = sqlite3_column_int64(s, 8);
  return r;
}

constexpr const char* kRunColumns =
    "run_id, input_key, input_name, trace_id, state, current_step, error, "
    "created_ms, updated_ms";

// The WHERE clause of `filter` (only the conditions it sets, so that the
// planner can use runs_by_state_created or runs_by_created), with its
// parameters numbered ?1..?4: state, from_ms, to_ms, the lower-cased substring,
// and ?7, the runs_by_name query, when `use_name_index`.
std::string Where(const RunFilter& filter, bool use_name_index) {
  std::string where;
  auto add = [&](const char* condition) {
    where += where.empty() ? " WHERE " : " AND ";
    where += condition;
  };
  if (!filter.state.empty()) add("state = ?1");
  if (filter.from_ms) add("created_ms >= ?2");
  if (filter.to_ms) add("created_ms < ?3");
  if (use_name_index)
    add("run_id IN (SELECT run_id FROM runs_by_name WHERE runs_by_name"
        " MATCH ?7)");
  // lower() is ASCII-only without ICU, as RunFilter::Matches; after the
  // index (which folds more than ASCII) it keeps the exact meaning.
  if (!filter.input_contains.empty()) add("instr(lower(input_name), ?4) > 0");
  return where;
}

// The FTS5 query for `needle`: one phrase, which the trigram tokenizer
// matches as a substring (case-insensitively).
std::string NameQuery(const std::string& needle) {
  std::string q = "\"";
  for (char c : needle) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + '"';
}

void BindFilter(SqliteStatement& s, const RunFilter& filter,
                bool use_name_index) {
  if (!filter.state.empty()) s.Text(1, filter.state);
  if (filter.from_ms) s.Int(2, *filter.from_ms);
  if (filter.to_ms) s.Int(3, *filter.to_ms);
  if (!filter.input_contains.empty()) {
    std::string needle = filter.input_contains;
    for (char& c : needle) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    s.Text(4, needle);
  }
  if (use_name_index) s.Text(7, NameQuery(filter.input_contains));
}

// A needle the trigram index answers exactly as the scan would: at least
// three characters (trigrams), printable ASCII (so no byte of it can be
// taken into a neighbouring UTF-8 sequence, and folding is ASCII's).
bool IndexableNeedle(const std::string& needle) {
  if (needle.size() < 3) return false;
  for (unsigned char c : needle) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Above this many runs whose name holds the needle, the newest-first scan
// of runs_by_created finds a page sooner than sorting every match.
constexpr int kNameIndexMaxMatches = 2000;

}  // namespace

StatusOr<std::unique_ptr<RunStore>> SqliteRunStore::Open(
    const std::string& path, Env* env) {
  // NORMAL in WAL mode survives a process crash (kill -9) and may lose the
  // last checkpoints on power loss; every step is idempotent, so a lost
  // checkpoint only means a step runs again. The queue and the ledger,
  // which must not lose writes, stay FULL.
  CBPIPE_ASSIGN_OR_RETURN(sqlite3 * db, OpenSqlite(path, "NORMAL", kOwner));
  std::unique_ptr<SqliteRunStore> store(new SqliteRunStore(db, env));
  CBPIPE_RETURN_IF_ERROR(store->Exec(
      "CREATE TABLE IF NOT EXISTS runs ("
      " run_id TEXT PRIMARY KEY, input_key TEXT NOT NULL,"
      " input_name TEXT NOT NULL, trace_id TEXT NOT NULL,"
      " state TEXT NOT NULL, current_step TEXT NOT NULL,"
      " error TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,"
      " updated_ms INTEGER NOT NULL,"
      " claim_owner TEXT NOT NULL DEFAULT '',"
      " claim_until INTEGER NOT NULL DEFAULT 0)"));
  // The listing's order (created_ms descending, then run_id), whole and
  // per state, so that a page is read in order and stops at its limit.
  // They replace runs_by_state (state, created_ms), which lacked run_id.
  CBPIPE_RETURN_IF_ERROR(
      store->Exec("CREATE INDEX IF NOT EXISTS runs_by_created"
                  " ON runs (created_ms DESC, run_id)"));
  CBPIPE_RETURN_IF_ERROR(
      store->Exec("CREATE INDEX IF NOT EXISTS runs_by_state_created"
                  " ON runs (state, created_ms DESC, run_id)"));
  CBPIPE_RETURN_IF_ERROR(store->Exec("DROP INDEX IF EXISTS runs_by_state"));
  // The execution claim came later: older files get its columns here (a
  // second process doing the same at once makes one ALTER fail, harmlessly).
  if (!Stmt(db, "SELECT claim_owner, claim_until FROM runs LIMIT 0").ok()) {
    store
        ->Exec(
            "ALTER TABLE runs ADD COLUMN claim_owner TEXT NOT NULL"
            " DEFAULT ''")
        .IgnoreError();
    store
        ->Exec(
            "ALTER TABLE runs ADD COLUMN claim_until INTEGER NOT NULL"
            " DEFAULT 0")
        .IgnoreError();
    if (!Stmt(db, "SELECT claim_owner, claim_until FROM runs LIMIT 0").ok())
      return InternalError("run store: cannot add the claim columns");
  }
  CBPIPE_RETURN_IF_ERROR(store->CreateNameIndex());
  CBPIPE_RETURN_IF_ERROR(store->Exec(
      "CREATE TABLE IF NOT EXISTS steps ("
      " run_id TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL,"
      " state TEXT NOT NULL, attempts INTEGER NOT NULL,"
      " output_json TEXT NOT NULL, error TEXT NOT NULL,"
      " started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL,"
      " PRIMARY KEY (run_id, name))"));
  return std::unique_ptr<RunStore>(std::move(store));
}

SqliteRunStore::~SqliteRunStore() {
  sqlite3_finalize(get_run_);
  sqlite3_finalize(get_steps_);
  sqlite3_close(db_);
}

Status SqliteRunStore::Exec(const char* sql) {
  return ExecSql(db_, sql, kOwner);
}

StatusOr<bool> SqliteRunStore::CreateIfAbsent(const RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "INSERT INTO runs (run_id, input_key, input_name, trace_id, state,"
         " current_step, error, created_ms, updated_ms)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7, ?7)"
         " ON CONFLICT (run_id) DO NOTHING");
  if (!s.ok()) return s.Error("prepare insert");
  s.Text(1, run.run_id);
  s.Text(2, run.input_key);
  s.Text(3, run.input_name);
  s.Text(4, run.trace_id);
  s.Text(5, run.state);
  s.Text(6, run.current_step);
  s.Int(7, run.created_ms ? run.created_ms : env_->NowMs());
  if (sqlite3_step(s.get()) != SQLITE_DONE) return s.Error("insert run");
  return sqlite3_changes(db_) > 0;
}

StatusOr<RunRecord> SqliteRunStore::Get(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto prepare = [this](sqlite3_stmt** stmt, const std::string& sql) {
    if (*stmt) {
      sqlite3_reset(*stmt);
      sqlite3_clear_bindings(*stmt);
      return true;
    }
    return sqlite3_prepare_v2(db_, sql.c_str(), -1, stmt, nullptr) == SQLITE_OK;
  };
  auto bind = [&run_id](sqlite3_stmt* stmt) {
    sqlite3_bind_text(stmt, 1, run_id.data(), static_cast<int>(run_id.size()),
                      SQLITE_TRANSIENT);
  };
  if (!prepare(&get_run_, std::string("SELECT ") + kRunColumns +
                              " FROM runs WHERE run_id = ?1"))
    return SqliteError(db_, kOwner, "prepare get");
  bind(get_run_);
  const int rc = sqlite3_step(get_run_);
  if (rc == SQLITE_DONE) return NotFoundError("no run " + run_id);
  if (rc != SQLITE_ROW) return SqliteError(db_, kOwner, "get run");
  RunRecord run = ReadRun(get_run_);
  sqlite3_reset(get_run_);
  if (!prepare(&get_steps_,
               "SELECT name, state, attempts, output_json, error, started_ms,"
               " finished_ms FROM steps WHERE run_id = ?1 ORDER BY seq"))
    return SqliteError(db_, kOwner, "prepare steps");
  bind(get_steps_);
  sqlite3_stmt* st = get_steps_;
  int step_rc;
  while ((step_rc = sqlite3_step(st)) == SQLITE_ROW) {
    StepRecord step;
    step.name = Text(st, 0);
    step.state = Text(st, 1);
    step.attempts = sqlite3_column_int(st, 2);
    step.output_json = Text(st, 3);
    step.error = Text(st, 4);
    step.started_ms = sqlite3_column_int64(st, 5);
    step.finished_ms = sqlite3_column_int64(st, 6);
    run.steps.push_back(std::move(step));
  }
  if (step_rc != SQLITE_DONE) return SqliteError(db_, kOwner, "read steps");
  sqlite3_reset(st);
  return run;
}

Status SqliteRunStore::CreateNameIndex() {
  // The console's "input name contains" search: a trigram index of the
  // names, so that finding a few runs among 100,000 reads the index, not
  // every row. A regular FTS5 table keyed by run_id (not an external-content
  // one: VACUUM may renumber the rowids of a table without an INTEGER
  // PRIMARY KEY), kept by triggers; a file from before it gets the names of
  // its runs once. Created under BEGIN IMMEDIATE so that two processes
  // opening the file at once fill it once.
  CBPIPE_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto rollback = [this](Status st) {
    Exec("ROLLBACK").IgnoreError();
    return st;
  };
  bool present;
  {
    Stmt exists(db_,
                "SELECT 1 FROM sqlite_master WHERE type = 'table'"
                " AND name = 'runs_by_name'");
    if (!exists.ok()) return rollback(exists.Error("prepare schema check"));
    const int rc = sqlite3_step(exists.get());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return rollback(exists.Error("schema check"));
    present = rc == SQLITE_ROW;
  }
  if (!present) {
    Status st = Exec(
        "CREATE VIRTUAL TABLE runs_by_name USING fts5("
        "input_name, run_id UNINDEXED, tokenize = 'trigram')");
    if (!st.ok()) {
      // An SQLite built without FTS5 (or before 3.34, without trigram):
      // the search scans, as it did before the index.
      return rollback(OkStatus());
    }
    for (const char* sql :
         {"CREATE TRIGGER runs_by_name_insert AFTER INSERT ON runs BEGIN"
          " INSERT INTO runs_by_name (input_name, run_id)"
          " VALUES (new.input_name, new.run_id); END",
          "CREATE TRIGGER runs_by_name_delete AFTER DELETE ON runs BEGIN"
          " DELETE FROM runs_by_name WHERE run_id = old.run_id; END",
          "CREATE TRIGGER runs_by_name_update"
          " AFTER UPDATE OF input_name, run_id ON runs BEGIN"
          " DELETE FROM runs_by_name WHERE run_id = old.run_id;"
          " INSERT INTO runs_by_name (input_name, run_id)"
          " VALUES (new.input_name, new.run_id); END",
          "INSERT INTO runs_by_name (input_name, run_id)"
          " SELECT input_name, run_id FROM runs"}) {
      st = Exec(sql);
      if (!st.ok()) return rollback(st);
    }
  }
  if (Status st = Exec("COMMIT"); !st.ok()) return rollback(st);
  has_name_index_ = true;
  return OkStatus();
}

StatusOr<bool> SqliteRunStore::UseNameIndex(const RunFilter& filter) {
  if (!has_name_index_ || !IndexableNeedle(filter.input_contains)) return false;
  const std::string sql =
      "SELECT count(*) FROM (SELECT 1 FROM runs_by_name WHERE runs_by_name"
      " MATCH ?1 LIMIT " +
      std::to_string(kNameIndexMaxMatches + 1) + ")";
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return s.Error("prepare name search");
  s.Text(1, NameQuery(filter.input_contains));
  if (sqlite3_step(s.get()) != SQLITE_ROW) return s.Error("name search");
  return sqlite3_column_int64(s.get(), 0) <= kNameIndexMaxMatches;
}

StatusOr<std::vector<RunRecord>> SqliteRunStore::List(const RunFilter& filter,
                                                      int limit, int offset) {
  std::lock_guard<std::mutex> lock(mu_);
  CBPIPE_ASSIGN_OR_RETURN(bool by_name, UseNameIndex(filter));
  const std::string sql =
      std::string("SELECT ") + kRunColumns + " FROM runs" +
      Where(filter, by_name) +
      " ORDER BY created_ms DESC, run_id LIMIT ?5 OFFSET ?6";
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return s.Error("prepare list");
  BindFilter(s, filter, by_name);
  s.Int(5, limit);
  s.Int(6, offset);
  std::vector<RunRecord> runs;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW)
    runs.push_back(ReadRun(s.get()));
  if (rc != SQLITE_DONE) return s.Error("list runs");
  return runs;
}

StatusOr<int64_t> SqliteRunStore::Count(const RunFilter& filter) {
  std::lock_guard<std::mutex> lock(mu_);
  CBPIPE_ASSIGN_OR_RETURN(bool by_name, UseNameIndex(filter));
  const std::string sql = "SELECT count(*) FROM runs" + Where(filter, by_name);
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return s.Error("prepare count");
  BindFilter(s, filter, by_name);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return s.Error("count");
  return sqlite3_column_int64(s.get(), 0);
}

Status SqliteRunStore::SaveStep(const std::string& run_id,
                                const StepRecord& step) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "INSERT INTO steps (run_id, name, seq, state, attempts, output_json,"
         " error, started_ms, finished_ms) VALUES (?1, ?2,"
         " (SELECT coalesce(max(seq), 0) + 1 FROM steps WHERE run_id = ?1),"
         " ?3, ?4, ?5, ?6, ?7, ?8)"
         " ON CONFLICT (run_id, name) DO UPDATE SET state = excluded.state,"
         " attempts = excluded.attempts, output_json = excluded.output_json,"
         " error = excluded.error, started_ms = excluded.started_ms,"
         " finished_ms = excluded.finished_ms");
  if (!s.ok()) return s.Error("prepare save step");
  s.Text(1, run_id);
  s.Text(2, step.name);
  s.Text(3, step.state);
  s.Int(4, step.attempts);
  s.Text(5, step.output_json);
  s.Text(6, step.error);
  s.Int(7, step.started_ms);
  s.Int(8, step.finished_ms);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return s.Error("save step");
  return OkStatus();
}

Status SqliteRunStore::SetState(const std::string& run_id,
                                const std::string& state,
                                const std::string& current_step,
                                const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "UPDATE runs SET state = ?2, current_step = ?3, error = ?4,"
         " updated_ms = ?5 WHERE run_id = ?1");
  if (!s.ok()) return s.Error("prepare set state");
  s.Text(1, run_id);
  s.Text(2, state);
  s.Text(3, current_step);
  s.Text(4, error);
  s.Int(5, env_->NowMs());
  if (sqlite3_step(s.get()) != SQLITE_DONE) return s.Error("set state");
  if (sqlite3_changes(db_) == 0) return NotFoundError("no run " + run_id);
  return OkStatus();
}

StatusOr<bool> SqliteRunStore::Claim(const std::string& run_id,
                                     const std::string& owner,
                                     int64_t lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = env_->NowMs();
  Stmt s(db_,
         "UPDATE runs SET claim_owner = ?2, claim_until = ?3"
         " WHERE run_id = ?1 AND (claim_owner = '' OR claim_owner = ?2"
         "  OR claim_until <= ?4)");
  if (!s.ok()) return s.Error("prepare claim");
  s.Text(1, run_id);
  s.Text(2, owner);
  s.Int(3, now + lease_ms);
  s.Int(4, now);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return s.Error("claim");
  if (sqlite3_changes(db_) > 0) return true;
  Stmt e(db_, "SELECT 1 FROM runs WHERE run_id = ?1");
  if (!e.ok()) return e.Error("prepare claim");
  e.Text(1, run_id);
  const int rc = sqlite3_step(e.get());
  if (rc == SQLITE_DONE) return NotFoundError("no run " + run_id);
  if (rc != SQLITE_ROW) return e.Error("claim");
  return false;
}

StatusOr<bool> SqliteRunStore::RenewClaim(const std::string& run_id,
                                          const std::string& owner,
                                          int64_t lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "UPDATE runs SET claim_until = ?3"
         " WHERE run_id = ?1 AND claim_owner = ?2");
  if (!s.ok()) return s.Error("prepare renew claim");
  s.Text(1, run_id);
  s.Text(2, owner);
  s.Int(3, env_->NowMs() + lease_ms);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return s.Error("renew claim");
  return sqlite3_changes(db_) > 0;
}

Status SqliteRunStore::ReleaseClaim(const std::string& run_id,
                                    const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "UPDATE runs SET claim_owner = '', claim_until = 0"
         " WHERE run_id = ?1 AND claim_owner = ?2");
  if (!s.ok()) return s.Error("prepare release claim");
  s.Text(1, run_id);
  s.Text(2, owner);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return s.Error("release claim");
  return OkStatus();
}

}  // namespace cbpipe
