// S3ObjectStore: the ObjectStore port (object_store.h) on an S3 bucket (or
// anything speaking S3: MinIO, moto), over the shared AwsClient
// (aws/client.h). Opened from `s3://bucket/prefix` by OpenObjectStore
// (workflow/registry.h); the object under key K is s3://bucket/prefix/K.
//
//   CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> aws,
//                           MakeAwsClient(aws_options));
//   S3StoreOptions options;
//   options.sse = "aws:kms";  options.kms_key_id = "alias/cbpipe";
//   S3ObjectStore store(aws, "cbpipe-objects", "prod", options);
//   CBPIPE_ASSIGN_OR_RETURN(auto out, store.Put("batches/r1/visa.csv"));
//   ... as for any ObjectStore.
//
// Put streams: an object that fits in one part (part_size, default 8 MiB,
// at least 5 MiB as S3 requires) is one PutObject at Commit; a larger one
// is a multipart upload (the first full part starts it; Commit sends the
// last part and completes it with the parts in order). Up to
// parallel_parts parts (default 4) are sent at once, on threads the writer
// starts at its first full part and joins at Commit or Abort; the writer
// holds at most parallel_parts part buffers (the one being filled
// included), so Write waits while they are all being sent: memory is
// bounded by parallel_parts x part_size. A part that fails (after the
// client's retries) fails the next Write or the Commit. A failed Write or
// Commit, Abort(), or destroying the writer uncommitted stops the parts in
// flight, joins their threads and aborts the upload
// (AbortMultipartUpload), so neither an object nor an upload is left.
//
// Get reads ranges: Get fetches the first `read_chunk` bytes (default
// 8 MiB) and the object's ETag; every later range is fetched with
// If-Match: that ETag. With parallel_parts > 1 a larger object's later
// ranges are fetched ahead, up to parallel_parts at once, on threads the
// reader starts at Get and its destructor joins (after the ranges in
// flight); memory is bounded by (parallel_parts + 1) x read_chunk. With
// parallel_parts = 1 each Read that empties the buffer fetches the next
// range itself (one chunk of memory). An object no larger than one chunk
// is a true snapshot (the contract's "as it was at Get"); a larger one
// replaced or deleted while being read fails a later Read with
// kFailedPrecondition (never mixed bytes), since S3 without versioning
// keeps no old copy.
//
// PutFile sends a file of up to single_put_max bytes (default 5 GiB, S3's
// single PUT limit) as ONE PutObject whose body is streamed from the file
// (Content-Length = its size; memory is the client's buffer, not the
// size), with x-amz-content-sha256 = the file's SHA-256: the caller's, or
// hashed in a first pass over the file when not given. S3 recomputes it
// and refuses a body that does not match (XAmzContentSHA256Mismatch:
// kDataLoss), so the object is verified end to end, from the bytes the
// caller hashed to the bytes S3 stored. The adapter also hashes what it
// sends and holds the last bytes back unless they match, so even a server
// that does not check (moto) never gets a changed file whole. A larger
// file is a multipart upload of parts of max(part_size, size / 10,000)
// bytes read from the file by offset (never buffered whole), each hashed
// first and sent with its own SHA-256, up to parallel_parts at once on
// threads PutFile owns and joins; a caller's hash is checked in a first
// pass. A failed part, or a file whose size or mtime changed by the end,
// aborts the upload. Retries re-read the file from the part's start.
// Encryption headers as for Put.
//
// PutContentAddressed reads the fd once: it uploads to a temporary key
// (PREFIX/.put-RANDOM.tmp, not a valid store key, so never listed) while
// hashing, then CopyObject to prefix+sha256 (unless already there) and
// deletes the temporary. Objects above 5 GiB (CopyObject's limit) are read
// a second time and put under their final key instead.
//
// LocalPath downloads the object into a private cache folder (removed with
// the store) and reuses the file while HeadObject's ETag is unchanged; the
// file goes with its last ReleaseLocalPath.
// RemoveStaleTemporaries aborts multipart uploads under the prefix started
// more than a day ago and deletes .put-*.tmp keys older than a day.
//
// Errors: as the port says; in addition a missing bucket is
// kFailedPrecondition ("bucket B does not exist") for Get, Put, List,
// Delete (not kNotFound, so Exists never reads "no bucket" as "no
// object"; a HEAD answer has no body, so Head says kNotFound). AWS errors
// keep the code and request id in the message (aws/client.h).
// Thread safety: every method from several threads (the client is
// thread-safe); readers and writers one thread at a time. Ownership: the
// store shares the client; readers and writers must not outlive the store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aws/client.h"
#include "store/object_store.h"

namespace cbpipe {

class CopyHolds;    // store/local_cache.h
struct OpenedFile;  // store/file_source.h

struct S3StoreOptions {
  // Bytes per multipart part; an object up to this size is one PutObject.
  // At least 5 MiB (S3's minimum part), at most 5 GiB.
  uint64_t part_size = 8u << 20;
  // Parts of one multipart upload sent at once, and ranges of one object
  // fetched ahead by a reader (1 to 64; 1 = one after another on the
  // caller's thread). Memory per writer: up to this many part_size
  // buffers; per reader: one read_chunk more than this many.
  int parallel_parts = 4;
  // PutFile sends a file up to this size as one PutObject streamed from
  // the file; a larger one as a multipart upload of parts read from the
  // file. At most 5 GiB (S3's single PUT limit).
  uint64_t single_put_max = 5ull << 30;
  // Bytes per ranged GET (the reader's buffer).
  uint64_t read_chunk = 8u << 20;
  // Server-side encryption: "" (the bucket's default), "AES256" (SSE-S3) or
  // "aws:kms" (SSE-KMS, with kms_key_id or the account's aws/s3 key).
  std::string sse;
  std::string kms_key_id;
};

class S3ObjectStore : public ObjectStore {
 public:
  // `prefix` without leading or trailing '/' ("" = the bucket's root).
  // Create checks the options (kInvalidArgument); nothing is called yet.
  static StatusOr<std::unique_ptr<S3ObjectStore>> Create(
      std::shared_ptr<AwsClient> aws, std::string bucket, std::string prefix,
      S3StoreOptions options = {});
  ~S3ObjectStore() override;

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
  void ReleaseLocalPath(const std::string& key) override;
  StatusOr<int> RemoveStaleTemporaries() override;
  // "s3://bucket/prefix" ("s3://bucket" with no prefix).
  std::string Describe() const override;

  // Server-side copy of the object under `from` to `to` (CopyObject, up to
  // 5 GiB), with this store's encryption.
  Status Copy(const std::string& from, const std::string& to);

  // For the store's own parts (reader, writer); not for callers.
  struct Shared;

 private:
  explicit S3ObjectStore(std::shared_ptr<Shared> shared);
  StatusOr<std::unique_ptr<ObjectWriter>> PutRaw(const std::string& s3_key);
  Status PutFileInParts(const std::string& s3_key, const OpenedFile& file,
                        const std::string& path);

  std::shared_ptr<Shared> shared_;
  std::mutex cache_mu_;
  std::string cache_dir_;                      // made by the first LocalPath
  std::map<std::string, std::string> cached_;  // key -> ETag of its file
  std::unique_ptr<CopyHolds> holds_;  // the LocalPath holds on each file
};

// s3://bucket/prefix -> bucket and prefix (kInvalidArgument naming what is
// wrong: no bucket, a bucket name S3 refuses, a prefix that is not a key).
Status ParseS3Url(std::string_view url, std::string* bucket,
                  std::string* prefix);

}  // namespace cbpipe
