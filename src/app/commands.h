// cbpipe's commands. Each returns the process exit code:
//   0  everything valid / delivered
//   1  some records rejected (validate), or some batch failed or valid
//      records could not be delivered (run)
//   2  usage or config error, or an input that cannot be read at all or is
//      over one of its limits
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "secrets/secret_store.h"

namespace cbpipe {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRejected = 1;
inline constexpr int kExitUsage = 2;

// The present, for date rules. CBPIPE_NOW (epoch seconds or an ISO 8601
// date-time) overrides the system clock so tests are repeatable.
StatusOr<int64_t> NowEpochSeconds();

// Loads --config, or the built-in default when `path` is empty.
StatusOr<Config> LoadConfigOrDefault(const std::string& path);

// The secret store of `cbpipe run` and the operator commands, as serve's:
// env: and file: references as always, aws-sm: from Secrets Manager on the
// config's [aws] client (OpenSecretStoreFor, cached). Without an [aws]
// table an aws-sm: reference fails with kFailedPrecondition saying so.
std::unique_ptr<SecretStore> OpenCommandSecrets(const Config& config);
// kFailedPrecondition, naming the destination and key, when a destination's
// password or private_key is an aws-sm: reference and the config has no
// [aws] table; commands that deliver check it before doing anything.
Status CheckAwsSecretsConfigured(const Config& config);

struct ValidateArgs {
  std::string config_path;
  std::optional<InputFormat> format;
  bool json = false;
  int max_errors_shown = 20;  // human output only
  std::vector<std::string> inputs;
};
int RunValidate(const ValidateArgs& args);

struct RunArgs {
  std::string config_path;
  std::string work_dir;  // overrides [output] work_dir when set
  bool json = false;
  std::vector<std::string> inputs;
};
int RunPipeline(const RunArgs& args);

int RunConfigCheck(const std::string& config_path);

// cbpipe serve: runs until SIGTERM or SIGINT (docs/service.md).
int RunServe(const std::string& config_path);

// cbpipe lambda: the Lambda custom runtime, configured by the environment
// Lambda sets (AWS_LAMBDA_RUNTIME_API, _HANDLER, CBPIPE_CONFIG, ...;
// docs/aws.md "Lambda functions"). Runs until Lambda ends the process;
// returns non-zero after an init error (reported to Lambda) or when the
// runtime API went away.
int RunLambda();

// cbpipe export-asl: writes the Step Functions definition generated from the
// workflow definition (workflow/asl_export.h) to `out_path` ("" or "-":
// stdout). kExitUsage when it cannot be generated or written.
int RunExportAsl(const std::string& out_path);

}  // namespace cbpipe
