// output/'s options: where batches are written, the file limits, the
// layouts defined in the config and, per destination, what output/ needs to
// route records and name files. config/ builds them from the TOML
// (OutputOptionsOf in config/config.h); output/ never sees the config.
//
//   OutputOptions options;
//   options.work_dir = "/var/lib/cbpipe";
//   options.routes.push_back({.name = "visa", .networks = {Network::kVisa}});
//   BatchPlanner planner(options, {.input_id = "in1",
//                                  .work_dir = options.work_dir});
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "domain/network.h"
#include "output/layout.h"

namespace cbpipe {

struct Limits {
  int max_files_per_batch = 4;
  uint64_t max_file_bytes = 50ull << 20;  // 50 MiB
  uint64_t max_records_per_file = 0;      // 0: no limit
};

// One destination as output/ sees it: its files' names and layout, and the
// records it receives. Records of a network go to the first route listing it.
struct OutputRoute {
  std::string name;               // unique plain file name: staging, manifests
  std::vector<Network> networks;  // which records it receives
  std::string file_name_template =
      "{network}_{date}_{input_id}_b{batch}_f{file}.csv";
  std::string layout;  // built-in or a key of `layouts`; default: the first
                       // network's built-in layout
};

struct OutputOptions {
  std::string work_dir = "cbpipe-out";  // runs, batches, rejects, ledger
  Limits limits;
  std::map<std::string, Layout> layouts;  // [layout.NAME], by name
  std::vector<OutputRoute> routes;        // in config order
};

}  // namespace cbpipe
