// SHA-256 of bytes fed in pieces (OpenSSL; SHA-NI where the CPU has it),
// for the input id, the manifest of generated files, their verification and
// the remote copies of file:// deliveries.
//
//   Sha256 sha;
//   sha.Update(block.data(), block.size());  ...
//   StatusOr<std::string> hex = sha.FinishHex();
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace cbpipe {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // False once OpenSSL has failed (no context, or an update failed).
  bool ok() const { return ok_; }
  void Update(const void* data, size_t size);
  // Lower-case hex of everything fed in; an error when OpenSSL failed.
  // Once only.
  StatusOr<std::string> FinishHex();

 private:
  EVP_MD_CTX* md_;
  bool ok_;
};

// Lower-case hex of `size` bytes.
std::string HexDigest(const unsigned char* digest, size_t size);

}  // namespace cbpipe
