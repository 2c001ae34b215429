// The SecretStore of AWS Secrets Manager (secret_store.h): references
// "aws-sm:SECRET_ID#json_key" name one key of a secret whose SecretString
// is a JSON object ({"password":"...","private_key":"..."}); without
// "#json_key" the whole SecretString is the value. SECRET_ID is the
// secret's name or ARN.
//
//   auto aws = MakeAwsClient(...);  // aws/client.h
//   AwsSecretsManagerStore secrets(aws, {.cache_ttl_ms = 300'000});
//   auto pw = secrets.Resolve("aws-sm:cbpipe/visa-sftp#password");
//   ... the server refused the login ...
//   if (secrets.Invalidate("aws-sm:cbpipe/visa-sftp#password")) retry once;
//
// One GetSecretValue (AWSCURRENT) per secret id and TTL: every key of the
// secret is served from the one cached SecretString until `cache_ttl_ms`
// (options.env's clock) has passed or Invalidate drops it, so a rotated
// secret is read at the latest one TTL later, or at once after a refused
// login. The cache holds SecretStrings (wiped when dropped).
//
// Errors: kInvalidArgument for a reference that is not aws-sm: (not
// echoed), has no SECRET_ID, or an empty "#"; kNotFound for a secret that
// does not exist (AWS: 400 ResourceNotFoundException; moto: 404) or has no
// such key, naming the id and key; kFailedPrecondition for a secret with
// only SecretBinary, a SecretString that is not a JSON object when a key
// is asked for, a key whose value is not a non-empty string, an empty
// value; kPermissionDenied / kUnauthenticated / kUnavailable as the client
// says (aws/client.h: throttling and 5xx already retried there). Messages
// hold the reference and the AWS error code and request id, never a value.
//
// KeyFilePath writes the value to a private file (PrivateKeyFiles), one per
// reference, rewritten when the value changed.
//
// Thread-safe. Ownership: shares the client; the store must outlive the
// users of its key file paths.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "aws/client.h"
#include "common/env.h"
#include "secrets/secret_store.h"

namespace cbpipe {

inline constexpr std::string_view kAwsSecretsManagerScheme = "aws-sm:";

struct AwsSecretsManagerOptions {
  int64_t cache_ttl_ms = 300'000;  // 0: read at every Resolve
  Env* env = nullptr;              // the TTL's clock; nullptr: Default()
};

// A reference's parts: "aws-sm:prod/visa#password" -> {"prod/visa",
// "password"}; key "" when there is no '#'.
struct AwsSecretReference {
  std::string secret_id;
  std::string json_key;
};
// kInvalidArgument as described above.
StatusOr<AwsSecretReference> ParseAwsSecretReference(
    std::string_view reference);

class AwsSecretsManagerStore : public SecretStore {
 public:
  explicit AwsSecretsManagerStore(std::shared_ptr<AwsClient> client,
                                  AwsSecretsManagerOptions options = {});
  ~AwsSecretsManagerStore() override;

  StatusOr<SecretString> Resolve(std::string_view reference) override;
  StatusOr<std::string> KeyFilePath(std::string_view reference) override;
  // Drops the cached secret of `reference` (every key of it): true when
  // one was cached.
  bool Invalidate(std::string_view reference) override;

  // GetSecretValue calls made (for tests of the cache).
  int64_t fetches() const;

 private:
  struct Cached {
    SecretString value;
    int64_t fetched_ms = 0;
  };
  // The SecretString of `id`, from the cache or Secrets Manager.
  StatusOr<SecretString> Secret(const std::string& id,
                                std::string_view reference);
  StatusOr<SecretString> Fetch(const std::string& id,
                               std::string_view reference);

  const std::shared_ptr<AwsClient> client_;
  const AwsSecretsManagerOptions options_;
  Env* const env_;
  mutable std::mutex mu_;
  std::map<std::string, Cached, std::less<>> cache_;  // guarded by mu_
  int64_t fetches_ = 0;                               // guarded by mu_
  PrivateKeyFiles key_files_{"aws-sm:"};
};

}  // namespace cbpipe
