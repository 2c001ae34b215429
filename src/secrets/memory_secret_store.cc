#include "secrets/memory_secret_store.h"

namespace cbpipe {
namespace {

// The length of the scheme of "scheme:rest" ([a-z][a-z0-9+.-]*), 0 when
// there is none: what a message may say of a reference.
size_t SchemeLength(std::string_view reference) {
  size_t i = 0;
  while (i < reference.size() && i < 32 &&
         ((reference[i] >= 'a' && reference[i] <= 'z') ||
          (i > 0 && ((reference[i] >= '0' && reference[i] <= '9') ||
                     reference[i] == '+' || reference[i] == '.' ||
                     reference[i] == '-'))))
    ++i;
  return i > 0 && i < reference.size() && reference[i] == ':' ? i : 0;
}

}  // namespace

InMemorySecretStore::~InMemorySecretStore() {
  for (auto& [reference, value] : values_) WipeString(value);
}

void InMemorySecretStore::Set(std::string_view reference,
                              std::string_view value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(reference);
  if (it != values_.end()) {
    WipeString(it->second);
    it->second.assign(value);
  } else {
    values_.emplace(std::string(reference), std::string(value));
  }
}

void InMemorySecretStore::Remove(std::string_view reference) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(reference);
  if (it == values_.end()) return;
  WipeString(it->second);
  values_.erase(it);
}

StatusOr<SecretString> InMemorySecretStore::Resolve(
    std::string_view reference) {
  if (reference.empty()) return InvalidArgumentError("empty secret reference");
  const size_t scheme = SchemeLength(reference);
  if (scheme == 0) {
    // Do not echo it: a user may have pasted the secret itself.
    return InvalidArgumentError(
        "secret reference without a scheme (the value itself is not shown "
        "in case it is a secret)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(reference);
  if (it == values_.end() || it->second.empty()) {
    return NotFoundError("no secret in memory:// for this " +
                         std::string(reference.substr(0, scheme)) +
                         ": reference");
  }
  return SecretString(it->second);
}

StatusOr<std::string> InMemorySecretStore::KeyFilePath(
    std::string_view reference) {
  CBPIPE_ASSIGN_OR_RETURN(SecretString key, Resolve(reference));
  return key_files_.Write(reference, key.value());
}

}  // namespace cbpipe
