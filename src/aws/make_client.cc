#include "aws/make_client.h"

#include <cstdlib>
#include <utility>

namespace cbpipe {

AwsClientOptions AwsClientOptionsFor(const AwsOptions& options,
                                     const std::string& region) {
  AwsClientOptions out;
  out.region = region;
  out.endpoints = options.endpoints;
  out.s3_addressing = options.s3_addressing;
  out.connect_timeout_seconds = options.connect_timeout_seconds;
  out.request_timeout_seconds = options.request_timeout_seconds;
  out.idle_timeout_seconds = options.idle_timeout_seconds;
  return out;
}

StatusOr<std::shared_ptr<AwsClient>> MakeAwsClient(
    const AwsOptions& options, const AwsHost& host,
    std::shared_ptr<AwsCallObserver> observer) {
  if (options.connect_timeout_seconds <= 0 ||
      options.request_timeout_seconds < 0 ||
      options.idle_timeout_seconds <= 0) {
    return InvalidArgumentError(
        "aws: timeouts must be positive (request_timeout_seconds may be 0)");
  }
  CBPIPE_ASSIGN_OR_RETURN(std::string region, ResolveAwsRegion(options, host));
  AwsClientOptions client_options = AwsClientOptionsFor(options, region);
  client_options.env = host.env;
  // AWS_CA_BUNDLE, as the AWS CLI and SDKs read it.
  std::optional<std::string> ca_bundle;
  if (host.getenv) {
    ca_bundle = host.getenv("AWS_CA_BUNDLE");
  } else if (const char* v = std::getenv("AWS_CA_BUNDLE")) {
    ca_bundle = v;
  }
  if (ca_bundle && !ca_bundle->empty()) client_options.ca_file = *ca_bundle;
  client_options.observer = std::move(observer);
  std::shared_ptr<AwsCredentialsProvider> credentials =
      MakeDefaultAwsCredentialsChain(options, host);
  CBPIPE_ASSIGN_OR_RETURN(
      std::unique_ptr<AwsClient> client,
      AwsClient::Create(std::move(client_options), std::move(credentials)));
  return std::shared_ptr<AwsClient>(std::move(client));
}

}  // namespace cbpipe
