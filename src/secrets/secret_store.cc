#include "secrets/secret_store.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

#include "common/process_folder.h"

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

PrivateKeyFiles::~PrivateKeyFiles() { RemoveProcessFolder(dir_); }

StatusOr<std::string> PrivateKeyFiles::Write(std::string_view slot,
                                             std::string_view text) {
  std::lock_guard<std::mutex> lock(mu_);
  if (dir_.empty()) {
    CBPIPE_ASSIGN_OR_RETURN(dir_,
                            MakeProcessFolder("secrets", what_ + " key files"));
  }
  auto it = slots_.find(slot);
  if (it == slots_.end()) {
    it = slots_.emplace(std::string(slot), static_cast<int>(slots_.size()) + 1)
             .first;
  }
  const std::string path = dir_ + "/key-" + std::to_string(it->second);
  const std::string temporary = path + ".new";
  const int fd = ::open(temporary.c_str(),
                        O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return UnavailableError("create a " + what_ + " key file: " +
                            std::string(std::strerror(errno)));
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += static_cast<size_t>(n);
  }
  const bool closed = ::close(fd) == 0;
  if (done != text.size() || !closed ||
      ::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return UnavailableError("write a " + what_ + " key file");
  }
  return path;
}

}  // namespace cbpipe
