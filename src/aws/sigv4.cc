#include "aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

#include "common/sha256.h"
#include "common/url.h"

namespace cbpipe {
namespace {

constexpr char kAlgorithm[] = "AWS4-HMAC-SHA256";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// Headers that proxies and libcurl may add, change or drop on the way:
// signing them would break the signature (the AWS SDKs skip them too).
bool SkipWhenSigning(const std::string& lower_name) {
  static constexpr std::string_view kSkip[] = {
      "authorization",     "connection", "expect",     "proxy-authorization",
      "transfer-encoding", "upgrade",    "user-agent", "x-amzn-trace-id"};
  return std::find(std::begin(kSkip), std::end(kSkip), lower_name) !=
         std::end(kSkip);
}

std::string HmacRaw(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

struct Canonical {
  std::string headers;         // "name:value\n" lines
  std::string signed_headers;  // "a;b;c"
};

// Lower-cases, joins repeats (in order) with ',', trims, sorts by name.
Canonical CanonicalHeaders(const AwsHeaderList& headers) {
  std::map<std::string, std::string> joined;
  for (const auto& [name, value] : headers) {
    std::string key = Lower(name);
    if (SkipWhenSigning(key)) continue;
    std::string trimmed = AwsTrimHeaderValue(value);
    auto [it, inserted] = joined.emplace(key, trimmed);
    if (!inserted) it->second += "," + trimmed;
  }
  Canonical out;
  for (const auto& [name, value] : joined) {
    out.headers += name + ":" + value + "\n";
    if (!out.signed_headers.empty()) out.signed_headers += ";";
    out.signed_headers += name;
  }
  return out;
}

bool HasHeader(const AwsHeaderList& headers, std::string_view lower_name) {
  for (const auto& header : headers) {
    if (Lower(header.first) == lower_name) return true;
  }
  return false;
}

// Drops headers the signer sets itself, so a re-signed request (a retry)
// does not carry the old ones twice.
AwsHeaderList WithoutSignerHeaders(const AwsHeaderList& headers) {
  AwsHeaderList out;
  for (const auto& header : headers) {
    std::string key = Lower(header.first);
    if (key == "x-amz-date" || key == "x-amz-security-token" ||
        key == "x-amz-content-sha256" || key == "authorization") {
      continue;
    }
    out.push_back(header);
  }
  return out;
}

Status Validate(const AwsSigningRequest& request,
                const AwsCredentials& credentials,
                const AwsSigningOptions& options) {
  if (options.region.empty() || options.service.empty()) {
    return InvalidArgumentError("SigV4: region and service must be set");
  }
  if (credentials.access_key_id.empty() ||
      credentials.secret_access_key.empty()) {
    return InvalidArgumentError(
        "SigV4: credentials have no access key id or "
        "secret access key");
  }
  if (request.method.empty() || request.path.empty() ||
      request.path[0] != '/') {
    return InvalidArgumentError(
        "SigV4: the request needs a method and a path "
        "starting with '/'");
  }
  if (!HasHeader(request.headers, "host")) {
    return InvalidArgumentError("SigV4: the request has no Host header");
  }
  if (options.time_s < 0 || options.time_s > 253402300799) {
    return InvalidArgumentError("SigV4: time " +
                                std::to_string(options.time_s) +
                                " is outside years 1970..9999");
  }
  return OkStatus();
}

std::string BuildCanonicalRequest(const AwsSigningRequest& request,
                                  const AwsHeaderList& query,
                                  const Canonical& headers,
                                  const AwsSigningOptions& options) {
  std::string out = request.method + "\n";
  out += AwsCanonicalUri(request.path, options) + "\n";
  out += AwsCanonicalQuery(query) + "\n";
  out += headers.headers + "\n";
  out += headers.signed_headers + "\n";
  out += options.payload_hash;
  return out;
}

std::string Scope(const std::string& date, const AwsSigningOptions& options) {
  return date + "/" + options.region + "/" + options.service + "/aws4_request";
}

std::string StringToSign(const std::string& amz_date, const std::string& scope,
                         const std::string& canonical_request) {
  return std::string(kAlgorithm) + "\n" + amz_date + "\n" + scope + "\n" +
         AwsPayloadHash(canonical_request);
}

}  // namespace

std::string AwsUriEncode(std::string_view in, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size() * 3);
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string AwsUriDecode(std::string_view in) {
  std::string out;
  if (!PercentDecode(in, &out, /*plus_is_space=*/false)) return std::string(in);
  return out;
}

std::string AwsNormalizePath(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    start = end + 1;
  }
  std::string out;
  for (std::string_view segment : segments) {
    out += '/';
    out += segment;
  }
  // A trailing "/" (also "/." and "/..") names a folder: keep it.
  bool trailing =
      !path.empty() &&
      (path.back() == '/' || path.ends_with("/.") || path.ends_with("/.."));
  if (out.empty() || trailing) out += '/';
  return out;
}

std::string AwsCanonicalUri(std::string_view path,
                            const AwsSigningOptions& options) {
  std::string uri =
      options.normalize_path ? AwsNormalizePath(path) : std::string(path);
  return options.double_encode_path ? AwsUriEncode(uri, /*keep_slash=*/true)
                                    : uri;
}

std::string AwsCanonicalQuery(const AwsHeaderList& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(AwsUriEncode(name, false), AwsUriEncode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name + "=" + value;
  }
  return out;
}

std::string AwsTrimHeaderValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

std::string AwsAmzDate(int64_t time_s) {
  std::time_t t = static_cast<std::time_t>(time_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string AwsPayloadHash(std::string_view body) {
  Sha256 sha;
  sha.Update(body.data(), body.size());
  StatusOr<std::string> hex = sha.FinishHex();
  // OpenSSL out of memory: a hash no server accepts, never a false one.
  return hex.ok() ? *hex : std::string("sha256-failed");
}

std::string AwsSignatureHex(std::string_view secret, std::string_view date,
                            std::string_view region, std::string_view service,
                            std::string_view string_to_sign) {
  std::string key = HmacRaw("AWS4" + std::string(secret), date);
  key = HmacRaw(key, region);
  key = HmacRaw(key, service);
  key = HmacRaw(key, "aws4_request");
  std::string raw = HmacRaw(key, string_to_sign);
  return HexDigest(reinterpret_cast<const unsigned char*>(raw.data()),
                   raw.size());
}

StatusOr<AwsSignature> AwsSignHeaders(const AwsSigningRequest& request,
                                      const AwsCredentials& credentials,
                                      const AwsSigningOptions& options) {
  CBPIPE_RETURN_IF_ERROR(Validate(request, credentials, options));
  const std::string amz_date = AwsAmzDate(options.time_s);
  const std::string scope = Scope(amz_date.substr(0, 8), options);

  AwsSignature sig;
  sig.headers.emplace_back("X-Amz-Date", amz_date);
  bool token = !credentials.session_token.empty();
  if (token && !options.omit_session_token) {
    sig.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  if (options.sign_body) {
    sig.headers.emplace_back("X-Amz-Content-Sha256", options.payload_hash);
  }
  AwsHeaderList all = WithoutSignerHeaders(request.headers);
  all.insert(all.end(), sig.headers.begin(), sig.headers.end());
  Canonical canonical = CanonicalHeaders(all);

  sig.canonical_request =
      BuildCanonicalRequest(request, request.query, canonical, options);
  sig.string_to_sign = StringToSign(amz_date, scope, sig.canonical_request);
  sig.signature =
      AwsSignatureHex(credentials.secret_access_key, amz_date.substr(0, 8),
                      options.region, options.service, sig.string_to_sign);
  sig.authorization = std::string(kAlgorithm) +
                      " Credential=" + credentials.access_key_id + "/" + scope +
                      ", SignedHeaders=" + canonical.signed_headers +
                      ", Signature=" + sig.signature;
  if (token && options.omit_session_token) {
    sig.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  sig.headers.emplace_back("Authorization", sig.authorization);
  return sig;
}

StatusOr<AwsSignature> AwsPresign(const AwsSigningRequest& request,
                                  const AwsCredentials& credentials,
                                  const AwsSigningOptions& options) {
  CBPIPE_RETURN_IF_ERROR(Validate(request, credentials, options));
  if (options.expires_seconds < 1 || options.expires_seconds > 604800) {
    return InvalidArgumentError(
        "SigV4: a presigned URL lives 1..604800 s, not " +
        std::to_string(options.expires_seconds));
  }
  const std::string amz_date = AwsAmzDate(options.time_s);
  const std::string scope = Scope(amz_date.substr(0, 8), options);
  Canonical canonical = CanonicalHeaders(WithoutSignerHeaders(request.headers));

  AwsSignature sig;
  sig.query = {{"X-Amz-Algorithm", kAlgorithm},
               {"X-Amz-Credential", credentials.access_key_id + "/" + scope},
               {"X-Amz-Date", amz_date},
               {"X-Amz-Expires", std::to_string(options.expires_seconds)},
               {"X-Amz-SignedHeaders", canonical.signed_headers}};
  bool token = !credentials.session_token.empty();
  if (token && !options.omit_session_token) {
    sig.query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  AwsHeaderList query = request.query;
  query.insert(query.end(), sig.query.begin(), sig.query.end());

  sig.canonical_request =
      BuildCanonicalRequest(request, query, canonical, options);
  sig.string_to_sign = StringToSign(amz_date, scope, sig.canonical_request);
  sig.signature =
      AwsSignatureHex(credentials.secret_access_key, amz_date.substr(0, 8),
                      options.region, options.service, sig.string_to_sign);
  if (token && options.omit_session_token) {
    sig.query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  sig.query.emplace_back("X-Amz-Signature", sig.signature);
  return sig;
}

}  // namespace cbpipe
