// The one place where adapters are registered, by URL scheme.
#include "deliver/curl_transport.h"
#include "deliver/deliverer.h"
#include "deliver/local_transport.h"
#include "deliver/sftp_transport.h"

namespace cbpipe {

StatusOr<std::unique_ptr<Transport>> MakeTransport(
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

}  // namespace cbpipe
