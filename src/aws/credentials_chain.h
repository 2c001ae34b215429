// The AWS CLI's default credentials chain and its region lookup.
//
//   AwsHost host;                                // the real process
//   std::unique_ptr<AwsCredentialsProvider> credentials =
//       MakeDefaultAwsCredentialsChain(options, host);
//   CBPIPE_ASSIGN_OR_RETURN(AwsCredentials c, credentials->Get());
//   CBPIPE_ASSIGN_OR_RETURN(std::string region, ResolveAwsRegion(options,
//                                                                host));
//   log("credentials from " + credentials->Source());   // never a secret
//
// Sources, tried in this order (the first that is configured answers):
//  1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
//     (+ AWS_SESSION_TOKEN). Skipped when AwsOptions::profile names a
//     profile, as `aws --profile` does.
//  2. shared files: the profile (AwsOptions::profile, AWS_PROFILE, else
//     "default") in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials, section
//     [name]), then in AWS_CONFIG_FILE (~/.aws/config, section [profile
//     name], or [default]): aws_access_key_id, aws_secret_access_key,
//     aws_session_token.
//  3. container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on
//     http://169.254.170.2) or _FULL_URI (loopback, 169.254.170.2,
//     169.254.170.23 or fd00:ec2::23 only), with the Authorization header
//     from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read at every fetch) or
//     AWS_CONTAINER_AUTHORIZATION_TOKEN.
//  4. instance metadata (IMDSv2 only): PUT /latest/api/token, then the role
//     under /latest/meta-data/iam/security-credentials/. Endpoint from
//     AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254);
//     AWS_EC2_METADATA_DISABLED=true skips it; AWS_METADATA_SERVICE_TIMEOUT
//     (seconds, default 1) and AWS_METADATA_SERVICE_NUM_ATTEMPTS (default
//     1) bound the wait outside EC2.
//
// Get() errors, none with a secret in it:
//  - kInvalidArgument: AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY (or
//    the reverse); a named profile found in neither file; a profile with
//    half a key pair or only role/SSO/process settings (not supported); a
//    malformed file (path and line, never the line); a FULL_URI to a host
//    not allowed; a token with a line break.
//  - kUnavailable: the container endpoint configured but failing, or
//    instance metadata answered but without credentials.
//  - kUnauthenticated: nothing configured: "no AWS credentials found
//    (tried: ...)" listing each source and why it did not answer.
// Credentials that expire (container, instance metadata) are cached and
// fetched again 5 minutes before they expire (by the injected Env's clock);
// when that refresh fails while the old ones are still valid, the old ones
// are returned. Keys without expiry are cached until Invalidate().
// Thread safety: Get, Source and Invalidate may be called from several
// threads; one fetch runs at a time.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "aws/options.h"
#include "common/env.h"
#include "common/status.h"

namespace cbpipe {

// What the chain reads of the process, injected so tests are hermetic.
struct AwsHost {
  // getenv-like: nullopt when unset. Null = ::getenv.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  // Where ~/.aws is; "" = $HOME (through `getenv`).
  std::string home_dir;
  // The clock for expiry and the waits between attempts; null =
  // Env::Default().
  Env* env = nullptr;
  // Where AWS_CONTAINER_CREDENTIALS_RELATIVE_URI points; "" = the ECS agent,
  // http://169.254.170.2. Tests point it at their own server.
  std::string container_relative_base;
};

// The default chain. Never null; every error surfaces at Get().
// Source() is "" until a Get has succeeded, then one of "environment",
// "profile NAME in PATH", "container", "instance metadata".
std::unique_ptr<AwsCredentialsProvider> MakeDefaultAwsCredentialsChain(
    const AwsOptions& options, const AwsHost& host);

// The region: options.region, else AWS_REGION, else AWS_DEFAULT_REGION, else
// `region` of the profile (as for credentials) in the config file.
// kInvalidArgument when none is set or a file is malformed.
StatusOr<std::string> ResolveAwsRegion(const AwsOptions& options,
                                       const AwsHost& host);

// What a region name may be: 1-32 of lowercase letters, digits and '-' (it
// becomes part of host names). config/ checks [aws] region with it.
bool IsAwsRegionName(std::string_view name);

}  // namespace cbpipe
