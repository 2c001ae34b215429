#include "app/console_api.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "deliver/curl_transport.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

// The next field of a CSV row at `*pos` (RFC 4180: quoted fields may hold
// commas, doubled quotes and line breaks); `*end_of_row` when it was the
// row's last.
std::string NextField(std::string_view csv, size_t* pos, bool* end_of_row) {
  std::string field;
  size_t i = *pos;
  if (i < csv.size() && csv[i] == '"') {
    for (++i; i < csv.size(); ++i) {
      if (csv[i] == '"') {
        if (i + 1 < csv.size() && csv[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          ++i;
          break;
        }
      } else {
        field.push_back(csv[i]);
      }
    }
  }
  while (i < csv.size() && csv[i] != ',' && csv[i] != '\n' && csv[i] != '\r')
    field.push_back(csv[i++]);
  *end_of_row = i >= csv.size() || csv[i] != ',';
  if (i < csv.size() && csv[i] == ',') {
    ++i;
  } else {
    if (i < csv.size() && csv[i] == '\r') ++i;
    if (i < csv.size() && csv[i] == '\n') ++i;
  }
  *pos = i;
  return field;
}

const ConsoleDestination* FindDestination(
    const std::vector<ConsoleDestination>& dests, std::string_view name) {
  for (const ConsoleDestination& d : dests) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

// Every object under `j` that describes one file's delivery outcome.
void CollectOutcomes(const json& j, std::vector<const json*>* out) {
  if (j.is_object()) {
    if (j.contains("status") && j["status"].is_string() && j.contains("name") &&
        j.contains("destination")) {
      out->push_back(&j);
      return;
    }
    for (const auto& [k, v] : j.items()) CollectOutcomes(v, out);
  } else if (j.is_array()) {
    for (const json& v : j) CollectOutcomes(v, out);
  }
}

std::string Str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string()
             ? j[key].get<std::string>()
             : std::string();
}

int64_t Int(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number_integer()
             ? j[key].get<int64_t>()
             : 0;
}

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace

std::vector<ConsoleDestination> ConsoleDestinations(const Config& config) {
  std::vector<ConsoleDestination> out;
  for (const DestinationConfig& d : config.destinations) {
    ConsoleDestination c;
    c.name = d.name;
    if (!d.networks.empty())
      c.network = std::string(NetworkName(d.networks[0]));
    c.protocol = d.url.substr(0, d.url.find("://"));
    if (c.protocol != "file") {
      StatusOr<DestinationUrl> url = ParseDestinationUrl(d.url);
      if (url.ok()) {
        c.host = url->host;
        c.port = url->port.empty() ? 0 : std::atoi(url->port.c_str());
        c.folder = UrlDecode(DestinationFolder(*url));
      }
      if (c.port == 0) {
        c.port = c.protocol == "sftp" ? 22
                 : c.protocol == "ftps" && d.ftps_mode == FtpsMode::kImplicit
                     ? 990
                     : 21;
      }
    } else {
      c.folder = d.url.substr(std::min(d.url.size(), size_t{7}));
      if (!c.folder.empty() && c.folder.back() != '/') c.folder += '/';
    }
    out.push_back(std::move(c));
  }
  return out;
}

RejectsSummary SummarizeRejects(std::string_view csv) {
  RejectsSummary s;
  size_t pos = 0;
  bool header = true;
  while (pos < csv.size()) {
    std::vector<std::string> row;
    bool end = false;
    while (!end && pos < csv.size()) row.push_back(NextField(csv, &pos, &end));
    if (row.size() == 1 && row[0].empty()) continue;  // a blank line
    if (header) {
      header = false;
      continue;
    }
    ++s.total;
    ++s.by_code[row.size() > 3 ? row[3] : std::string()];
  }
  return s;
}

std::vector<ConsoleDelivery> RunDeliveries(
    const RunRecord& run, const std::vector<ConsoleDestination>& dests) {
  std::vector<ConsoleDelivery> out;
  std::set<std::pair<std::string, std::string>> seen;
  auto network_of = [&](const std::string& dest) {
    const ConsoleDestination* d = FindDestination(dests, dest);
    return d ? d->network : std::string();
  };
  auto remote_path = [&](const std::string& dest, const std::string& name) {
    const ConsoleDestination* d = FindDestination(dests, dest);
    return (d ? d->folder : std::string()) + name;
  };
  // The outcomes of the deliver steps (the later step's record of a file
  // replaces an earlier one's).
  for (auto it = run.steps.rbegin(); it != run.steps.rend(); ++it) {
    const StepRecord& step = *it;
    if (step.name.rfind("deliver", 0) != 0 && step.name != "notify" &&
        step.name != "settle" && step.name != "record_failure")
      continue;
    const json output = Parse(step.output_json);
    std::vector<const json*> outcomes;
    CollectOutcomes(output, &outcomes);
    for (const json* f : outcomes) {
      ConsoleDelivery d;
      d.destination = Str(*f, "destination");
      d.file = Str(*f, "name");
      if (!seen.emplace(d.destination, d.file).second) continue;
      const std::string status = Str(*f, "status");
      d.status = status == "failed" ? "failed" : "delivered";
      d.network = network_of(d.destination);
      d.remote_path = remote_path(d.destination, d.file);
      d.attempts = Int(*f, "attempts");
      d.error = Str(*f, "error");
      d.records = Int(*f, "records");
      if (d.status == "delivered")
        d.delivered_ms = step.finished_ms ? step.finished_ms : run.updated_ms;
      out.push_back(std::move(d));
    }
  }
  // Generated files with no outcome yet.
  for (const StepRecord& step : run.steps) {
    if (step.name != "scan" && step.name != "generate") continue;
    const json output = Parse(step.output_json);
    if (!output.is_object() || !output.contains("batches") ||
        !output["batches"].is_array())
      continue;
    for (const json& b : output["batches"]) {
      if (!b.is_object() || !b.contains("files") || !b["files"].is_array())
        continue;
      for (const json& f : b["files"]) {
        ConsoleDelivery d;
        d.destination = Str(f, "destination");
        d.file = Str(f, "name");
        if (!seen.emplace(d.destination, d.file).second) continue;
        d.status = "pending";
        d.network = network_of(d.destination);
        d.remote_path = remote_path(d.destination, d.file);
        d.records = Int(f, "records");
        out.push_back(std::move(d));
      }
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ConsoleDelivery& a, const ConsoleDelivery& b) {
                     return std::tie(a.destination, a.file) <
                            std::tie(b.destination, b.file);
                   });
  return out;
}

void AddConsoleRunDetail(const RunRecord& run,
                         const std::vector<ConsoleDestination>& dests,
                         const std::optional<std::string>& rejects_csv,
                         json* detail) {
  json& files = (*detail)["files"];
  if (files.is_array()) {
    for (json& f : files) {
      if (!f.is_object()) continue;
      const ConsoleDestination* d =
          FindDestination(dests, Str(f, "destination"));
      f["network"] = d ? json(d->network) : json(nullptr);
      f["size"] = Int(f, "bytes");
    }
  }
  json deliveries = json::array();
  for (const ConsoleDelivery& d : RunDeliveries(run, dests)) {
    deliveries.push_back(
        {{"destination", d.destination},
         {"network", d.network.empty() ? json(nullptr) : json(d.network)},
         {"file", d.file},
         {"status", d.status},
         {"remote_path", d.remote_path},
         {"attempts", d.attempts},
         {"error", d.error.empty() ? json(nullptr) : json(d.error)},
         {"delivered_ms",
          d.delivered_ms ? json(*d.delivered_ms) : json(nullptr)},
         {"records", d.records}});
  }
  (*detail)["deliveries"] = std::move(deliveries);
  const bool has_rejects = !(*detail)["rejects_file"].is_null();
  json rejects = {
      {"total", nullptr}, {"by_code", json::object()}, {"download", nullptr}};
  if (has_rejects && rejects_csv) {
    const RejectsSummary s = SummarizeRejects(*rejects_csv);
    rejects["total"] = s.total;
    for (const auto& [code, n] : s.by_code) rejects["by_code"][code] = n;
    if (s.total > 0)
      rejects["download"] = "/api/runs/" + run.run_id + "/rejects";
  } else if (!has_rejects) {
    rejects["total"] = 0;
  }
  (*detail)["rejects"] = std::move(rejects);
}

int64_t UtcDayStartMs(int64_t now_ms) {
  constexpr int64_t kDay = 86'400'000;
  return now_ms - ((now_ms % kDay) + kDay) % kDay;
}

json DestinationsOverviewJson(
    const std::vector<ConsoleDestination>& dests,
    const std::vector<RunRecord>& recent_runs,
    const std::map<std::string, Reachability>& reachable, int64_t now_ms) {
  const int64_t today = UtcDayStartMs(now_ms);
  struct Tally {
    std::optional<int64_t> last_ms;
    int64_t files = 0, records = 0, failures = 0, retries = 0;
    std::optional<int64_t> next_retry_ms;
  };
  std::map<std::string, Tally> tally;
  for (const RunRecord& run : recent_runs) {
    const bool finished = run.state == "succeeded" || run.state == "failed" ||
                          run.state == "rejected";
    for (const ConsoleDelivery& d : RunDeliveries(run, dests)) {
      Tally& t = tally[d.destination];
      if (d.status == "delivered" && d.delivered_ms) {
        if (!t.last_ms || *d.delivered_ms > *t.last_ms)
          t.last_ms = d.delivered_ms;
        if (*d.delivered_ms >= today) {
          ++t.files;
          t.records += d.records;
        }
      } else if (d.status == "failed") {
        if (run.updated_ms >= today) ++t.failures;
        if (!finished) ++t.retries;
      }
    }
    if (finished) continue;
    // A Task waiting for its next attempt (the engine's "retrying"
    // checkpoint, EngineOptions::checkpoint_retry_waits).
    for (const StepRecord& step : run.steps) {
      if (step.state != "retrying") continue;
      const json out = Parse(step.output_json);
      if (!out.is_object() || !out.contains("input")) continue;
      const std::string dest = Str(out["input"], "destination");
      if (dest.empty()) continue;
      Tally& t = tally[dest];
      ++t.retries;
      const int64_t at = Int(out, "retry_at_ms");
      if (at > 0 && (!t.next_retry_ms || at < *t.next_retry_ms))
        t.next_retry_ms = at;
    }
  }
  json out = json::array();
  for (const ConsoleDestination& d : dests) {
    const Tally& t = tally[d.name];
    json attention = json::array();
    json up = nullptr, checked = nullptr, error = nullptr;
    if (auto it = reachable.find(d.name); it != reachable.end()) {
      up = it->second.up;
      checked = it->second.checked_ms;
      if (!it->second.up) {
        error = it->second.error;
        attention.push_back("unreachable");
      }
    }
    if (t.retries > 0) attention.push_back("retry waiting");
    if (t.failures > 0) attention.push_back("failures today");
    out.push_back(
        {{"name", d.name},
         {"network", d.network},
         {"protocol", d.protocol},
         {"host", d.host},
         {"port", d.port},
         {"last_delivery_ms", t.last_ms ? json(*t.last_ms) : json(nullptr)},
         {"last_delivery_age_seconds",
          t.last_ms ? json(static_cast<double>(now_ms - *t.last_ms) / 1000.0)
                    : json(nullptr)},
         {"files_today", t.files},
         {"records_today", t.records},
         {"failures_today", t.failures},
         {"retries_waiting", t.retries},
         {"next_retry_ms",
          t.next_retry_ms ? json(*t.next_retry_ms) : json(nullptr)},
         {"reachable", up},
         {"reachable_checked_ms", checked},
         {"reachable_error", error},
         {"attention", std::move(attention)}});
  }
  return out;
}

int64_t ChartsStartMs(int64_t bucket_ms, int buckets, int64_t now_ms) {
  return now_ms - (now_ms % bucket_ms) - (buckets - 1) * bucket_ms;
}

json ChartsJson(const std::string& range, int64_t bucket_ms, int buckets,
                const std::vector<ConsoleDestination>& dests,
                const std::vector<RunRecord>& runs, int64_t now_ms) {
  const int64_t start = ChartsStartMs(bucket_ms, buckets, now_ms);
  struct Series {
    std::vector<int64_t> records, delivered, failed;
    std::vector<std::vector<double>> latency;
  };
  std::map<std::string, Series> by_network;
  for (Network n : kAllNetworks) {
    Series& s = by_network[std::string(NetworkName(n))];
    s.records.assign(buckets, 0);
    s.delivered.assign(buckets, 0);
    s.failed.assign(buckets, 0);
    s.latency.assign(buckets, {});
  }
  auto bucket_of = [&](int64_t ms) {
    if (ms < start) return -1;
    const int64_t b = (ms - start) / bucket_ms;
    return b < buckets ? static_cast<int>(b) : -1;
  };
  for (const RunRecord& run : runs) {
    for (const ConsoleDelivery& d : RunDeliveries(run, dests)) {
      auto it = by_network.find(d.network);
      if (it == by_network.end()) continue;
      Series& s = it->second;
      if (d.status == "delivered" && d.delivered_ms) {
        const int b = bucket_of(*d.delivered_ms);
        if (b < 0) continue;
        s.records[b] += d.records;
        ++s.delivered[b];
        s.latency[b].push_back(
            static_cast<double>(*d.delivered_ms - run.created_ms) / 1000.0);
      } else if (d.status == "failed") {
        const int b = bucket_of(run.updated_ms);
        if (b >= 0) ++s.failed[b];
      }
    }
  }
  // The nearest-rank percentile.
  auto percentile = [](std::vector<double> v, double p) -> json {
    if (v.empty()) return nullptr;
    std::sort(v.begin(), v.end());
    size_t rank = static_cast<size_t>(std::ceil(p * v.size()));
    return v[std::max<size_t>(rank, 1) - 1];
  };
  json out = {{"range", range},
              {"bucket_seconds", bucket_ms / 1000},
              {"buckets_ms", json::array()},
              {"records_per_network", json::object()},
              {"delivery_latency_seconds", json::object()},
              {"failure_rate", json::object()}};
  for (int b = 0; b < buckets; ++b)
    out["buckets_ms"].push_back(start + b * bucket_ms);
  for (const auto& [network, s] : by_network) {
    json p50 = json::array(), p95 = json::array(), rate = json::array();
    for (int b = 0; b < buckets; ++b) {
      p50.push_back(percentile(s.latency[b], 0.50));
      p95.push_back(percentile(s.latency[b], 0.95));
      const int64_t all = s.delivered[b] + s.failed[b];
      rate.push_back(all ? json(static_cast<double>(s.failed[b]) /
                                static_cast<double>(all))
                         : json(nullptr));
    }
    out["records_per_network"][network] = s.records;
    out["delivery_latency_seconds"][network] = {{"p50", p50}, {"p95", p95}};
    out["failure_rate"][network] = rate;
  }
  return out;
}

}  // namespace cbpipe
