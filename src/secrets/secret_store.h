// Secret references: credentials are named in the config, never written in it.
//
//   auto resolved = ResolveSecret("env:VISA_SFTP_PASSWORD");
//   if (!resolved.ok()) return resolved.status();  // names the variable
//   SecretString password(std::move(*resolved));   // wiped when destroyed
//   curl_easy_setopt(h, CURLOPT_PASSWORD, password.c_str());
//
// Schemes:
//   env:NAME    the value of environment variable NAME; unset or empty is an
//               error (kNotFound) that names the variable.
//   file:/path  the contents of the file, one trailing "\n" (or "\r\n")
//               stripped. The file must not be readable by group or others
//               (mode & 077 == 0): kPermissionDenied otherwise, with a
//               message saying "chmod 600".
// Anything else is kInvalidArgument. No message ever contains a secret value:
// only the reference (which is not secret) and what is wrong with it.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

// A string that overwrites its bytes (OPENSSL_cleanse) when destroyed or
// reassigned, so a password does not linger in freed heap memory. Move-only.
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string value) : value_(std::move(value)) {}
  SecretString(SecretString&& other) noexcept;
  SecretString& operator=(SecretString&& other) noexcept;
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  ~SecretString();

  const std::string& value() const { return value_; }
  const char* c_str() const { return value_.c_str(); }
  bool empty() const { return value_.empty(); }

 private:
  std::string value_;
};

// Overwrites the whole buffer of `s` (capacity included) then clears it.
void WipeString(std::string& s);

// Resolves `reference` ("env:NAME" or "file:/path") to the secret value.
// Keep it in a SecretString (or WipeString it) once used.
StatusOr<std::string> ResolveSecret(std::string_view reference);

// For a "file:/path" reference naming a key file (sftp private keys are
// passed to libssh2 by path): checks the file exists, is a regular file and
// has mode & 077 == 0, and returns the path. Other schemes are
// kInvalidArgument.
StatusOr<std::string> ResolveSecretFilePath(std::string_view reference);

}  // namespace cbpipe
