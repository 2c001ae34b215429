// Audit lines: every operator action that changes the service's state — a
// redrive, a purge, a replay, from the admin API or the CLI — is written to
// the log as one line (docs/observability.md, "Audit lines"):
//
//   AuditRecord a;
//   a.action = "redrive";
//   a.actor = TokenActor(token);   // or LocalActor(&a.origin) for the CLI
//   a.via = "api";
//   a.dead_letter_id = id;
//   a.outcome = "ok";
//   WriteAudit(a);
//
// writes
//
//   {"time":"...","level":"info","event":"audit.redrive","msg":"redrive ok",
//    "run_id":"3f9c2a7b1d04e5f6","actor":"token:9f86d081","via":"api",
//    "origin":"127.0.0.1:50412","dead_letter_id":"0193...","count":1,
//    "outcome":"ok","error":""}
//
// run_id and destination are the log's context fields, present when known;
// every other key is on every audit line (empty when it does not apply), so
// a parser needs no special cases. Audit lines are written whatever the log
// level. A token itself is never written: only the first 8 hex digits of
// its SHA-256, enough to tell tokens apart after a rotation.
//
// Thread safety: WriteAudit may be called from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "telemetry/log.h"

namespace cbpipe {

struct AuditRecord {
  std::string action;  // "redrive", "purge", "replay": event "audit.<action>"
  std::string actor;   // "token:<8 hex>", "anonymous", "user:<name>"
  std::string via;     // "api" or "cli"
  // API: the client's address and port. CLI: "uid=<n> pid=<n>", plus
  // " sudo_user=<name>" when run through sudo.
  std::string origin;
  std::string run_id;          // the run acted on, when known
  std::string dead_letter_id;  // one dead letter; "*" for all of them
  std::string destination;     // replay limited to one destination
  int64_t count = 0;           // dead letters or files affected
  // "ok"; "not_found", "refused" (a precondition), "failed" (the action ran
  // and failed, fully or partly), "unauthenticated", "forbidden",
  // "client_gone" (the client left before the action: not done).
  std::string outcome;
  std::string error;  // why, when not "ok"
};

// Writes `record` to `logger`: level info when the outcome is "ok", warn
// otherwise.
void WriteAudit(const AuditRecord& record, Logger& logger = Log());

// "token:" and the first 8 hex digits of the SHA-256 of `token`.
std::string TokenActor(std::string_view token);

// "user:<name>" for the real user id of this process ("user:<uid>" when it
// has no name); sets `*origin` as described above.
std::string LocalActor(std::string* origin);

}  // namespace cbpipe
