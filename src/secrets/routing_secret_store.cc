#include "secrets/routing_secret_store.h"

#include <utility>

namespace cbpipe {

void RoutingSecretStore::Route(std::string prefix, Factory make) {
  std::lock_guard<std::mutex> lock(mu_);
  routes_.push_back({std::move(prefix), std::move(make), nullptr});
}

StatusOr<SecretStore*> RoutingSecretStore::StoreFor(
    std::string_view reference) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Entry& e : routes_) {
    if (!reference.starts_with(e.prefix)) continue;
    if (e.store == nullptr) {
      CBPIPE_ASSIGN_OR_RETURN(e.store, e.make());
    }
    return e.store.get();
  }
  return SecretsOrDefault(fallback_);
}

StatusOr<SecretString> RoutingSecretStore::Resolve(
    std::string_view reference) {
  CBPIPE_ASSIGN_OR_RETURN(SecretStore * store, StoreFor(reference));
  return store->Resolve(reference);
}

StatusOr<std::string> RoutingSecretStore::KeyFilePath(
    std::string_view reference) {
  CBPIPE_ASSIGN_OR_RETURN(SecretStore * store, StoreFor(reference));
  return store->KeyFilePath(reference);
}

bool RoutingSecretStore::Invalidate(std::string_view reference) {
  StatusOr<SecretStore*> store = StoreFor(reference);
  return store.ok() && (*store)->Invalidate(reference);
}

}  // namespace cbpipe
