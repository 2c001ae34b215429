// The mode of files that hold record data: generated batches, the rejects
// report, the state and ledger databases (and SQLite's -wal and -shm files
// beside them). Owner read/write, group read, nothing for others, as the
// batches have always had.
//
//   int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, kRecordFileMode);
//   CBPIPE_RETURN_IF_ERROR(RestrictDatabaseFiles(db_path));  // before open
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"

namespace cbpipe {

inline constexpr mode_t kRecordFileMode = 0640;

// Gives the open file `fd` kRecordFileMode (for a file that may have existed
// before with a wider mode). kInternal naming `path` when it cannot.
Status RestrictRecordFile(int fd, const std::string& path);

// For an SQLite database about to be opened: creates `path` with
// kRecordFileMode if it is missing (SQLite then gives its -wal and -shm
// files the same mode) and takes away from an existing database and its
// -wal, -shm and -journal files any permission kRecordFileMode does not
// give. Best effort for files the caller may not change (not the owner, no
// write access): SQLite's open then reports what matters. ":memory:" and
// "file:" URIs are left alone.
Status RestrictDatabaseFiles(const std::string& path);

}  // namespace cbpipe
