// The ObjectStore port: where raw inputs (and later generated files) live.
// The embedded adapter is a local folder; an S3 adapter implements the same
// interface.
//
//   LocalFolderStore store("/var/lib/cbpipe/objects");
//   CBPIPE_RETURN_IF_ERROR(store.PutFile("inputs/ab12...", "/inbox/x.csv"));
//   CBPIPE_ASSIGN_OR_RETURN(std::string path, store.LocalPath("inputs/ab12"));
//
// Keys are relative paths of [A-Za-z0-9._/-] without "..", empty segments
// or a leading '/'; anything else is kInvalidArgument. A Put is atomic: a
// reader sees the whole object or none. Objects are immutable by
// convention: the service writes content-addressed keys only.
//
// Errors: kNotFound for a missing key; kInvalidArgument for a bad key;
// kUnavailable for transient I/O; kInternal otherwise.
// Thread safety: all methods may be called from several threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace cbpipe {

// What PutContentAddressed stored.
struct StoredObject {
  std::string key;     // prefix + sha256
  std::string sha256;  // lower-case hex of the bytes stored
  uint64_t size = 0;   // bytes stored
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // Copies the local file at `path` to `key` (replacing an existing object).
  virtual Status PutFile(const std::string& key, const std::string& path) = 0;
  // Copies everything `fd` holds from offset 0 to its end (pread: the fd's
  // offset is left alone) to `prefix` + its SHA-256, hashing what it copies
  // in the same pass, so the key names exactly the bytes stored. An object
  // already there under that key is kept (same key, same bytes).
  virtual StatusOr<StoredObject> PutContentAddressed(const std::string& prefix,
                                                     int fd) = 0;
  // A local path from which the object can be read (for a local folder, the
  // object itself; a remote store downloads to a cache first).
  virtual StatusOr<std::string> LocalPath(const std::string& key) = 0;
  virtual StatusOr<bool> Exists(const std::string& key) = 0;
  // Keys under `prefix`, sorted.
  virtual StatusOr<std::vector<std::string>> List(
      const std::string& prefix) = 0;
  virtual std::string Describe() const = 0;
};

// Checks the key rules above.
Status ValidateObjectKey(const std::string& key);

class LocalFolderStore : public ObjectStore {
 public:
  explicit LocalFolderStore(std::string root) : root_(std::move(root)) {}
  Status PutFile(const std::string& key, const std::string& path) override;
  StatusOr<StoredObject> PutContentAddressed(const std::string& prefix,
                                             int fd) override;
  StatusOr<std::string> LocalPath(const std::string& key) override;
  // Removes the temporary files of Puts that never finished: those of
  // processes no longer running on this machine (the name holds the pid),
  // and any older than a day. Returns how many were removed.
  StatusOr<int> RemoveStaleTemporaries();
  StatusOr<bool> Exists(const std::string& key) override;
  StatusOr<std::vector<std::string>> List(const std::string& prefix) override;
  std::string Describe() const override { return "file://" + root_; }

 private:
  std::string root_;
};

}  // namespace cbpipe
