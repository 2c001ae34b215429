#include "output/file_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "common/file_mode.h"
#include "common/crash_point.h"

namespace cbpipe {
namespace {

// Large enough that write(2) calls are rare against ~150-byte rows, small
// enough to keep memory flat per open file (one file per destination).
constexpr size_t kBufferSize = 256 * 1024;

Status ErrnoStatus(const std::string& what, const std::string& path) {
  const int err = errno;
  std::string message = what + " " + path + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return ResourceExhaustedError(message);
  if (err == EACCES || err == EPERM || err == EROFS) {
    return PermissionDeniedError(message);
  }
  return UnavailableError(message);
}

// How much one record can lengthen the trailer: a digit of the count (and
// quotes, should the delimiter be a digit), and in the totals cell a new
// "CUR=amount;" or a longer total (at most 21 characters: sign, 19 digits,
// point), plus quotes and the formula guard's apostrophe should the cell
// newly need them.
uint64_t TrailerGrowthBound(const Record& record) {
  return 34 + record.currency.size();
}

}  // namespace

StatusOr<std::unique_ptr<FileWriter>> FileWriter::Create(std::string path,
                                                         const Layout& layout) {
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
             kRecordFileMode);
  if (fd < 0) return ErrnoStatus("cannot create", path);
  std::unique_ptr<FileWriter> writer(
      new FileWriter(std::move(path), fd, layout));
  if (!writer->sha_.ok()) {
    return InternalError("SHA-256 context could not be created");
  }
  writer->formatter_.AppendHeader(&writer->buffer_);
  writer->bytes_ = writer->buffer_.size();
  if (layout.trailer == TrailerKind::kCountAndTotal) {
    writer->formatter_.AppendTrailer(0, writer->totals_, nullptr,
                                     &writer->trailer_);
    writer->trailer_bound_ = writer->trailer_.size();
  }
  return writer;
}

FileWriter::FileWriter(std::string path, int fd, const Layout& layout)
    : path_(std::move(path)), fd_(fd), formatter_(layout) {
  buffer_.reserve(kBufferSize);
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileWriter::Flush() {
  if (buffer_.empty()) return OkStatus();
  sha_.Update(buffer_.data(), buffer_.size());
  const char* data = buffer_.data();
  size_t left = buffer_.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot write", path_);
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  writeback_.Wrote(fd_, buffer_.size());
  buffer_.clear();
  return OkStatus();
}

Status FileWriter::Write(std::string_view bytes) {
  if (buffer_.size() + bytes.size() > kBufferSize) {
    CBPIPE_RETURN_IF_ERROR(Flush());
  }
  // A row larger than the whole buffer still goes through it: it grows once
  // and the hash sees every byte in order either way.
  buffer_.append(bytes);
  bytes_ += bytes.size();
  return OkStatus();
}

std::optional<uint64_t> FileWriter::SizeWith(size_t row_bytes,
                                             const Record& record) {
  if (!totals_.CanAdd(record.currency, record.amount_minor)) {
    return std::nullopt;
  }
  uint64_t size = bytes_ + row_bytes;
  if (formatter_.layout().trailer == TrailerKind::kCountAndTotal) {
    trailer_.clear();
    formatter_.AppendTrailer(records_, totals_, &record, &trailer_);
    size += trailer_.size();
    measured_trailer_ = trailer_.size();
    measured_record_ = &record;
  }
  return size;
}

bool FileWriter::Fits(size_t row_bytes, const Record& record,
                      uint64_t max_bytes) {
  if (formatter_.layout().trailer != TrailerKind::kCountAndTotal) {
    return totals_.CanAdd(record.currency, record.amount_minor) &&
           bytes_ + row_bytes <= max_bytes;
  }
  if (totals_.CanAdd(record.currency, record.amount_minor) &&
      bytes_ + row_bytes + trailer_bound_ + TrailerGrowthBound(record) <=
          max_bytes) {
    return true;
  }
  std::optional<uint64_t> size = SizeWith(row_bytes, record);
  return size.has_value() && *size <= max_bytes;
}

Status FileWriter::AppendRow(std::string_view row, const Record& record) {
  if (closed_) return FailedPreconditionError(path_ + " is closed");
  if (!totals_.CanAdd(record.currency, record.amount_minor)) {
    return ResourceExhaustedError(
        path_ + ": the " + record.currency +
        " total would overflow a 64-bit integer of minor units; " +
        "the record belongs in another file");
  }
  CBPIPE_RETURN_IF_ERROR(Write(row));
  totals_.Add(record.currency, record.currency_exponent, record.amount_minor);
  ++records_;
  // Exact when this record was just measured (the caller asked whether it
  // fits), an upper bound otherwise.
  trailer_bound_ = measured_record_ == &record
                       ? measured_trailer_
                       : trailer_bound_ + TrailerGrowthBound(record);
  measured_record_ = nullptr;
  return OkStatus();
}

Status FileWriter::Append(const Record& record) {
  return AppendRow(formatter_.FormatRecord(record, &row_), record);
}

StatusOr<FileStats> FileWriter::Close() {
  if (closed_) return FailedPreconditionError(path_ + " is already closed");
  closed_ = true;
  if (formatter_.layout().trailer == TrailerKind::kCountAndTotal) {
    trailer_.clear();
    formatter_.AppendTrailer(records_, totals_, nullptr, &trailer_);
    CBPIPE_RETURN_IF_ERROR(Write(trailer_));
  }
  CBPIPE_RETURN_IF_ERROR(Flush());
  // The planner renames this file into a batch next: fsync first so that a
  // crash never leaves a renamed but empty or partial file.
  if (::fsync(fd_) != 0) return ErrnoStatus("cannot fsync", path_);
  DurablePoint("file_writer.fsync");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return ErrnoStatus("cannot close", path_);

  FileStats stats;
  CBPIPE_ASSIGN_OR_RETURN(stats.sha256, sha_.FinishHex());
  stats.records = records_;
  stats.bytes = bytes_;
  stats.totals = totals_.MinorByCurrency();
  return stats;
}

}  // namespace cbpipe
