// MakeAwsClient: the one AwsClient of a process, built from the [aws] table
// (aws/options.h) — the region resolved as the CLI does, the default
// credentials chain, endpoint overrides, S3 addressing and timeouts; the
// CA certificates from AWS_CA_BUNDLE when it is set (as the AWS CLI and
// SDKs read it; a packaged Lambda function points it at the host's bundle,
// docs/aws.md "Lambda functions"), else libcurl's built-in path. Every
// AWS adapter opened from configuration shares it (workflow/registry.h
// AwsClientFor keeps one per distinct AwsOptions).
//
//   AwsOptions options;                       // from Config::aws
//   options.endpoints["s3"] = "http://127.0.0.1:5000";
//   CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> aws,
//                           MakeAwsClient(options));
//   S3ObjectStore store(aws, "bucket", "prefix/");
//
// Errors: kInvalidArgument when no region can be found (ResolveAwsRegion)
// or an option is bad (a malformed endpoint, a negative timeout). Missing
// credentials are not an error here: they surface at the first call
// (kUnauthenticated), so a process can start before its role is ready.
// Thread safety: a pure function; the client is thread-safe.
#pragma once

#include <memory>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "aws/options.h"
#include "common/status.h"

namespace cbpipe {

// `host` is what the chain reads of the process (tests inject one);
// `observer` sees every call (may be null).
StatusOr<std::shared_ptr<AwsClient>> MakeAwsClient(
    const AwsOptions& options, const AwsHost& host = {},
    std::shared_ptr<AwsCallObserver> observer = nullptr);

// The AwsClientOptions `options` map to, with `region` already resolved.
AwsClientOptions AwsClientOptionsFor(const AwsOptions& options,
                                     const std::string& region);

}  // namespace cbpipe
