// cbpipe lambda: the Lambda custom runtime (lambda/runtime.h) over the
// function chosen by _HANDLER (lambda/function.h); the package's
// `bootstrap` runs it (scripts/package-lambda, docs/aws.md).
#include <cstdio>
#include <cstdlib>

#include "app/commands.h"
#include "lambda/function.h"
#include "lambda/runtime.h"

namespace cbpipe {

int RunLambda() {
  const char* api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  if (api == nullptr || *api == '\0') {
    std::fprintf(stderr,
                 "cbpipe lambda: AWS_LAMBDA_RUNTIME_API is not set (this "
                 "command is run by AWS Lambda as the function's bootstrap)\n");
    return kExitUsage;
  }
  // A bad setting is an init error Lambda shows, not only a dead process.
  const StatusOr<LambdaSettings> settings = LambdaSettingsFromEnv(std::getenv);
  LambdaRuntimeOptions options;
  options.runtime_api = api;
  if (settings.ok()) options.deadline_margin_ms = settings->deadline_margin_ms;
  std::unique_ptr<LambdaFunction> function;
  const Status ended =
      RunLambdaRuntime(options, [&]() -> StatusOr<LambdaHandler> {
        CBPIPE_RETURN_IF_ERROR(settings.status());
        CBPIPE_ASSIGN_OR_RETURN(function, LambdaFunction::Create(*settings));
        LambdaFunction* f = function.get();
        return LambdaHandler(
            [f](const LambdaInvocation& in, const std::atomic<bool>& stop) {
              return f->Handle(in, stop);
            });
      });
  if (ended.ok()) return kExitOk;
  std::fprintf(stderr, "cbpipe lambda: %s\n", ended.ToString().c_str());
  return kExitUsage;
}

}  // namespace cbpipe
