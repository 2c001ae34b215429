// Runs the AWS SigV4 conformance cases (tests/data/aws-sigv4/v4, from
// awslabs/aws-c-auth) against the signer in aws/sigv4.h. Used by the
// `sigv4-conformance DIR` tool, its CTest and the libcurl measurement
// (sigv4-curl-measure, docs/aws.md).
//
//   CBPIPE_ASSIGN_OR_RETURN(AwsConformanceCase c, LoadAwsConformanceCase(dir));
//   std::vector<std::string> diffs = CheckAwsConformanceCase(c);  // {} = PASS
//
// Errors: kNotFound / kInvalidArgument when a case folder lacks a file or a
// file does not parse. Thread safety: pure functions over their arguments.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "aws/sigv4.h"
#include "common/status.h"

namespace cbpipe {

// A raw HTTP request as request.txt holds it.
struct AwsRawRequest {
  std::string method;
  std::string path;   // the request target before '?', as written
  std::string query;  // after '?', as written ("" when none)
  AwsHeaderList headers;
  std::string body;
};

// Parses "METHOD TARGET HTTP/1.1\r?\n" + header lines (a line starting with
// a space or tab continues the previous value) + blank line + body. The
// target may contain spaces (everything between the first and last space).
StatusOr<AwsRawRequest> ParseAwsRawRequest(std::string_view text);
// "a=1&b&c=%20" -> {{"a","1"},{"b",""},{"c"," "}} (decoded).
AwsHeaderList ParseAwsQueryString(std::string_view query);

struct AwsConformanceCase {
  std::string name;  // the folder's name
  std::string dir;
  AwsRawRequest request;
  AwsCredentials credentials;
  AwsSigningOptions options;  // payload_hash = SHA-256 of the body
};

StatusOr<AwsConformanceCase> LoadAwsConformanceCase(const std::string& dir);

// What differs between the signer's output and the expected files, for
// header and query signing: "header-canonical-request.txt line 3: expected
// \"...\", got \"...\"". Empty when the case passes.
std::vector<std::string> CheckAwsConformanceCase(const AwsConformanceCase& c);

// The first difference between two texts (trailing newlines ignored), ""
// when equal: "line N: expected \"...\", got \"...\"".
std::string AwsFirstDifference(std::string_view expected, std::string_view got);

// The case folders under `dir` (those holding a request.txt), sorted.
StatusOr<std::vector<std::string>> ListAwsConformanceCases(
    const std::string& dir);

// The whole file, or kNotFound.
StatusOr<std::string> ReadAwsCaseFile(const std::string& path);

}  // namespace cbpipe
