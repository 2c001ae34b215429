// The one place where adapters are registered, by URL scheme.
#include <utility>

#include "deliver/curl_transport.h"
#include "deliver/deliverer.h"
#include "deliver/local_transport.h"
#include "deliver/sftp_transport.h"

namespace cbpipe {
namespace {

StatusOr<std::unique_ptr<Transport>> MakeTransportOnce(
    const DestinationConfig& destination, SecretStore* secrets) {
  const std::string& url = destination.url;
  if (url.rfind("file://", 0) == 0) {
    const std::string folder = FolderFromFileUrl(url);
    if (folder.empty())
      return InvalidArgumentError(destination.name + ": file:// URL has no "
                                  "folder");
    return std::unique_ptr<Transport>(new LocalFolderTransport(folder));
  }
  if (url.rfind("sftp://", 0) == 0)
    return MakeSftpTransport(destination, secrets);
  return MakeNetworkTransport(destination, secrets);
}

// Drops what `secrets` cached for the destination's credentials: true when
// anything was dropped, so reading them again may give rotated values.
bool InvalidateCredentials(const DestinationConfig& d, SecretStore* secrets) {
  bool dropped = false;
  for (const std::string* ref : {&d.password_ref, &d.private_key_ref}) {
    if (!ref->empty() && secrets->Invalidate(*ref)) dropped = true;
  }
  return dropped;
}

// A transport whose server refused the login (kUnauthenticated) gets one
// more chance with credentials read again from the store, when the store
// had them cached: a secret rotated since it was read is picked up without
// a restart. A second refusal is returned as is.
class CredentialRefreshingTransport : public Transport {
 public:
  CredentialRefreshingTransport(const DestinationConfig& destination,
                                SecretStore* secrets,
                                std::unique_ptr<Transport> inner)
      : destination_(destination),
        secrets_(secrets),
        inner_(std::move(inner)),
        description_(inner_->Describe()) {}

  Status Upload(const std::string& local_path,
                const std::string& remote_name) override {
    return Call([&] { return inner_->Upload(local_path, remote_name); });
  }
  Status Rename(const std::string& from, const std::string& to,
                bool replace) override {
    return Call([&] { return inner_->Rename(from, to, replace); });
  }
  StatusOr<std::optional<uint64_t>> RemoteSize(
      const std::string& remote_name) override {
    return Call([&] { return inner_->RemoteSize(remote_name); });
  }
  Status Remove(const std::string& remote_name) override {
    return Call([&] { return inner_->Remove(remote_name); });
  }
  StatusOr<std::optional<std::string>> RemoteSha256(
      const std::string& remote_name) override {
    return Call([&] { return inner_->RemoteSha256(remote_name); });
  }
  std::string Describe() const override { return description_; }

 private:
  static const Status& StatusOf(const Status& s) { return s; }
  template <typename T>
  static const Status& StatusOf(const StatusOr<T>& s) {
    return s.status();
  }

  template <typename Fn>
  auto Call(Fn fn) -> decltype(fn()) {
    auto result = fn();
    if (StatusOf(result).code() != StatusCode::kUnauthenticated ||
        !InvalidateCredentials(destination_, secrets_)) {
      return result;
    }
    // The refused connection goes; the new one reads the secrets again.
    StatusOr<std::unique_ptr<Transport>> fresh =
        MakeTransportOnce(destination_, secrets_);
    if (!fresh.ok()) return result;
    inner_ = std::move(*fresh);
    return fn();
  }

  const DestinationConfig destination_;
  SecretStore* const secrets_;
  std::unique_ptr<Transport> inner_;
  const std::string description_;
};

}  // namespace

StatusOr<std::unique_ptr<Transport>> MakeTransport(
    const DestinationConfig& destination, SecretStore* secrets) {
  if (secrets == nullptr ||
      (destination.password_ref.empty() &&
       destination.private_key_ref.empty())) {
    return MakeTransportOnce(destination, secrets);
  }
  StatusOr<std::unique_ptr<Transport>> made =
      MakeTransportOnce(destination, secrets);
  if (!made.ok() && made.status().code() == StatusCode::kUnauthenticated &&
      InvalidateCredentials(destination, secrets)) {
    made = MakeTransportOnce(destination, secrets);
  }
  if (!made.ok()) return made;
  return std::unique_ptr<Transport>(new CredentialRefreshingTransport(
      destination, secrets, std::move(*made)));
}

}  // namespace cbpipe
