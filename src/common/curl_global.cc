#include "common/curl_global.h"

#include <curl/curl.h>

#include <mutex>
#include <string>

namespace cbpipe {

Status CurlGlobalInitOnce() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) {
    return InternalError(std::string("curl_global_init failed: ") +
                         curl_easy_strerror(rc));
  }
  return OkStatus();
}

}  // namespace cbpipe
