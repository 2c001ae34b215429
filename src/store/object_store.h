// The ObjectStore port: where raw inputs and the files made from them live,
// by key. Adapters: LocalFolderStore (a folder, below), InMemoryObjectStore
// (memory_store.h, for tests); an S3 adapter implements the same interface.
// Open one by URL with OpenObjectStore (workflow/registry.h).
//
//   LocalFolderStore store("/var/lib/cbpipe/objects");
//   // Streaming put: nothing is visible under the key until Commit.
//   CBPIPE_ASSIGN_OR_RETURN(auto out, store.Put("batches/r1/visa.csv"));
//   CBPIPE_RETURN_IF_ERROR(out->Write(header.data(), header.size()));
//   CBPIPE_RETURN_IF_ERROR(out->Commit());  // a failed Write: just return,
//                                           // destroying `out` aborts it
//   // Streaming get: a snapshot of the object as it was at Get.
//   CBPIPE_ASSIGN_OR_RETURN(auto in, store.Get("batches/r1/visa.csv"));
//   char buf[64 * 1024];
//   for (;;) {
//     CBPIPE_ASSIGN_OR_RETURN(size_t n, in->Read(buf, sizeof buf));
//     if (n == 0) break;  // the end
//     Consume(buf, n);
//   }
//   CBPIPE_ASSIGN_OR_RETURN(ObjectInfo info, store.Head("inputs/ab12"));
//   CBPIPE_RETURN_IF_ERROR(store.Delete("batches/r1/visa.csv"));
//
// Keys are relative paths of [A-Za-z0-9._/-], at most 1024 bytes, without
// "." or ".." segments, empty segments or a leading or trailing '/';
// anything else is kInvalidArgument (ValidateObjectKey). Do not use a key
// and a key under it as a folder ("a" and "a/b"): S3 allows it, a folder
// cannot (kFailedPrecondition or kInternal there).
//
// Atomicity: a Put (streaming, PutFile or PutContentAddressed) makes the
// whole object visible at once, replacing any object under the key, or
// nothing: an uncommitted, aborted or failed Put leaves no object and the
// previous one (if any) untouched, and no partial object is ever visible to
// Get, Head, Exists or List. When a commit returns OK the object is durable
// (it survives a crash of the process or, for a folder, of the machine).
// Delete is idempotent: deleting a key that holds no object is OK (as S3
// does), so a retried Delete never fails for having succeeded before.
//
// Errors (every method): kInvalidArgument for a bad key; kNotFound for a
// key with no object (Get, Head, LocalPath); kUnavailable for transient I/O
// (disk full, I/O error: retry later); kFailedPrecondition for a call on a
// reader or writer that cannot take it (Write after Commit); kInternal for
// anything else. Messages name the key, never object contents.
//
// Thread safety: every ObjectStore method may be called from several
// threads at once; concurrent Puts of one key end with one of them whole.
// One ObjectReader or ObjectWriter is used by one thread at a time.
// Ownership: readers and writers belong to the caller and must not outlive
// the store that made them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cbpipe {

// What PutContentAddressed stored.
struct StoredObject {
  std::string key;     // prefix + sha256
  std::string sha256;  // lower-case hex of the bytes stored
  uint64_t size = 0;   // bytes stored
};

// What Head tells of an object.
struct ObjectInfo {
  uint64_t size = 0;     // bytes
  int64_t mtime_ms = 0;  // epoch ms of the commit that stored it
};

// Reads one object from its start, as it was when Get returned (a Put or
// Delete of the key meanwhile does not change what it reads).
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  // Copies up to `n` bytes into `buf` and returns how many; 0 only at the
  // end of the object (or for n == 0).
  virtual StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

// Writes one object. Nothing is visible under the key before Commit returns
// OK. Destroying a writer that was not committed aborts it.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  // Appends `n` bytes. After an error the writer is aborted (later calls
  // fail with kFailedPrecondition).
  virtual Status Write(const char* data, size_t n) = 0;
  // Makes the object visible, whole, durable; replaces any object under
  // the key. After an error nothing is visible. Once only.
  virtual Status Commit() = 0;
  // Drops what was written; nothing becomes visible. Idempotent, and a
  // no-op after Commit.
  virtual void Abort() = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // A reader of the object under `key`; kNotFound when there is none.
  virtual StatusOr<std::unique_ptr<ObjectReader>> Get(
      const std::string& key) = 0;
  // A writer for `key` (checked here: kInvalidArgument).
  virtual StatusOr<std::unique_ptr<ObjectWriter>> Put(
      const std::string& key) = 0;
  // kNotFound when there is no object under `key`.
  virtual StatusOr<ObjectInfo> Head(const std::string& key) = 0;
  // Removes the object; OK when there was none.
  virtual Status Delete(const std::string& key) = 0;
  // Keys that start with `prefix` (a plain string prefix: "inputs/" or
  // "inputs/ab"), sorted bytewise; committed objects only.
  virtual StatusOr<std::vector<std::string>> List(
      const std::string& prefix) = 0;

  // Copies everything `fd` holds from offset 0 to its end (pread: the fd's
  // offset is left alone) to `prefix` + its SHA-256, hashing what it copies
  // in the same pass, so the key names exactly the bytes stored. An object
  // already there under that key is kept (same key, same bytes). prefix +
  // "x" must be a valid key.
  virtual StatusOr<StoredObject> PutContentAddressed(const std::string& prefix,
                                                     int fd) = 0;
  // A local path from which the object can be read, for code that needs a
  // file (mmap, libraries that open by name). For a local folder it is the
  // object itself; a store that is not a local folder (memory, S3) copies
  // the object to a cache file. Read-only: never write through it.
  // Each successful call holds the copy once; ReleaseLocalPath gives a hold
  // back. A copy never released lives as long as the store (a long-running
  // process must release what it took, or its disk fills); a later Put of
  // the key may replace the copy's bytes under a holder that reopens it.
  virtual StatusOr<std::string> LocalPath(const std::string& key) = 0;
  // Gives back one hold LocalPath took of `key`'s copy; when none is left
  // the copy is removed (do not use the path after releasing it). The object
  // itself is untouched. A no-op for a store that makes no copies (a local
  // folder) and for a key with no hold. Never fails.
  virtual void ReleaseLocalPath(const std::string& key) { (void)key; }
  // The folder whose file <root>/<key> IS the object under `key` (a local
  // folder's root), so a caller may write there in place of a Put or read
  // there in place of LocalPath; nullopt for a store that is not a folder.
  virtual std::optional<std::string> LocalRoot() const { return std::nullopt; }
  // Removes what Puts that never finished left behind (a folder's
  // temporaries of processes no longer running, or older than a day); never
  // touches a Put still running. Returns how many were removed.
  virtual StatusOr<int> RemoveStaleTemporaries() = 0;
  // "file:///var/lib/cbpipe/objects", "memory://": for messages and logs.
  virtual std::string Describe() const = 0;

  // Stores the bytes of the local file at `path` under `key`, with Put's
  // atomicity, durability and errors: the whole file or nothing, never
  // part of it. The file is only read, never moved, changed or deleted.
  // `sha256` is the file's lower-case hex SHA-256 when the caller knows it
  // ("" when not): an adapter may send it for the server to verify, and a
  // file whose bytes do not match it is refused (kDataLoss) with nothing
  // stored (a local folder given the object's own file reads nothing:
  // LocalFolderStore below). A file that changes while it is stored is the
  // caller's problem, but never leaves a truncated object: the bytes read,
  // or an error and nothing. Errors: kInvalidArgument for a bad key, a
  // malformed `sha256` or a path that is no regular file; kNotFound when
  // there is no file at `path`; kUnavailable for I/O errors reading it.
  // The default streams the file through Put; adapters override it with
  // something cheaper (S3: one PutObject streamed from the file).
  virtual Status PutFile(const std::string& key, const std::string& path,
                         const std::string& sha256 = "");

  // Head, with kNotFound as false.
  StatusOr<bool> Exists(const std::string& key);
};

// Checks the key rules above.
Status ValidateObjectKey(const std::string& key);

// Whether `store` is the local folder `folder` (its LocalRoot, compared
// canonically: "./w" and "/abs/w/" are the same folder).
bool IsLocalFolder(const ObjectStore& store, const std::string& folder);

// The whole object under `key` as a string (for small objects: manifests,
// reasons). An object over `max_bytes` is kResourceExhausted, found
// without reading more than max_bytes + one buffer.
StatusOr<std::string> GetObjectBytes(ObjectStore& store, const std::string& key,
                                     size_t max_bytes = SIZE_MAX);
// Stores `bytes` under `key` (one Put, committed).
Status PutObjectBytes(ObjectStore& store, const std::string& key,
                      std::string_view bytes);

// Local paths of a store's objects held for one scope: each Path is
// released (ReleaseLocalPath) when the holder is destroyed, so copies of a
// store that copies never outlive the step that needed them.
//
//   LocalCopies copies(store);
//   CBPIPE_ASSIGN_OR_RETURN(std::string path, copies.Path("batches/b1/x"));
//   ...read `path`; the copy goes with `copies`...
//
// One thread at a time; the store must outlive it.
class LocalCopies {
 public:
  explicit LocalCopies(ObjectStore& store) : store_(store) {}
  ~LocalCopies();
  LocalCopies(const LocalCopies&) = delete;
  LocalCopies& operator=(const LocalCopies&) = delete;
  // store.LocalPath(key), held until the destructor.
  StatusOr<std::string> Path(const std::string& key);

 private:
  ObjectStore& store_;
  std::vector<std::string> held_;
};

// The adapter for a local folder: the object under "a/b" is the file
// <root>/a/b. A Put writes <root>/a/.put-<pid>-<random>.tmp (mode 0640),
// fsyncs it, renames it over <root>/a/b and fsyncs the folder. PutFile
// copies the file the same way, except when `path` already is <root>/<key>
// (the same file): then it copies nothing and reads nothing (a given
// sha256 is not checked), it only fsyncs the file and its folder.
class LocalFolderStore : public ObjectStore {
 public:
  explicit LocalFolderStore(std::string root) : root_(std::move(root)) {}
  StatusOr<std::unique_ptr<ObjectReader>> Get(const std::string& key) override;
  StatusOr<std::unique_ptr<ObjectWriter>> Put(const std::string& key) override;
  StatusOr<ObjectInfo> Head(const std::string& key) override;
  Status Delete(const std::string& key) override;
  StatusOr<std::vector<std::string>> List(const std::string& prefix) override;
  StatusOr<StoredObject> PutContentAddressed(const std::string& prefix,
                                             int fd) override;
  Status PutFile(const std::string& key, const std::string& path,
                 const std::string& sha256 = "") override;
  StatusOr<std::string> LocalPath(const std::string& key) override;
  std::optional<std::string> LocalRoot() const override { return root_; }
  // The temporaries of processes no longer running on this machine (the
  // name holds the pid), and any older than a day.
  StatusOr<int> RemoveStaleTemporaries() override;
  std::string Describe() const override { return "file://" + root_; }

 private:
  std::string root_;
};

}  // namespace cbpipe
