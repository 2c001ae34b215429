// What the adapters that copy objects for LocalPath (memory, S3) share:
// their private cache folder, the holds on each copy, and the removal of a
// copy no one holds.
//
//   CBPIPE_ASSIGN_OR_RETURN(cache_dir, MakeCacheFolder(Describe()));
//   CopyHolds holds;                         // guarded by the store's lock
//   holds.Take(key);                         // each LocalPath that succeeds
//   if (holds.Give(key)) RemoveCachedCopy(cache_dir, key);  // last release
//   RemoveCacheFolder(cache_dir);            // in the store's destructor
//
// A cache folder is <TMPDIR or /tmp>/cbpipe-cache-<pid namespace>-<pid>-<random>,
// mode 0700. A store whose process is killed (SIGKILL, OOM, a Lambda
// timeout) never removes its own, and it holds copies of inputs (full card
// numbers) and outputs no one will read again: MakeCacheFolder and
// RemoveCacheFolder first remove the folders of ended processes of the same
// pid namespace (never those of another namespace, whose pids mean nothing
// here, nor another user's).
//
// Not thread-safe: the store calls it under its own lock.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "common/status.h"

namespace cbpipe {

class CopyHolds {
 public:
  void Take(const std::string& key) { ++holds_[key]; }
  // True when that was the last hold of `key` (the copy may go); false for
  // a key with no hold.
  bool Give(const std::string& key) {
    auto it = holds_.find(key);
    if (it == holds_.end()) return false;
    if (--it->second > 0) return false;
    holds_.erase(it);
    return true;
  }

 private:
  std::map<std::string, int> holds_;
};

// Removes <cache_dir>/<key> and the folders of it left empty, up to (not
// including) cache_dir. Best effort.
void RemoveCachedCopy(const std::string& cache_dir, const std::string& key);

// A new cache folder for the store described by `what` (for the error:
// kUnavailable when it cannot be made).
StatusOr<std::string> MakeCacheFolder(const std::string& what);
// Removes `cache_dir` ("" does nothing) and the folders of ended processes
// beside it. Best effort.
void RemoveCacheFolder(const std::string& cache_dir);
// The cache folders in `tmp` of ended processes of this pid namespace,
// removed; returns how many. 0 when the namespace cannot be read.
int RemoveCacheFoldersOfEndedProcesses(const std::filesystem::path& tmp);

}  // namespace cbpipe
