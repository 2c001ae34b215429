// Internal to notify/: libcurl plumbing shared by the webhook and email
// notifiers.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/listen_address.h"
#include "common/status.h"
#include "common/url.h"
#include "notify/async_sender.h"

namespace cbpipe::notify_internal {

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct ParsedUrl {
  std::string scheme;  // lowercase
  std::string host;    // without brackets for IPv6
};
// kInvalidArgument for what libcurl cannot parse or a URL without a host.
StatusOr<ParsedUrl> ParseUrl(std::string_view url);

// "localhost", "127.0.0.0/8" or "::1": traffic that never leaves the machine.
using ::cbpipe::IsLoopbackHost;

// The URL without user:password@, query and fragment: safe to log.
using ::cbpipe::RedactUrl;

// Options every request gets: no signals, no proxy for loopback, abort when
// `stop` is set, the timeouts, TLS verification on (with `ca_file` when
// given), and only the `protocols` listed ("http,https").
void SetCommonOptions(CURL* h, const CancelFlag* stop, long connect_timeout_ms,
                      long timeout_ms, const std::string& ca_file,
                      const char* protocols, char* error_buffer);

// A failed transfer as a Status: transient (kUnavailable,
// kDeadlineExceeded) for connection trouble, permanent otherwise. `what`
// names the target ("POST https://host/path").
Status CurlError(CURLcode code, const char* error_buffer,
                 const std::string& what);

}  // namespace cbpipe::notify_internal
