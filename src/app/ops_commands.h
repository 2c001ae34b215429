// The operator's commands for a running (or stopped) `cbpipe serve`
// (docs/service.md, "Operator commands"). They work on the service's stores
// directly — the run store, the inputs queue and its dead letters, the
// delivery ledger and the inbox — which SQLite's WAL mode, atomic renames
// and the AWS services' own concurrency make safe while the service runs.
// Each store is the one the service opens: [service] run_store, queue,
// ledger, work_store and object_store through workflow/registry.h with the
// [aws] table (DynamoDB, SQS, S3), else the SQLite files and folders under
// the work dir. Secret references (replay's destinations) resolve as in
// serve, aws-sm: included (OpenCommandSecrets, app/commands.h).
//
// SQS has no way to look at a message without receiving it: listing or
// showing dead letters receives the whole dead-letter queue with a 30 s
// visibility timeout and releases it at once (SqsQueue, queue/sqs_queue.h);
// a redrive sends the message back to the queue and deletes it from the
// dead-letter queue only after that send succeeded, so a crash in between
// leaves it in both: the service's run id makes the second copy a no-op
// (the run's checkpoints and the ledger's entries are found, nothing is
// delivered twice).
//
//   cbpipe runs list [--state S] [--limit N] [--json]
//   cbpipe runs show RUN_ID [--json]
//   cbpipe dlq list|show ID|redrive ID|redrive --all|purge --yes [--json]
//   cbpipe replay RUN_ID [--destination NAME] [--json]
//   cbpipe submit FILE...
//
// Each returns the process exit code of app/commands.h: kExitOk,
// kExitRejected (1: something failed: a delivery, a file not submitted)
// or kExitUsage (2: bad arguments, unknown id, no state database).
// Human-readable tables on stdout by default, one JSON document with
// `json`; errors on stderr.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "workflow/service.h"

namespace cbpipe {

// The queue of inputs waiting for a workflow run, in the state database
// (the one `cbpipe serve` consumes) unless [service] queue names another.
// Paths come from ResolveServicePaths: state_db (default
// <work_dir>/state.db), inbox_dir (<work_dir>/inbox) and the ledger
// (<work_dir>/ledger.db).
inline constexpr std::string_view kInputsQueue = kInputsQueueName;

// Runs newest first; `state` "" for all, else one of queued, running,
// succeeded, failed, rejected. `limit` 1..500.
int RunsList(const Config& config, const std::string& state, int limit,
             bool json);
// One run with its steps, files, deliveries and errors.
int RunsShow(const Config& config, const std::string& id, bool json);

// Dead letters of the inputs queue (all of them, oldest first).
int DlqList(const Config& config, bool json);
int DlqShow(const Config& config, const std::string& id, bool json);
// Moves dead letter `id` back to the queue, or with `all` (and id "")
// every one of them.
int DlqRedrive(const Config& config, const std::string& id, bool all);
// Deletes every dead letter; refuses (kExitUsage) unless `yes`.
int DlqPurge(const Config& config, bool yes);

// Delivers a finished run's files again (a card company lost them): reads
// the batches from the run's scan step, re-verifies every file against
// its manifest (refusing, exit 1, if any no longer matches), then delivers
// with replay = true, so the ledger records each delivery as a replay. With
// `destination` set, only that destination's files are sent. Refuses runs
// that are still queued or running.
int Replay(const Config& config, const std::string& run_id, bool json,
           const std::string& destination = "");

// Hands files to a running service: each is copied into the inbox as
// ".<name>.<random>.part", fsynced, then renamed to <name> (to
// "<stem>~N<ext>" if <name> is taken) and the folder fsynced, so the
// watcher, which ignores dot-files, only ever sees complete files. Prints
// where each went. Refuses anything but regular files and names starting
// with '.'; the inbox must exist. A service taking its inputs from S3
// events ([service] events_queue) has no inbox: refused (kExitUsage),
// saying where to put the files instead.
int Submit(const Config& config, const std::vector<std::string>& files);

}  // namespace cbpipe
