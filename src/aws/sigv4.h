// AWS Signature Version 4: signs a request into its headers (Authorization)
// or into its query string (a presigned URL), exposing every intermediate
// step so the conformance suite (tests/data/aws-sigv4, sigv4-conformance)
// can check them byte for byte.
//
//   AwsSigningRequest request{.method = "GET", .path = "/bucket/my%20key",
//                             .headers = {{"Host", "s3.amazonaws.com"}}};
//   AwsSigningOptions options{.region = "eu-west-1", .service = "s3",
//                             .time_s = env->NowSeconds(),
//                             .normalize_path = false,   // S3
//                             .double_encode_path = false,
//                             .payload_hash = kAwsUnsignedPayload,
//                             .sign_body = true};
//   CBPIPE_ASSIGN_OR_RETURN(AwsSignature sig,
//                           AwsSignHeaders(request, creds, options));
//   for (auto& [name, value] : sig.headers) curl_add(name + ": " + value);
//
// Paths: `path` is the path as it goes on the wire (percent-encoded once,
// e.g. by AwsUriEncode(key, /*keep_slash=*/true)). S3 signs it as given
// (normalize_path = false, double_encode_path = false); every other service
// removes "." / ".." / empty segments and encodes the wire path again.
// Query parameters are given decoded; the signer encodes them.
//
// Errors: kInvalidArgument for a request that cannot be signed (no Host
// header, empty region/service, bad time); messages never hold a secret,
// token or signature. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/credentials.h"
#include "common/status.h"

namespace cbpipe {

using AwsHeaderList = std::vector<std::pair<std::string, std::string>>;

inline constexpr char kAwsUnsignedPayload[] = "UNSIGNED-PAYLOAD";
// SHA-256 of the empty string.
inline constexpr char kAwsEmptyPayloadHash[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct AwsSigningRequest {
  std::string method = "GET";
  std::string path = "/";  // wire form (already percent-encoded once)
  AwsHeaderList query;     // decoded name/value pairs, in any order
  AwsHeaderList headers;   // as sent; must hold Host; repeats are joined
};

struct AwsSigningOptions {
  std::string region;
  std::string service;
  int64_t time_s = 0;  // epoch seconds of the signature (X-Amz-Date)
  // false for S3: the path is signed exactly as given.
  bool normalize_path = true;
  bool double_encode_path = true;
  // Lower-case hex SHA-256 of the body (AwsPayloadHash), or
  // kAwsUnsignedPayload for a streamed upload.
  std::string payload_hash = kAwsEmptyPayloadHash;
  // Header signing adds (and signs) x-amz-content-sha256: payload_hash. S3
  // needs it.
  bool sign_body = false;
  // The session token goes out (X-Amz-Security-Token) but is not signed:
  // added after signing (some services' presigned URLs want this).
  bool omit_session_token = false;
  int64_t expires_seconds = 3600;  // presigned URLs only (1..604800)
};

struct AwsSignature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // lower-case hex
  // What to add to the request: header signing gives x-amz-date,
  // x-amz-security-token, x-amz-content-sha256 and Authorization; query
  // signing gives the X-Amz-* query parameters (decoded, to be encoded with
  // AwsUriEncode) and no headers.
  AwsHeaderList headers;
  AwsHeaderList query;
  std::string authorization;  // header signing: the Authorization value
};

// Signs into the Authorization header.
StatusOr<AwsSignature> AwsSignHeaders(const AwsSigningRequest& request,
                                      const AwsCredentials& credentials,
                                      const AwsSigningOptions& options);
// Signs into the query string (presigned URL valid expires_seconds).
StatusOr<AwsSignature> AwsPresign(const AwsSigningRequest& request,
                                  const AwsCredentials& credentials,
                                  const AwsSigningOptions& options);

// --- The pieces, exposed for tests and the client ---

// RFC 3986 encoding as SigV4 wants it: unreserved (A-Z a-z 0-9 - . _ ~)
// kept, every other byte %XX (upper-case hex); '/' kept when keep_slash.
std::string AwsUriEncode(std::string_view in, bool keep_slash);
// Decodes %XX escapes ('+' stays '+'); `in` unchanged when an escape is
// malformed.
std::string AwsUriDecode(std::string_view in);
// Removes empty, "." and ".." segments; keeps a trailing slash; "/" at least.
std::string AwsNormalizePath(std::string_view path);
// The canonical URI of `path` under `options`.
std::string AwsCanonicalUri(std::string_view path,
                            const AwsSigningOptions& options);
// name=value pairs encoded and sorted by name, then value, joined by '&'.
std::string AwsCanonicalQuery(const AwsHeaderList& query);
// Trims a header value and collapses runs of whitespace (also folded
// continuation lines) into one space.
std::string AwsTrimHeaderValue(std::string_view value);
// "20150830T123600Z" (ISO 8601 basic, UTC).
std::string AwsAmzDate(int64_t time_s);
// Lower-case hex SHA-256 of `body`.
std::string AwsPayloadHash(std::string_view body);
// Lower-case hex HMAC-SHA256 of the string to sign under the key derived
// from `secret`, date, region and service.
std::string AwsSignatureHex(std::string_view secret, std::string_view date,
                            std::string_view region, std::string_view service,
                            std::string_view string_to_sign);

}  // namespace cbpipe
