// The errorType a Lambda handler reports for a Status, the names the state
// machine's Retry and Catch rules match (deploy/aws/, `cbpipe export-asl`):
//
//   LambdaErrorType(UnavailableError("connect refused"))  // "Cbpipe.Transient"
//   LambdaErrorType(InvalidArgumentError("bad input"))    // "Cbpipe.InvalidInput"
//   LambdaErrorType(DataLossError("manifest"))            // "Cbpipe.Permanent"
//
// - Cbpipe.Transient: worth another attempt, exactly Status::IsTransient
//   (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED), so retries on AWS follow the
//   embedded engine's policy (RESOURCE_EXHAUSTED is a size or count limit:
//   permanent there, permanent here);
// - Cbpipe.InvalidInput: INVALID_ARGUMENT (the input cannot be read or is
//   over a limit: reject_input);
// - Cbpipe.Permanent: every other code.
// The mapping is AslErrorName's (workflow/asl_export.h), the one the
// exported state machine's Retry and Catch are written with.
// Cbpipe.Init is what an initialisation failure reports (no Status code
// maps to it). Pure; thread-safe.
#pragma once

#include <string_view>

#include "common/status.h"

namespace cbpipe {

inline constexpr std::string_view kLambdaErrorTransient = "Cbpipe.Transient";
inline constexpr std::string_view kLambdaErrorInvalidInput =
    "Cbpipe.InvalidInput";
inline constexpr std::string_view kLambdaErrorPermanent = "Cbpipe.Permanent";
inline constexpr std::string_view kLambdaErrorInit = "Cbpipe.Init";

// `status` must not be OK (an OK status is Cbpipe.Permanent: a bug).
std::string_view LambdaErrorType(const Status& status);

}  // namespace cbpipe
