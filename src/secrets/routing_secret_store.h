// A SecretStore that passes each reference to the store of its scheme:
// "aws-sm:" to Secrets Manager, everything else (env:, file:) to a
// fallback. The store of a scheme is made at its first reference, so a
// config without aws-sm: references never builds an AWS client (nor needs
// a region).
//
//   RoutingSecretStore secrets(EnvFileSecretStore::Default());
//   secrets.Route("aws-sm:", [&] { return MakeSecretsManagerStore(...); });
//   secrets.Resolve("env:X");                    // the fallback
//   secrets.Resolve("aws-sm:prod/visa#password"); // made now, then kept
//
// Errors: the routed store's; a factory's error is returned for that
// reference (and the factory tried again at the next one). Thread-safe;
// owns the stores it made; `fallback` must outlive it.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "secrets/secret_store.h"

namespace cbpipe {

class RoutingSecretStore : public SecretStore {
 public:
  using Factory = std::function<StatusOr<std::unique_ptr<SecretStore>>()>;

  explicit RoutingSecretStore(SecretStore* fallback) : fallback_(fallback) {}

  // References starting with `prefix` ("aws-sm:") go to the store `make`
  // returns. Call before the store is used.
  void Route(std::string prefix, Factory make);

  StatusOr<SecretString> Resolve(std::string_view reference) override;
  StatusOr<std::string> KeyFilePath(std::string_view reference) override;
  bool Invalidate(std::string_view reference) override;

 private:
  struct Entry {
    std::string prefix;
    Factory make;
    std::unique_ptr<SecretStore> store;  // guarded by mu_ until made
  };
  StatusOr<SecretStore*> StoreFor(std::string_view reference);

  SecretStore* const fallback_;
  std::mutex mu_;
  std::vector<Entry> routes_;
};

}  // namespace cbpipe
