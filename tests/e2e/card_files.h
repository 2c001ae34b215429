// The files the card companies received, by network, and what a clean
// `cbpipe run` of an input delivers, to compare the two byte for byte:
//
//   CardFiles expected = CleanRunFiles(dir + "/clean", input, 150);
//   CardFiles got;
//   got.AddUnder(sftp.root_dir() + "/visa", "visa");  // ... each network
//   EXPECT_EQ(got.contents, expected.contents);
//   EXPECT_EQ(got.files, expected.files);
//   EXPECT_FALSE(got.leftovers);
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "e2e/cli.h"
#include "gtest/gtest.h"

namespace cbpipe::testing {

struct CardFiles {
  // Network ("visa") -> every file's bytes.
  std::map<std::string, std::multiset<std::string>> contents;
  int files = 0;
  bool leftovers = false;  // a temporary (.part) was left somewhere

  // Adds every file under `root` (recursively) as `network`'s.
  void AddUnder(const std::string& root, const std::string& network) {
    namespace fs = std::filesystem;
    if (!fs::exists(root)) return;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (!e.is_regular_file()) continue;
      const std::string name = e.path().filename().string();
      if (name.size() > 5 && name.substr(name.size() - 5) == ".part") {
        leftovers = true;
        continue;
      }
      contents[network].insert(ReadFile(e.path().string()));
      ++files;
    }
  }
};

// What `cbpipe run` delivers for `input` to a file:// folder per network
// under `dir`, with [output] max_records_per_file.
inline CardFiles CleanRunFiles(const std::string& dir, const std::string& input,
                               int max_records_per_file) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string c = "[output]\nwork_dir = \"" + dir +
                  "/work\"\nmax_records_per_file = " +
                  std::to_string(max_records_per_file) + "\n";
  for (const char* net : {"visa", "mastercard", "amex", "discover"}) {
    c += std::string("[[destination]]\nname = \"") + net +
         "\"\nnetworks = [\"" + net + "\"]\nurl = \"file://" + dir + "/out/" +
         net + "\"\n";
  }
  WriteFile(dir + "/clean.toml", c);
  CliResult r = RunCli("run --config " + ShellQuote(dir + "/clean.toml") + " " +
                       ShellQuote(input));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  CardFiles out;
  for (const char* net : {"visa", "mastercard", "amex", "discover"})
    out.AddUnder(dir + "/out/" + net, net);
  return out;
}

}  // namespace cbpipe::testing
