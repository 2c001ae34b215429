#include <cstdio>

#include "app/commands.h"
#include "aws/credentials_chain.h"
#include "common/text_safety.h"

namespace cbpipe {
namespace {

// Where the AWS credentials and the region come from (never a secret), or
// why they cannot be found: the lookup the AWS adapters make.
bool CheckAws(const AwsOptions& options) {
  const AwsHost host;
  std::unique_ptr<AwsCredentialsProvider> credentials =
      MakeDefaultAwsCredentialsChain(options, host);
  StatusOr<AwsCredentials> found = credentials->Get();
  StatusOr<std::string> region = ResolveAwsRegion(options, host);
  for (const Status* s : {&found.status(), &region.status()}) {
    if (!s->ok())
      std::fprintf(stderr, "cbpipe config check: aws: %s\n",
                   EscapeForTerminal(s->message()).c_str());
  }
  if (!found.ok() || !region.ok()) return false;
  std::fprintf(stderr, "aws: credentials from %s, region %s\n",
               EscapeForTerminal(credentials->Source()).c_str(),
               region->c_str());
  return true;
}

}  // namespace

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
  if (UsesAws(*config) && !CheckAws(config->aws.value_or(AwsOptions{})))
    return kExitUsage;
  for (const std::string& warning : review.warnings)
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
  std::fprintf(stderr, "config OK: %zu destination(s)\n",
               config->destinations.size());
  return kExitOk;
}

}  // namespace cbpipe
