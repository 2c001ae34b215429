// The [aws] table of the configuration, as aws/ takes it (config/ maps the
// TOML into it; aws/ never includes config/). docs/configuration.md.
// MakeAwsClient (aws/make_client.h) turns it into the one AwsClient.
#pragma once

#include <map>
#include <string>

namespace cbpipe {

enum class AwsS3Addressing {
  kAuto,           // path style with an endpoint override or a dotted
                   // bucket name, virtual-hosted otherwise
  kPathStyle,      // https://s3.REGION.amazonaws.com/BUCKET/KEY
  kVirtualHosted,  // https://BUCKET.s3.REGION.amazonaws.com/KEY
};

struct AwsOptions {
  // The region; "" = AWS_REGION, AWS_DEFAULT_REGION, then the profile's
  // `region` (ResolveAwsRegion in credentials_chain.h).
  std::string region;
  // The shared-file profile; "" = AWS_PROFILE, then "default". Naming one
  // here is like the CLI's --profile: environment keys are then not used.
  std::string profile;
  // Endpoint override per service signing name ("s3", "sqs", "dynamodb",
  // "sns", "secretsmanager", "logs", ...): an http:// or https:// URL
  // without path ("http://127.0.0.1:5000" for moto, a MinIO URL). A
  // service not named here uses https://SERVICE.REGION.amazonaws.com.
  std::map<std::string, std::string> endpoints;
  AwsS3Addressing s3_addressing = AwsS3Addressing::kAuto;
  double connect_timeout_seconds = 10;
  // The whole attempt, transfer included; 0 = no limit.
  double request_timeout_seconds = 0;
  // An attempt fails when less than one byte moved for this long.
  double idle_timeout_seconds = 60;
  // How long an aws-sm: secret is served from memory before it is read
  // again (secrets/aws_secrets_manager.h); 0 = read at every use. Not a
  // client option: OpenSecretStoreFor (workflow/registry.h) reads it.
  double secrets_cache_seconds = 300;
};

}  // namespace cbpipe
