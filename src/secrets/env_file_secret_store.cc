#include "secrets/env_file_secret_store.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace cbpipe {
namespace {

constexpr std::string_view kEnvPrefix = "env:";
constexpr std::string_view kFilePrefix = "file:";
constexpr size_t kMaxSecretFileBytes = 1 << 20;

std::string ErrnoText(int err) { return std::strerror(err); }

// Checks that `path` is a regular file that only its owner can read.
Status CheckPrivateFile(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgumentError("secret file " + path +
                                " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o",
                  static_cast<unsigned>(st.st_mode & 0777));
    return PermissionDeniedError("secret file " + path + " has mode " + mode +
                                 ": it must not be readable by group or "
                                 "others; run chmod 600 " +
                                 path);
  }
  return OkStatus();
}

StatusOr<std::string> FilePathOf(std::string_view reference) {
  std::string path(reference.substr(kFilePrefix.size()));
  if (path.empty() || path[0] != '/') {
    return InvalidArgumentError(
        "secret reference \"" + std::string(reference) +
        "\": file: needs an absolute path (file:/path/to/secret)");
  }
  return path;
}

StatusOr<std::string> ResolveEnv(std::string_view reference) {
  std::string name(reference.substr(kEnvPrefix.size()));
  if (name.empty()) {
    return InvalidArgumentError(
        "secret reference \"env:\" names no environment variable");
  }
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') {
    return NotFoundError("environment variable " + name +
                         " (from secret reference env:" + name +
                         ") is not set or is empty");
  }
  return std::string(value);
}

StatusOr<std::string> ResolveFile(std::string_view reference) {
  CBPIPE_ASSIGN_OR_RETURN(std::string path, FilePathOf(reference));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int err = errno;
    // O_NOFOLLOW refuses a symlink; follow it with an explicit second open,
    // then check the target's mode with fstat like any other file.
    if (err == ELOOP) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      std::string what =
          "cannot open secret file " + path + ": " + ErrnoText(err);
      if (err == ENOENT) return NotFoundError(what);
      if (err == EACCES) return PermissionDeniedError(what);
      return FailedPreconditionError(what);
    }
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return FailedPreconditionError("cannot stat secret file " + path + ": " +
                                   ErrnoText(err));
  }
  if (Status s = CheckPrivateFile(path, st); !s.ok()) {
    ::close(fd);
    return s;
  }
  std::string content;
  content.reserve(static_cast<size_t>(st.st_size) + 1);
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      OPENSSL_cleanse(buf, sizeof buf);
      WipeString(content);
      return FailedPreconditionError("cannot read secret file " + path + ": " +
                                     ErrnoText(err));
    }
    if (n == 0) break;
    if (content.size() + static_cast<size_t>(n) > kMaxSecretFileBytes) {
      ::close(fd);
      OPENSSL_cleanse(buf, sizeof buf);
      WipeString(content);
      return InvalidArgumentError("secret file " + path +
                                  " is larger than 1 MiB");
    }
    // Appending within the reserved capacity avoids reallocations that
    // would leave copies of the secret in freed memory.
    content.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  OPENSSL_cleanse(buf, sizeof buf);
  if (!content.empty() && content.back() == '\n') {
    content.pop_back();
    if (!content.empty() && content.back() == '\r') content.pop_back();
  }
  if (content.empty()) {
    return InvalidArgumentError("secret file " + path + " is empty");
  }
  return content;
}

StatusOr<std::string> ResolveReference(std::string_view reference) {
  if (reference.starts_with(kEnvPrefix)) return ResolveEnv(reference);
  if (reference.starts_with(kFilePrefix)) return ResolveFile(reference);
  if (reference.empty()) {
    return InvalidArgumentError("empty secret reference");
  }
  // Do not echo the reference: a user may have pasted the secret itself.
  return InvalidArgumentError(
      "unknown secret reference scheme: use env:NAME or file:/path (the "
      "value itself is not shown in case it is a secret)");
}

}  // namespace

StatusOr<SecretString> EnvFileSecretStore::Resolve(
    std::string_view reference) {
  CBPIPE_ASSIGN_OR_RETURN(std::string value, ResolveReference(reference));
  return SecretString(std::move(value));  // wipes `value`'s buffer
}

StatusOr<std::string> EnvFileSecretStore::KeyFilePath(
    std::string_view reference) {
  if (!reference.starts_with(kFilePrefix)) {
    return InvalidArgumentError(
        "a key file must be given as file:/path/to/key");
  }
  CBPIPE_ASSIGN_OR_RETURN(std::string path, FilePathOf(reference));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    std::string what = "cannot stat key file " + path + ": " + ErrnoText(err);
    if (err == ENOENT) return NotFoundError(what);
    if (err == EACCES) return PermissionDeniedError(what);
    return FailedPreconditionError(what);
  }
  CBPIPE_RETURN_IF_ERROR(CheckPrivateFile(path, st));
  if (::access(path.c_str(), R_OK) != 0) {
    return PermissionDeniedError("key file " + path + " is not readable");
  }
  return path;
}

EnvFileSecretStore* EnvFileSecretStore::Default() {
  static EnvFileSecretStore* const store = new EnvFileSecretStore;
  return store;
}

SecretStore* SecretsOrDefault(SecretStore* secrets) {
  return secrets != nullptr ? secrets : EnvFileSecretStore::Default();
}

}  // namespace cbpipe
