#include "secrets/memory_secret_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

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
  if (key_dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(key_dir_, ec);
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
  std::lock_guard<std::mutex> lock(mu_);
  if (key_dir_.empty()) {
    std::error_code ec;
    std::string dir =
        (std::filesystem::temp_directory_path(ec) / "cbpipe-secrets-XXXXXX")
            .string();
    if (ec || ::mkdtemp(dir.data()) == nullptr)
      return UnavailableError("create a folder for memory:// key files");
    key_dir_ = dir;  // mkdtemp: mode 0700
  }
  const std::string path =
      key_dir_ + "/key-" + std::to_string(++key_files_);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                        0600);
  if (fd < 0) {
    return UnavailableError("create a memory:// key file: " +
                            std::string(std::strerror(errno)));
  }
  const std::string& text = key.value();
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (done != text.size())
    return UnavailableError("write a memory:// key file");
  return path;
}

}  // namespace cbpipe
