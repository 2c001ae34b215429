// Crash points for the kill -9 tests: named places in the code where the
// process can be made to SIGKILL itself, so a test can crash it at exactly
// "between upload and ledger write" rather than at a random moment.
//
//   CrashPoint("deliver.after_rename");
//
// Armed only by the environment variable CBPIPE_CRASH_AT="<name>:<n>" (the
// n-th time the point is reached, 1-based); unset, a crash point costs one
// relaxed atomic load. Never set it in production.
#pragma once

#include <string_view>

namespace cbpipe {

void CrashPoint(std::string_view name);

}  // namespace cbpipe
