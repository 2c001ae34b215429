#include "aws/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "aws/sigv4_conformance.h"
#include "gtest/gtest.h"

namespace cbpipe {
namespace {

const AwsCredentials kCreds = [] {
  AwsCredentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  return c;
}();

AwsSigningOptions ServiceOptions() {
  AwsSigningOptions o;
  o.region = "us-east-1";
  o.service = "service";
  o.time_s = 1440938160;
  return o;
}

AwsSigningRequest Request(AwsHeaderList headers, std::string method = "GET",
                          std::string path = "/") {
  AwsSigningRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers = std::move(headers);
  return r;
}

TEST(AwsUriEncodeTest, KeepsUnreservedEncodesEverythingElseUpperHex) {
  EXPECT_EQ(AwsUriEncode("AZaz09-._~", false), "AZaz09-._~");
  EXPECT_EQ(AwsUriEncode("a b+c=d&e/f", false), "a%20b%2Bc%3Dd%26e%2Ff");
  EXPECT_EQ(AwsUriEncode("a b/c", true), "a%20b/c");
  EXPECT_EQ(AwsUriEncode("\xe1\x88\xb4", false), "%E1%88%B4");
  EXPECT_EQ(AwsUriEncode("%", false), "%25");
}

TEST(AwsUriEncodeTest, DecodeIsTheInverseAndKeepsMalformedEscapes) {
  EXPECT_EQ(AwsUriDecode("a%20b%2Fc+d"), "a b/c+d");
  EXPECT_EQ(AwsUriDecode("%E1%88%b4"), "\xe1\x88\xb4");
  EXPECT_EQ(AwsUriDecode("100%"), "100%");
  EXPECT_EQ(AwsUriDecode("%zz%4"), "%zz%4");
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  EXPECT_EQ(AwsUriDecode(AwsUriEncode(all, false)), all);
}

TEST(AwsNormalizePathTest, RemovesDotAndEmptySegmentsKeepsTrailingSlash) {
  EXPECT_EQ(AwsNormalizePath("/"), "/");
  EXPECT_EQ(AwsNormalizePath("//"), "/");
  EXPECT_EQ(AwsNormalizePath("//example//"), "/example/");
  EXPECT_EQ(AwsNormalizePath("/./example"), "/example");
  EXPECT_EQ(AwsNormalizePath("/example/.."), "/");
  EXPECT_EQ(AwsNormalizePath("/a/b/../../.."), "/");
  EXPECT_EQ(AwsNormalizePath("/a/./b/../c"), "/a/c");
  EXPECT_EQ(AwsNormalizePath("/a/b/.."), "/a/");
}

TEST(AwsCanonicalUriTest, S3SignsThePathAsGivenOthersEncodeTwice) {
  AwsSigningOptions s3;
  s3.normalize_path = false;
  s3.double_encode_path = false;
  EXPECT_EQ(AwsCanonicalUri("/bucket/a%20b//./c", s3), "/bucket/a%20b//./c");
  AwsSigningOptions other;  // normalize + double encode
  EXPECT_EQ(AwsCanonicalUri("/a%20b//./c", other), "/a%2520b/c");
}

TEST(AwsCanonicalQueryTest, EncodesAndSortsByNameThenValue) {
  EXPECT_EQ(AwsCanonicalQuery({}), "");
  EXPECT_EQ(AwsCanonicalQuery({{"b", "2"}, {"a", "z"}, {"a", "y"}, {"B", ""}}),
            "B=&a=y&a=z&b=2");
  EXPECT_EQ(AwsCanonicalQuery({{"k y", "v/w+"}}), "k%20y=v%2Fw%2B");
  // Sorted by the encoded bytes: '%' (0x25) before 'A'.
  EXPECT_EQ(AwsCanonicalQuery({{"A", "1"}, {" ", "2"}}), "%20=2&A=1");
}

TEST(AwsTrimHeaderValueTest, TrimsAndCollapsesWhitespaceAndFolds) {
  EXPECT_EQ(AwsTrimHeaderValue("  value1  "), "value1");
  EXPECT_EQ(AwsTrimHeaderValue("\"a   b   c\""), "\"a b c\"");
  EXPECT_EQ(AwsTrimHeaderValue("first\r\n\tsecond  \t third"),
            "first second third");
  EXPECT_EQ(AwsTrimHeaderValue(" \t "), "");
}

TEST(AwsAmzDateTest, FormatsUtcBasic) {
  EXPECT_EQ(AwsAmzDate(1440938160), "20150830T123600Z");
  EXPECT_EQ(AwsAmzDate(0), "19700101T000000Z");
}

TEST(AwsSignHeadersTest, VanillaMatchesTheAwsExample) {
  AwsSigningRequest request = Request({{"Host", "example.amazonaws.com"}});
  auto sig = AwsSignHeaders(request, kCreds, ServiceOptions());
  ASSERT_TRUE(sig.ok()) << sig.status().ToString();
  EXPECT_EQ(sig->signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(sig->authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
            "service/aws4_request, SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1"
            "d763fbf31");
}

TEST(AwsSignHeadersTest, RepeatedHeadersJoinInOrderAndSkippedHeadersStayOut) {
  AwsSigningRequest request = Request({{"Host", "h"},
                                       {"My-H", "b"},
                                       {"user-agent", "curl"},
                                       {"X-Amzn-Trace-Id", "Root=1-x"},
                                       {"my-h", " a "}});
  auto sig = AwsSignHeaders(request, kCreds, ServiceOptions());
  ASSERT_TRUE(sig.ok());
  EXPECT_NE(sig->canonical_request.find("\nmy-h:b,a\n"), std::string::npos)
      << sig->canonical_request;
  EXPECT_EQ(sig->canonical_request.find("user-agent"), std::string::npos);
  EXPECT_EQ(sig->canonical_request.find("trace"), std::string::npos);
}

TEST(AwsSignHeadersTest, SignBodyAddsContentSha256AndUnsignedPayload) {
  AwsSigningRequest request =
      Request({{"Host", "s3.amazonaws.com"}}, "PUT", "/b/k");
  AwsSigningOptions options = ServiceOptions();
  options.service = "s3";
  options.sign_body = true;
  options.payload_hash = kAwsUnsignedPayload;
  auto sig = AwsSignHeaders(request, kCreds, options);
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(sig->canonical_request.ends_with(
      "x-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20150830T123600Z\n\n"
      "host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"))
      << sig->canonical_request;
  bool found = false;
  for (const auto& [name, value] : sig->headers) {
    if (name == "X-Amz-Content-Sha256") found = value == "UNSIGNED-PAYLOAD";
  }
  EXPECT_TRUE(found);
}

TEST(AwsSignHeadersTest, ResigningReplacesTheOldSignerHeaders) {
  AwsSigningRequest request = Request({{"Host", "h"}});
  auto first = AwsSignHeaders(request, kCreds, ServiceOptions());
  ASSERT_TRUE(first.ok());
  AwsSigningRequest again = request;
  again.headers.insert(again.headers.end(), first->headers.begin(),
                       first->headers.end());
  auto second = AwsSignHeaders(again, kCreds, ServiceOptions());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->canonical_request, first->canonical_request);
}

TEST(AwsSignHeadersTest, SessionTokenSignedOrAddedAfterSigning) {
  AwsCredentials creds = kCreds;
  creds.session_token = "TOKEN/+=";
  AwsSigningRequest request = Request({{"Host", "h"}});
  AwsSigningOptions options = ServiceOptions();
  auto signed_token = AwsSignHeaders(request, creds, options);
  ASSERT_TRUE(signed_token.ok());
  EXPECT_NE(signed_token->canonical_request.find("x-amz-security-token:"),
            std::string::npos);
  options.omit_session_token = true;
  auto omitted = AwsSignHeaders(request, creds, options);
  ASSERT_TRUE(omitted.ok());
  EXPECT_EQ(omitted->canonical_request.find("x-amz-security-token"),
            std::string::npos);
  EXPECT_NE(std::find(omitted->headers.begin(), omitted->headers.end(),
                      std::make_pair(std::string("X-Amz-Security-Token"),
                                     std::string("TOKEN/+="))),
            omitted->headers.end());

  auto presigned = AwsPresign(request, creds, options);
  ASSERT_TRUE(presigned.ok());
  EXPECT_EQ(presigned->canonical_request.find("Security-Token"),
            std::string::npos);
  ASSERT_GE(presigned->query.size(), 2u);
  EXPECT_EQ(presigned->query[presigned->query.size() - 2].first,
            "X-Amz-Security-Token");
  EXPECT_EQ(presigned->query.back().first, "X-Amz-Signature");
}

TEST(AwsSignHeadersTest, RejectsWhatCannotBeSignedWithoutLeakingTheSecret) {
  AwsSigningRequest no_host;
  AwsCredentials creds = kCreds;
  creds.session_token = "SESSIONTOKEN";
  std::vector<Status> errors;
  errors.push_back(AwsSignHeaders(no_host, creds, ServiceOptions()).status());
  AwsSigningRequest ok = Request({{"Host", "h"}});
  AwsSigningOptions bad = ServiceOptions();
  bad.region = "";
  errors.push_back(AwsSignHeaders(ok, creds, bad).status());
  bad = ServiceOptions();
  bad.expires_seconds = 0;
  errors.push_back(AwsPresign(ok, creds, bad).status());
  AwsCredentials no_key = creds;
  no_key.access_key_id = "";
  errors.push_back(AwsSignHeaders(ok, no_key, ServiceOptions()).status());
  for (const Status& s : errors) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_EQ(s.message().find(creds.secret_access_key), std::string::npos);
    EXPECT_EQ(s.message().find("SESSIONTOKEN"), std::string::npos);
  }
}

TEST(AwsConformanceParseTest, ParsesTargetWithSpacesFoldedHeadersAndBody) {
  auto r = ParseAwsRawRequest(
      "POST /a b/?x=1&y HTTP/1.1\r\nHost:h\r\nMy: one\r\n  two\r\n\r\nbody");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->path, "/a b/");
  EXPECT_EQ(r->query, "x=1&y");
  ASSERT_EQ(r->headers.size(), 2u);
  EXPECT_EQ(r->headers[1].second, " one   two");
  EXPECT_EQ(AwsTrimHeaderValue(r->headers[1].second), "one two");
  EXPECT_EQ(r->body, "body");
  EXPECT_EQ(ParseAwsQueryString("x=1&y&z=%20"),
            (AwsHeaderList{{"x", "1"}, {"y", ""}, {"z", " "}}));
  EXPECT_FALSE(ParseAwsRawRequest("GARBAGE\n").ok());
  EXPECT_FALSE(ParseAwsRawRequest("GET / HTTP/1.1\n continued\n").ok());
}

TEST(AwsConformanceParseTest, FirstDifferenceNamesTheLine) {
  EXPECT_EQ(AwsFirstDifference("a\nb\n", "a\nb"), "");
  EXPECT_EQ(AwsFirstDifference("a\nb", "a\nc"),
            "line 2: expected \"b\", got \"c\"");
  EXPECT_EQ(AwsFirstDifference("a", "a\nc"),
            "line 2: expected \"<no line>\", got \"c\"");
}

// Every case of the copied suite, as a test (the tool runs them too).
TEST(AwsConformanceSuiteTest, EveryCasePassesHeaderAndQuerySigning) {
  auto cases = ListAwsConformanceCases("tests/data/aws-sigv4/v4");
  ASSERT_TRUE(cases.ok()) << cases.status().ToString();
  ASSERT_EQ(cases->size(), 30u);
  for (const std::string& dir : *cases) {
    auto c = LoadAwsConformanceCase(dir);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    std::vector<std::string> diffs = CheckAwsConformanceCase(*c);
    EXPECT_TRUE(diffs.empty()) << c->name << ": " << diffs[0];
  }
}

// A wrong signer is caught: a changed secret fails every case.
TEST(AwsConformanceSuiteTest, AWrongSecretFailsTheCheck) {
  auto c = LoadAwsConformanceCase("tests/data/aws-sigv4/v4/get-vanilla");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  c->credentials.secret_access_key += "x";
  std::vector<std::string> diffs = CheckAwsConformanceCase(*c);
  ASSERT_EQ(diffs.size(), 2u);
  EXPECT_TRUE(diffs[0].starts_with("header-signature.txt line 1: expected"))
      << diffs[0];
}

// The tool itself: PASS lines and exit 0 on the suite; a FAIL line naming
// the file and line, and exit 1, when an expected file is changed.
TEST(Sigv4ConformanceToolTest, ReportsWhatDifferedAndExitsNonZero) {
  namespace fs = std::filesystem;
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "cbpipe-sigv4-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  fs::path dir = tmpl;
  fs::copy("tests/data/aws-sigv4/v4/get-vanilla", dir / "get-vanilla");
  fs::copy("tests/data/aws-sigv4/v4/post-vanilla", dir / "post-vanilla");
  auto run = [&](std::string* out) {
    std::string command =
        std::string(CBPIPE_SIGV4_CONFORMANCE) + " " + dir.string() + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    char buf[4096];
    size_t n;
    while (pipe && (n = fread(buf, 1, sizeof buf, pipe)) > 0)
      out->append(buf, n);
    int status = pipe ? ::pclose(pipe) : -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string out;
  EXPECT_EQ(run(&out), 0) << out;
  EXPECT_EQ(out,
            "PASS get-vanilla\nPASS post-vanilla\n"
            "2/2 cases pass (header and query signing)\n");
  std::ofstream(dir / "post-vanilla" / "query-string-to-sign.txt")
      << "AWS4-HMAC-SHA256\n20150830T123600Z\nwrong scope\n";
  out.clear();
  EXPECT_EQ(run(&out), 1) << out;
  EXPECT_NE(out.find("PASS get-vanilla\n"), std::string::npos) << out;
  EXPECT_NE(out.find("FAIL post-vanilla: query-string-to-sign.txt line 3: "
                     "expected \"wrong scope\", got \"20150830/us-east-1/"
                     "service/aws4_request\";"),
            std::string::npos)
      << out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cbpipe
