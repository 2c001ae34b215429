// The [aws] table of the configuration, as aws/ takes it (config/ maps the
// TOML into it; aws/ never includes config/). docs/configuration.md.
#pragma once

#include <string>

namespace cbpipe {

struct AwsOptions {
  // The region; "" = AWS_REGION, AWS_DEFAULT_REGION, then the profile's
  // `region` (ResolveAwsRegion in credentials_chain.h).
  std::string region;
  // The shared-file profile; "" = AWS_PROFILE, then "default". Naming one
  // here is like the CLI's --profile: environment keys are then not used.
  std::string profile;
};

}  // namespace cbpipe
