// What the adapters' PutFile share (object_store.h): opening the local file
// to store and checking the SHA-256 a caller gave for it.
//
//   CBPIPE_RETURN_IF_ERROR(ValidateSha256Hex(sha256));
//   CBPIPE_ASSIGN_OR_RETURN(OpenedFile file, OpenFileToStore(path));
//   ... pread(file.fd, ...) up to file.size; the fd closes with `file`.
//
// Errors as PutFile states them: kNotFound for no file, kInvalidArgument
// for a path that is no regular file or a malformed hash, kUnavailable for
// other I/O errors.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/status.h"

namespace cbpipe {

// OK for 64 lower-case hex digits.
Status ValidateSha256Hex(const std::string& sha256);

// A regular file opened read-only, with what fstat said when it was opened.
struct OpenedFile {
  OpenedFile() = default;
  OpenedFile(OpenedFile&& other) noexcept;
  OpenedFile& operator=(OpenedFile&&) = delete;
  ~OpenedFile();

  int fd = -1;
  uint64_t size = 0;
  dev_t device = 0;
  ino_t inode = 0;
  int64_t mtime_ns = 0;
};

StatusOr<OpenedFile> OpenFileToStore(const std::string& path);
// OK while the file's size and mtime are still what OpenFileToStore saw;
// kDataLoss ("changed while it was stored") otherwise.
Status CheckFileUnchanged(const OpenedFile& file, const std::string& path);

// Lower-case hex SHA-256 of `length` bytes of `fd` from `offset` (pread),
// read through a 1 MiB buffer. kDataLoss when the file ends before.
StatusOr<std::string> HashFileRange(int fd, uint64_t offset, uint64_t length,
                                    const std::string& path);

}  // namespace cbpipe
