// AWS credentials and where they come from: the seam between the signer and
// client (aws/sigv4.h, aws/client.h) and the default provider chain
// (aws/credentials_chain.h: environment, shared files, container, instance
// metadata).
//
//   auto provider = std::make_shared<AwsStaticCredentials>(
//       AwsCredentials{.access_key_id = "AKID", .secret_access_key = "..."});
//   CBPIPE_ASSIGN_OR_RETURN(AwsCredentials creds, provider->Get());
//   Sign(request, creds, ...);
//   if (server said ExpiredToken) provider->Invalidate();  // then Get again
//
// Contract (every provider):
// - Get returns the current credentials, refreshed when they expire within 5
//   minutes; kUnauthenticated when none can be found, kUnavailable when the
//   source could not be reached (worth retrying). Error messages never hold
//   a secret access key or session token.
// - Source() names where the credentials come from, never a secret.
// - Thread safety: every method may be called from several threads at once.
// - Ownership: providers are shared (std::shared_ptr) by the clients using
//   them.
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
  // "profile prod in /root/.aws/credentials", "container", "instance
  // metadata"); never a secret.
  virtual std::string Source() const = 0;
  // Drop what is cached so the next Get fetches again (after an auth failure).
  virtual void Invalidate() {}
};

// Fixed credentials (tests, keys given in code). Get fails with
// kUnauthenticated when the access key id or secret is empty.
class AwsStaticCredentials : public AwsCredentialsProvider {
 public:
  explicit AwsStaticCredentials(AwsCredentials credentials,
                                std::string source = "static")
      : credentials_(std::move(credentials)), source_(std::move(source)) {}

  StatusOr<AwsCredentials> Get() override {
    if (credentials_.access_key_id.empty() ||
        credentials_.secret_access_key.empty()) {
      return UnauthenticatedError("AWS credentials (" + source_ +
                                  ") have no access key id or secret");
    }
    return credentials_;
  }
  std::string Source() const override { return source_; }

 private:
  const AwsCredentials credentials_;
  const std::string source_;
};

}  // namespace cbpipe
