// The SecretStore port: credentials are named in the config by a reference
// ("env:SFTP_PASSWORD", "file:/etc/cbpipe/pw"), never written in it, and a
// SecretStore turns the reference into the value when a connection needs it.
// Adapters: EnvFileSecretStore (env: and file:, env_file_secret_store.h;
// what every caller without a store of its own uses), InMemorySecretStore
// (memory_secret_store.h, for tests) and AwsSecretsManagerStore (aws-sm:,
// aws_secrets_manager.h, cached). Open one by URL with OpenSecretStore
// (workflow/registry.h).
//
//   SecretStore* secrets = SecretsOrDefault(options.secrets);  // may be null
//   CBPIPE_ASSIGN_OR_RETURN(SecretString password,
//                           secrets->Resolve("env:VISA_SFTP_PASSWORD"));
//   curl_easy_setopt(h, CURLOPT_PASSWORD, password.c_str());
//   // libssh2 reads private keys by path:
//   CBPIPE_ASSIGN_OR_RETURN(std::string key_path,
//                           secrets->KeyFilePath("file:/etc/cbpipe/id_ed25519"));
//   // The server refused the login: the secret may have been rotated.
//   if (secrets->Invalidate("aws-sm:visa#password")) { resolve, try again }
//
// Errors (every method): kInvalidArgument for a reference the store cannot
// read (empty, unknown scheme, malformed); kNotFound when it names no
// secret; kPermissionDenied when the secret exists but is not protected
// enough or may not be read; kFailedPrecondition for anything else wrong
// with where it is kept; kUnavailable for a transient failure (a remote
// store: retry). No message ever contains a secret value: only the reference
// (not a secret) and what is wrong with it, and not even the reference when
// its scheme is unknown (a user may have pasted the secret itself there).
//
// Thread safety: every method may be called from several threads at once.
// Ownership: results belong to the caller; a path from KeyFilePath stays
// valid as long as the store. The store must outlive its users.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

// Overwrites the whole buffer of `s` (capacity included) then clears it.
void WipeString(std::string& s);

// A string that overwrites its bytes (OPENSSL_cleanse) when destroyed or
// reassigned, so a password does not linger in freed heap memory. Move-only.
class SecretString {
 public:
  SecretString() = default;
  // Wipes what a short `value` leaves in its own buffer after the move.
  explicit SecretString(std::string value) : value_(std::move(value)) {
    WipeString(value);
  }
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

class SecretStore {
 public:
  virtual ~SecretStore() = default;
  // The value `reference` names; never empty.
  virtual StatusOr<SecretString> Resolve(std::string_view reference) = 0;
  // For a reference naming a key file that a library opens by path (sftp
  // private keys, read by libssh2): the path of a regular file that only
  // its owner can read (mode & 077 == 0) holding the key. A store that does
  // not keep secrets in local files writes the key to such a file of its
  // own. kInvalidArgument for a reference that cannot name a key file.
  virtual StatusOr<std::string> KeyFilePath(std::string_view reference) = 0;
  // Forgets what the store cached for `reference`, so the next Resolve or
  // KeyFilePath reads it again from where it is kept: called by a user of
  // the value whose login was refused (the secret may have been rotated).
  // True when something cached was dropped, so reading again may give
  // another value; false for a store that caches nothing (env:, file: are
  // read afresh each time) or a reference it does not know. Never fails.
  virtual bool Invalidate(std::string_view /*reference*/) { return false; }
};

// Key texts written to files for KeyFilePath by stores that keep keys
// elsewhere (memory, Secrets Manager): one file of mode 0600 per `slot`
// in a private folder (mode 0700) under the system temporary folder, made
// at the first Write and removed with the object, or by the next process
// folder made or removed when this process is killed
// (common/process_folder.h, kind "secrets"). Writing a slot again
// replaces its file's content atomically (a reader sees the old or the new
// key, never a mix). `what` ("memory://") names the store in errors, which
// never hold the text or the slot. Thread-safe.
class PrivateKeyFiles {
 public:
  explicit PrivateKeyFiles(std::string what) : what_(std::move(what)) {}
  ~PrivateKeyFiles();
  PrivateKeyFiles(const PrivateKeyFiles&) = delete;
  PrivateKeyFiles& operator=(const PrivateKeyFiles&) = delete;

  // The path of `slot`'s file, now holding `text`. kUnavailable when the
  // folder or file cannot be written.
  StatusOr<std::string> Write(std::string_view slot, std::string_view text);

 private:
  const std::string what_;
  std::mutex mu_;
  std::string dir_;                                // "" until first Write
  std::map<std::string, int, std::less<>> slots_;  // slot -> file number
};

// `secrets`, or the process-wide EnvFileSecretStore when it is null: for
// options and constructors whose SecretStore* defaults to null.
SecretStore* SecretsOrDefault(SecretStore* secrets);

}  // namespace cbpipe
