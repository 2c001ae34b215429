// A SecretStore held in memory, for tests and for `memory://` in the
// registry: references are any "scheme:rest" strings the test Sets, so code
// under test resolves its credentials without environment variables or
// files.
//
//   InMemorySecretStore secrets;
//   secrets.Set("env:SFTP_PASSWORD", "hunter2");
//   options.secrets = &secrets;
//
// Resolve gives the value Set for exactly that reference: kNotFound when
// nothing was Set for it, kInvalidArgument for "" or a reference without a
// scheme ([a-z][a-z0-9+.-]*:). KeyFilePath writes the
// value to a file of mode 0600 in a private folder under the system
// temporary folder (PrivateKeyFiles, removed with the store; one file per
// reference) and returns its path. Messages
// name the reference's scheme only: a reference is whatever a test passes.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "secrets/secret_store.h"

namespace cbpipe {

class InMemorySecretStore : public SecretStore {
 public:
  InMemorySecretStore() = default;
  ~InMemorySecretStore() override;
  InMemorySecretStore(const InMemorySecretStore&) = delete;
  InMemorySecretStore& operator=(const InMemorySecretStore&) = delete;

  // Stores `value` (not empty) for `reference`, replacing any.
  void Set(std::string_view reference, std::string_view value);
  // Forgets `reference`.
  void Remove(std::string_view reference);

  StatusOr<SecretString> Resolve(std::string_view reference) override;
  StatusOr<std::string> KeyFilePath(std::string_view reference) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::string, std::less<>> values_;
  PrivateKeyFiles key_files_{"memory://"};
};

}  // namespace cbpipe
