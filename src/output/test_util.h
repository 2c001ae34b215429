// Helpers shared by the output tests: records, options and scratch folders.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "domain/record.h"
#include "output/options.h"

namespace cbpipe::testing {

inline Record MakeRecord(Network network, std::string case_id,
                         int64_t amount_minor = 1250,
                         std::string currency = "USD", int exponent = 2) {
  Record r;
  r.position = 2;
  r.case_id = std::move(case_id);
  r.network = network;
  if (network == Network::kVisa || network == Network::kMastercard) {
    r.arn = "74567890123456789012345";
  }
  r.pan_masked = "411111******1111";
  r.merchant_id = "000123";
  r.transaction_date = DateTime{.year = 2025, .month = 2, .day = 27};
  r.chargeback_date = DateTime{.year = 2025, .month = 3, .day = 1};
  r.amount_minor = amount_minor;
  r.currency = std::move(currency);
  r.currency_exponent = exponent;
  r.reason_code = "10.4";
  r.stage = Stage::kFirstChargeback;
  r.merchant_name = "Acme, Inc.";
  r.mcc = "5999";
  return r;
}

inline OutputRoute MakeDestination(std::string name,
                                         std::vector<Network> networks) {
  OutputRoute d;
  d.name = std::move(name);
  d.networks = std::move(networks);
  return d;
}

// One destination per network, named after it, in the usual order.
inline OutputOptions FourNetworkOptions() {
  OutputOptions config;
  for (Network n : kAllNetworks) {
    config.routes.push_back(
        MakeDestination(std::string(NetworkName(n)), {n}));
  }
  return config;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// A fresh folder under $TMPDIR, removed with its contents at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cbpipe-output-XXXXXX")
            .string();
    path_ = mkdtemp(pattern.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace cbpipe::testing
