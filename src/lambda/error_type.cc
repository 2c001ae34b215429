#include "lambda/error_type.h"

#include "workflow/asl_export.h"

namespace cbpipe {

// One mapping for both runtimes: the state machine's rules are written with
// AslErrorName, so the runtime reports exactly those names.
std::string_view LambdaErrorType(const Status& status) {
  if (status.ok()) return kLambdaErrorPermanent;
  return AslErrorName(status.code());
}

}  // namespace cbpipe
