// Crash points for the kill -9 tests: named places in the code where the
// process can be made to SIGKILL itself, so a test can crash it at exactly
// "between upload and ledger write" rather than at a random moment.
//
//   CrashPoint("deliver.after_upload");     // a named place
//   DurablePoint("store.rename");           // just after a durable operation
//
// Armed only by the environment variable CBPIPE_CRASH_AT="<name>:<n>": the
// process kills itself the n-th time (1-based) the point <name> is reached.
// The name "*" counts every DurablePoint whatever its name, so
// CBPIPE_CRASH_AT="*:k" crashes right after the k-th durable operation
// (fsync, rename, SQLite commit, remote upload or rename) of the process;
// the crash-consistency test walks k = 1..N. CBPIPE_CRASH_LOG=<file> appends
// the name of every durable operation reached, one a line, so a clean run
// tells how many there are. Unset, a crash point costs one load of a
// static. CBPIPE_CRASH_AT="<name>:<n>:throw" throws std::runtime_error
// there instead (a step that throws, for the tests of the engine's guard).
// CBPIPE_TEST_TRACE=<file> appends "<epoch ms> <pid> <event>" for every
// TestTrace, so a test can check from outside what several processes did
// when (who held a run's claim, when each step started and ended). Never
// set any of them in production.
#pragma once

#include <string_view>

namespace cbpipe {

void CrashPoint(std::string_view name);

// A crash point placed right after a durable operation: it answers to its
// own name, to "*", and is written to CBPIPE_CRASH_LOG.
void DurablePoint(std::string_view name);

// True when CBPIPE_CRASH_AT or CBPIPE_CRASH_LOG is set: stores may then
// install hooks (e.g. SQLite's commit hook) that they leave out otherwise.
bool CrashPointsEnabled();

// One line to CBPIPE_TEST_TRACE when it is set; nothing otherwise.
void TestTrace(std::string_view event);
// True when CBPIPE_TEST_TRACE is set (skip building the lines otherwise).
bool TestTraceEnabled();

}  // namespace cbpipe
