// The one place where adapters are registered, by URL scheme.
#include "deliver/deliverer.h"
#include "deliver/local_transport.h"

#if __has_include("deliver/curl_transport.h")
#include "deliver/curl_transport.h"
#define CBPIPE_HAVE_CURL_TRANSPORT 1
#endif

namespace cbpipe {

StatusOr<std::unique_ptr<Transport>> MakeTransport(
    const DestinationConfig& destination) {
  const std::string& url = destination.url;
  if (url.rfind("file://", 0) == 0) {
    const std::string folder = FolderFromFileUrl(url);
    if (folder.empty())
      return InvalidArgumentError(destination.name + ": file:// URL has no "
                                  "folder");
    return std::unique_ptr<Transport>(new LocalFolderTransport(folder));
  }
#ifdef CBPIPE_HAVE_CURL_TRANSPORT
  return MakeNetworkTransport(destination);
#else
  return InvalidArgumentError(destination.name + ": unsupported URL scheme");
#endif
}

}  // namespace cbpipe
