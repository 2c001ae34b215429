#include "common/sha256.h"

#include <openssl/evp.h>

namespace cbpipe {

Sha256::Sha256() : md_(EVP_MD_CTX_new()) {
  ok_ = md_ != nullptr && EVP_DigestInit_ex(md_, EVP_sha256(), nullptr) == 1;
}

Sha256::~Sha256() { EVP_MD_CTX_free(md_); }

void Sha256::Update(const void* data, size_t size) {
  ok_ = ok_ && EVP_DigestUpdate(md_, data, size) == 1;
}

StatusOr<std::string> Sha256::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  ok_ = ok_ && EVP_DigestFinal_ex(md_, digest, &size) == 1;
  if (!ok_) return InternalError("SHA-256 failed (OpenSSL)");
  return HexDigest(digest, size);
}

std::string HexDigest(const unsigned char* digest, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

}  // namespace cbpipe
