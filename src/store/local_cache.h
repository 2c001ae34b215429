// What the adapters that copy objects for LocalPath (memory, S3) share:
// their private cache folder, the holds on each copy, and the removal of a
// copy no one holds.
//
//   CBPIPE_ASSIGN_OR_RETURN(cache_dir, MakeProcessFolder("cache", Describe()));
//   CopyHolds holds;                         // guarded by the store's lock
//   holds.Take(key);                         // each LocalPath that succeeds
//   if (holds.Give(key)) RemoveCachedCopy(cache_dir, key);  // last release
//   RemoveProcessFolder(cache_dir);          // in the store's destructor
//
// The cache folder is a process folder (common/process_folder.h): one a
// killed process left is removed by the next store that makes or removes
// one.
//
// Not thread-safe: the store calls it under its own lock.
#pragma once

#include <map>
#include <string>

#include "common/process_folder.h"

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

}  // namespace cbpipe
