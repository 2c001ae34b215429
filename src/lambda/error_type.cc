#include "lambda/error_type.h"

namespace cbpipe {

std::string_view LambdaErrorType(const Status& status) {
  if (status.IsTransient()) return kLambdaErrorTransient;
  if (status.code() == StatusCode::kInvalidArgument)
    return kLambdaErrorInvalidInput;
  return kLambdaErrorPermanent;
}

}  // namespace cbpipe
