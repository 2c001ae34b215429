// The SecretStore of env: and file: references (secret_store.h), the one
// every caller without a store of its own uses (SecretsOrDefault).
//
//   EnvFileSecretStore secrets;
//   auto password = secrets.Resolve("env:VISA_SFTP_PASSWORD");
//   if (!password.ok()) return password.status();  // names the variable
//
// References:
//   env:NAME    the value of environment variable NAME; unset or empty is an
//               error (kNotFound) that names the variable.
//   file:/path  the contents of the file (at most 1 MiB), one trailing "\n"
//               (or "\r\n") stripped; empty is kInvalidArgument. The file
//               must be a regular file not readable by group or others
//               (mode & 077 == 0): kPermissionDenied otherwise, with a
//               message saying "chmod 600". A symlink is followed and its
//               target checked the same way.
// Anything else is kInvalidArgument, without echoing the reference.
// KeyFilePath takes file:/path only: it checks the file as above (and that
// this process can read it) and returns the path; env: is kInvalidArgument
// (an env: key is its text: Resolve it).
//
// Stateless: one instance may serve the whole process from any thread.
#pragma once

#include <string>
#include <string_view>

#include "secrets/secret_store.h"

namespace cbpipe {

class EnvFileSecretStore : public SecretStore {
 public:
  StatusOr<SecretString> Resolve(std::string_view reference) override;
  StatusOr<std::string> KeyFilePath(std::string_view reference) override;
  // The instance SecretsOrDefault gives; never destroyed.
  static EnvFileSecretStore* Default();
};

}  // namespace cbpipe
