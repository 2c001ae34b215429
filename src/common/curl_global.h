// libcurl's process-wide initialisation, done once whoever needs curl first
// (deliveries, notifications, the AWS client).
//
//   CBPIPE_RETURN_IF_ERROR(CurlGlobalInitOnce());
//   CURL* h = curl_easy_init();
//
// Thread-safe; the result of the one curl_global_init is returned to every
// caller (kInternal when it failed). Never cleaned up: it lives as long as
// the process.
#pragma once

#include "common/status.h"

namespace cbpipe {

Status CurlGlobalInitOnce();

}  // namespace cbpipe
