#include <cstdio>

#include "app/commands.h"
#include "aws/credentials_chain.h"
#include "common/text_safety.h"
#include "common/url.h"
#include "store/s3_store.h"
#include "workflow/registry.h"

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

// What [service] object_store resolves to: the adapter and its resource
// ("object_store: s3://b/p -> S3ObjectStore, bucket b, prefix p, endpoint
// https://s3.eu-west-1.amazonaws.com"). Nothing is called. False (with
// the reason) when the URL cannot be opened.
bool CheckObjectStore(const Config& config) {
  const std::string& url = config.service.object_store;
  if (url.empty()) return true;
  const AwsOptions aws = config.aws.value_or(AwsOptions{});
  StatusOr<std::unique_ptr<ObjectStore>> store = OpenObjectStore(url, aws);
  if (!store.ok()) {
    std::fprintf(stderr, "cbpipe config check: service.object_store: %s\n",
                 EscapeForTerminal(store.status().message()).c_str());
    return false;
  }
  std::string resolved = (*store)->Describe();
  if (url.rfind("s3://", 0) == 0) {
    std::string bucket, prefix;
    const size_t q = url.find('?');
    if (ParseS3Url(url.substr(0, q), &bucket, &prefix).ok()) {
      StatusOr<std::shared_ptr<AwsClient>> client = AwsClientFor(aws);
      resolved = "S3ObjectStore, bucket " + bucket + ", prefix \"" + prefix +
                 "\", endpoint " +
                 (client.ok() ? (*client)->EndpointUrl("s3") : "?");
    }
  }
  std::fprintf(stderr, "object_store: %s -> %s\n",
               EscapeForTerminal(RedactUrl(url)).c_str(),
               EscapeForTerminal(resolved).c_str());
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
  if (!CheckObjectStore(*config)) return kExitUsage;
  for (const std::string& warning : review.warnings)
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
  std::fprintf(stderr, "config OK: %zu destination(s)\n",
               config->destinations.size());
  return kExitOk;
}

}  // namespace cbpipe
