#include "secrets/secret_store.h"

#include <openssl/crypto.h>

#include <utility>

namespace cbpipe {

SecretString::SecretString(SecretString&& other) noexcept
    : value_(std::move(other.value_)) {
  WipeString(other.value_);
}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    WipeString(value_);
    value_ = std::move(other.value_);
    WipeString(other.value_);
  }
  return *this;
}

SecretString::~SecretString() { WipeString(value_); }

void WipeString(std::string& s) {
  // Wipe the full capacity: the small-string buffer or the heap block.
  s.resize(s.capacity());
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace cbpipe
