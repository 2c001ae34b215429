// The config of a Lambda function deployed by deploy/aws/cbpipe.yaml: the
// CloudFormation template gives each function its resources as CBPIPE_*
// environment variables, and this maps them into a Config, as ParseConfig
// maps a TOML file (docs/aws.md "Lambda functions", Environment).
//
//   if (LambdaConfigVariablesSet(std::getenv).empty()) { ... CBPIPE_CONFIG }
//   CBPIPE_ASSIGN_OR_RETURN(Config c, ConfigFromLambdaEnvironment(
//       std::getenv, LambdaConfigRole::kStep));
//
// What the variables become:
//   CBPIPE_RAW_BUCKET            [service] object_store = s3://BUCKET
//   CBPIPE_PROCESSED_BUCKET      [service] work_store = s3://BUCKET
//   CBPIPE_STATE_TABLE           [service] run_store and ledger =
//                                dynamodb://TABLE (one table: run items are
//                                "run#..." keys, ledger items "file#...")
//   CBPIPE_NOTIFICATION_TOPIC_ARN  [notify.sns] topic_arn ("" = no notifier)
//   CBPIPE_MAX_FILES_PER_BATCH   [output] max_files_per_batch (1..1000)
//   CBPIPE_MAX_FILE_BYTES        [output] max_file_bytes (1024..2^40)
//   CBPIPE_MAX_INPUT_BYTES       [input] max_decompressed_bytes (1024..2^50)
//   CBPIPE_DESTINATION_<NET>_URL     a [[destination]] named <net> receiving
//                                <net>'s records (sftp:// or ftps://; ""
//                                = none), NET one of VISA, MASTERCARD,
//                                AMEX, DISCOVER
//   CBPIPE_DESTINATION_<NET>_SECRET  its Secrets Manager secret (ARN or
//                                name), required with a URL: password =
//                                "aws-sm:SECRET#password"
//   AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>  [aws] endpoints (as the
//                                AWS SDKs read them; for tests on moto)
// Everything else keeps its default (docs/configuration.md); a relative
// work_dir is placed under TMPDIR by the Lambda function.
//
// Errors: kInvalidArgument naming the variable (a required one missing, a
// number or name that is not one, a URL with a password in it); a value is
// quoted only when it cannot be a secret (never a URL's user part).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/config.h"

namespace cbpipe {

// `start` reads only the raw bucket (it starts executions); every step
// handler reads the whole set.
enum class LambdaConfigRole { kStart, kStep };

struct LambdaConfigVariable {
  std::string name;
  bool required = false;
};

// The variables ConfigFromLambdaEnvironment reads for `role`, required
// ones marked (AWS_ENDPOINT_URL* are not listed: Lambda never sets them).
std::vector<LambdaConfigVariable> LambdaConfigVariables(LambdaConfigRole role);

// The config variables of any role that are set (non-empty) in `getenv`,
// for telling a CBPIPE_CONFIG deployment from a template one.
std::vector<std::string> LambdaConfigVariablesSet(
    const std::function<const char*(const char*)>& getenv);

StatusOr<Config> ConfigFromLambdaEnvironment(
    const std::function<const char*(const char*)>& getenv,
    LambdaConfigRole role);

}  // namespace cbpipe
