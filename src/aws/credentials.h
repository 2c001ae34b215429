// AWS credentials and where they come from. The default chain (environment,
// shared files, container, instance metadata) is in credentials_chain.h.
//
//   AwsStaticCredentials fixed({"AKID", "secret", "", 0});
//   CBPIPE_ASSIGN_OR_RETURN(AwsCredentials c, provider.Get());
//   ... sign with c ...; on an auth failure: provider.Invalidate();
//
// Errors: Get returns kUnauthenticated when no credentials can be found,
// kInvalidArgument for a broken configuration (half a key pair, a named
// profile that does not exist), kUnavailable when a credentials endpoint
// cannot be reached. No message ever contains a secret.
// Thread safety: every method may be called from several threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "common/status.h"

namespace cbpipe {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;  // never logged
  std::string session_token;      // "" when none
  int64_t expires_ms = 0;         // epoch ms; 0 = does not expire
};

class AwsCredentialsProvider {  // thread-safe
 public:
  virtual ~AwsCredentialsProvider() = default;
  // Current credentials, refreshed when they expire within 5 minutes.
  virtual StatusOr<AwsCredentials> Get() = 0;
  // Where they come from, for `cbpipe config check` and errors ("environment",
  // "profile prod in /root/.aws/credentials", "container", "instance metadata"); never a secret.
  virtual std::string Source() const = 0;
  // Drop what is cached so the next Get fetches again (after an auth failure).
  virtual void Invalidate() {}
};

// Fixed keys, for tests and for keys given some other way.
class AwsStaticCredentials : public AwsCredentialsProvider {
 public:
  explicit AwsStaticCredentials(AwsCredentials credentials)
      : credentials_(std::move(credentials)) {}
  StatusOr<AwsCredentials> Get() override { return credentials_; }
  std::string Source() const override { return "static"; }

 private:
  const AwsCredentials credentials_;
};

}  // namespace cbpipe
