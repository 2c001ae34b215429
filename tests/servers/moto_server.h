// A moto server (https://github.com/getmoto/moto, `moto_server` on PATH) on
// 127.0.0.1 for the AWS tests: S3, SQS, SNS, DynamoDB, Secrets Manager in
// one process, accepting any signature (the signer's correctness rests on
// the conformance suite, tests/data/aws-sigv4).
//
//   MotoServer::UseTestCredentials();        // AWS_ACCESS_KEY_ID=testing ...
//   auto moto = MotoServer::Start();         // one per test binary or test
//   if (!moto.ok()) FAIL() << moto.status().ToString();
//   options.endpoints["s3"] = (*moto)->endpoint();  // http://127.0.0.1:PORT
//   ASSERT_TRUE((*moto)->Reset().ok());      // forget every resource
//
// Start picks a free port, starts moto_server in its own process group with
// its output in a log file, and returns once it answers HTTP; kUnavailable
// (with the log's tail) when it does not within 30 s, kNotFound when
// moto_server is not on PATH. The destructor kills the process group and
// reaps it. Not thread-safe; needs no root.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "servers/test_servers.h"

namespace cbpipe::testing {

class MotoServer {
 public:
  static StatusOr<std::unique_ptr<MotoServer>> Start();
  ~MotoServer();
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;

  // "http://127.0.0.1:PORT"
  std::string endpoint() const;
  int port() const { return port_; }
  const std::string& log_path() const { return log_path_; }
  // POST /moto-api/reset: every bucket, queue, table, topic and secret gone.
  Status Reset();

  // Sets AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY to "testing",
  // AWS_REGION / AWS_DEFAULT_REGION to "us-east-1" and clears
  // AWS_SESSION_TOKEN and AWS_PROFILE in this process (moto's conventions).
  static void UseTestCredentials();

 private:
  MotoServer() = default;

  ChildProcess process_;
  int port_ = 0;
  std::string dir_;
  std::string log_path_;
};

// One HTTP/1.0 request to 127.0.0.1:port; the answer's status code, or
// kUnavailable. For readiness checks, not for tests of the client.
StatusOr<int> LoopbackHttpStatus(int port, const std::string& method,
                                 const std::string& path,
                                 double timeout_seconds = 2);

}  // namespace cbpipe::testing
