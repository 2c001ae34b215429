// Hands a file's written data to the disk in steps while it is being
// written, so the fsync that seals it waits for the tail alone:
//
//   WritebackPacer pacer;
//   ... write(fd, data, n); pacer.Wrote(fd, n); ...
//   fsync(fd);
//
// A head start only: sync_file_range does not wait, and its failures are
// for the fsync to report.
#pragma once

#include <fcntl.h>

#include <cstdint>

namespace cbpipe {

class WritebackPacer {
 public:
  static constexpr uint64_t kStep = 8 << 20;

  // `bytes` more were written to `fd`, after the ones before.
  void Wrote(int fd, uint64_t bytes) {
    written_ += bytes;
    if (written_ - handed_ < kStep) return;
    ::sync_file_range(fd, static_cast<off_t>(handed_),
                      static_cast<off_t>(written_ - handed_),
                      SYNC_FILE_RANGE_WRITE);
    handed_ = written_;
  }

 private:
  uint64_t written_ = 0;  // bytes written so far
  uint64_t handed_ = 0;   // of which handed to the disk
};

}  // namespace cbpipe
