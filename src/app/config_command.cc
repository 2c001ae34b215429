#include <cstdio>

#include "app/commands.h"
#include "common/text_safety.h"

namespace cbpipe {

int RunConfigCheck(const std::string& config_path) {
  StatusOr<Config> config = LoadConfigOrDefault(config_path);
  if (!config.ok()) {
    // The message may quote the config's text: never raw to a terminal.
    std::fprintf(stderr, "cbpipe config check: %s\n",
                 EscapeForTerminal(config.status().message()).c_str());
    return kExitUsage;
  }
  const ConfigReview review = ReviewConfig(*config);
  for (const std::string& error : review.errors)
    std::fprintf(stderr, "cbpipe config check: %s\n", error.c_str());
  if (!review.errors.empty()) return kExitUsage;
  std::printf("%s", DescribeConfig(*config).c_str());
  for (const std::string& warning : review.warnings)
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
  std::fprintf(stderr, "config OK: %zu destination(s)\n",
               config->destinations.size());
  return kExitOk;
}

}  // namespace cbpipe
