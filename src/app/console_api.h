// The documents of the console's endpoints (docs/service.md, "Console
// API"), built from the run store, the queue and the configured
// destinations; app/admin_api.cc serves them.
//
//   std::vector<ConsoleDestination> dests = ConsoleDestinations(config);
//   nlohmann::json detail = RunDetailJson(run);
//   AddConsoleRunDetail(run, dests, rejects_csv, &detail);
//
// Pure functions of their arguments (the clock is a parameter); safe from
// any thread. Strings from inputs and servers are passed through as JSON
// strings: the console renders them as text.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "queue/queue.h"
#include "runs/run_store.h"

namespace cbpipe {

// What the console shows of one [[destination]] (never a credential).
struct ConsoleDestination {
  std::string name;
  std::string network;   // its first network ("visa")
  std::string protocol;  // "sftp", "ftps", "ftp", "file"
  std::string host;      // "" for file://
  int port = 0;          // the URL's, else the protocol's default; 0: file
  std::string folder;    // remote folder, ending in '/'
};

std::vector<ConsoleDestination> ConsoleDestinations(const Config& config);

// The rejects report (position,case_id,field,code,message; RFC 4180
// quoting): how many rows, and how many per code.
struct RejectsSummary {
  int64_t total = 0;
  std::map<std::string, int64_t> by_code;
};
RejectsSummary SummarizeRejects(std::string_view csv);

// One file's delivery to one destination, flattened from a run's steps.
struct ConsoleDelivery {
  std::string destination, network, file, status, remote_path, error;
  int64_t attempts = 0;
  std::optional<int64_t> delivered_ms;
  int64_t records = 0;
};
// The run's deliveries: every file of its deliver step's outputs
// ("delivered", "failed"), and "pending" for every generated file with no
// outcome yet.
std::vector<ConsoleDelivery> RunDeliveries(
    const RunRecord& run, const std::vector<ConsoleDestination>& dests);

// Adds to a RunDetailJson() document what the console's run page needs:
// files[] gain network and size; deliveries[] becomes RunDeliveries();
// "rejects" {total, by_code, download} (download null without a rejects
// report; `rejects_csv` null when it could not be read).
void AddConsoleRunDetail(const RunRecord& run,
                         const std::vector<ConsoleDestination>& dests,
                         const std::optional<std::string>& rejects_csv,
                         nlohmann::json* detail);

// 00:00 UTC of the day of `now_ms`.
int64_t UtcDayStartMs(int64_t now_ms);

// The per-destination part of /api/overview from recent runs (with their
// steps): last delivery, files/records/failures since 00:00 UTC,
// deliveries waiting for a retry (failed files of unfinished runs) and the
// reasons for attention. `reachable` per destination name, from the
// prober ("" key absent: null).
struct Reachability {
  bool up = false;
  int64_t checked_ms = 0;
  std::string error;
};
nlohmann::json DestinationsOverviewJson(
    const std::vector<ConsoleDestination>& dests,
    const std::vector<RunRecord>& recent_runs,
    const std::map<std::string, Reachability>& reachable, int64_t now_ms);

// GET /api/charts: per network, in buckets of `bucket_ms` ending with the
// one holding `now_ms` (`buckets` of them, the first starting at a whole
// bucket), from the deliveries of `runs` (with their steps): records
// delivered, delivery latency (delivered_ms - created_ms of the run, in
// seconds; p50 and p95, null for an empty bucket) and failure rate
// (failed / (failed + delivered) files, null when none).
nlohmann::json ChartsJson(const std::string& range, int64_t bucket_ms,
                          int buckets,
                          const std::vector<ConsoleDestination>& dests,
                          const std::vector<RunRecord>& runs, int64_t now_ms);
// The first bucket's start for ChartsJson.
int64_t ChartsStartMs(int64_t bucket_ms, int buckets, int64_t now_ms);

}  // namespace cbpipe
