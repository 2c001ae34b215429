#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "app/commands.h"
#include "secrets/aws_secrets_manager.h"
#include "secrets/env_file_secret_store.h"
#include "secrets/routing_secret_store.h"
#include "workflow/registry.h"

namespace cbpipe {
namespace {

bool IsAwsSecretReference(const std::string& ref) {
  return ref.rfind(kAwsSecretsManagerScheme, 0) == 0;
}

}  // namespace

Status CheckAwsSecretsConfigured(const Config& config) {
  if (config.aws) return OkStatus();
  for (const DestinationConfig& d : config.destinations) {
    for (const auto& [key, ref] :
         {std::pair<const char*, const std::string*>{"password",
                                                     &d.password_ref},
          {"private_key", &d.private_key_ref}}) {
      if (!IsAwsSecretReference(*ref)) continue;
      // The reference names a secret, it is not one: safe to show.
      return FailedPreconditionError(
          "destination " + d.name + ": " + key + " " + *ref +
          " is an AWS Secrets Manager reference, but the config has no "
          "[aws] table: add one (at least its region, e.g. [aws] region = "
          "\"eu-west-1\"; docs/aws.md)");
    }
  }
  return OkStatus();
}

std::unique_ptr<SecretStore> OpenCommandSecrets(const Config& config) {
  if (config.aws) return OpenSecretStoreFor(*config.aws);
  // No [aws]: env: and file: as always; an aws-sm: reference (which
  // CheckAwsSecretsConfigured refuses up front for destinations) fails
  // with the reason instead of reaching for a region nobody configured.
  auto store =
      std::make_unique<RoutingSecretStore>(EnvFileSecretStore::Default());
  store->Route(std::string(kAwsSecretsManagerScheme),
               []() -> StatusOr<std::unique_ptr<SecretStore>> {
                 return FailedPreconditionError(
                     "aws-sm: secret references need an [aws] table in the "
                     "config (docs/aws.md)");
               });
  return store;
}

}  // namespace cbpipe
