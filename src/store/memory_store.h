// An ObjectStore held in memory, for tests and for `memory://` in the
// registry: every Put, Get, Head, Delete and List behaves as the contract in
// object_store.h says (the same contract suite runs on it), without a disk.
//
//   InMemoryObjectStore store;          // or (&fake_env) for mtimes
//   CBPIPE_RETURN_IF_ERROR(store.PutFile("inputs/a.csv", "/tmp/a.csv"));
//   CBPIPE_ASSIGN_OR_RETURN(auto in, store.Get("inputs/a.csv"));
//
// Readers share the bytes of the object they read (a later Put or Delete of
// the key does not change them). LocalPath copies the object to a private
// cache folder under the system temporary folder; the copy goes with its
// last ReleaseLocalPath, the folder with the store.
// Nothing survives the store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/env.h"
#include "store/object_store.h"

namespace cbpipe {

class CopyHolds;  // store/local_cache.h

class InMemoryObjectStore : public ObjectStore {
 public:
  // `env` (not owned; Env::Default() when null) stamps each commit's mtime.
  explicit InMemoryObjectStore(Env* env = nullptr);
  ~InMemoryObjectStore() override;

  StatusOr<std::unique_ptr<ObjectReader>> Get(const std::string& key) override;
  StatusOr<std::unique_ptr<ObjectWriter>> Put(const std::string& key) override;
  StatusOr<ObjectInfo> Head(const std::string& key) override;
  Status Delete(const std::string& key) override;
  StatusOr<std::vector<std::string>> List(const std::string& prefix) override;
  StatusOr<StoredObject> PutContentAddressed(const std::string& prefix,
                                             int fd) override;
  StatusOr<std::string> LocalPath(const std::string& key) override;
  void ReleaseLocalPath(const std::string& key) override;
  // An unfinished Put holds nothing in the store: always 0.
  StatusOr<int> RemoveStaleTemporaries() override { return 0; }
  std::string Describe() const override { return "memory://"; }

  // One committed object: its bytes never change once stored.
  struct Object {
    std::string bytes;
    int64_t mtime_ms = 0;
  };
  // Stores `bytes` under `key` (what a writer's Commit does). With
  // `keep_existing`, an object already there stays.
  void Store(const std::string& key, std::string bytes, bool keep_existing);

 private:
  Env* const env_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Object>> objects_;
  std::string cache_dir_;  // made by the first LocalPath
  // The cache file of each key and the object it copies.
  std::map<std::string, std::shared_ptr<const Object>> cached_;
  std::unique_ptr<CopyHolds> holds_;  // the LocalPath holds on each copy
};

}  // namespace cbpipe
