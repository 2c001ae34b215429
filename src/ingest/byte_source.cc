#include "ingest/byte_source.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

namespace cbpipe::ingest_internal {
namespace {

// Compressed bytes handed to zlib per read; decompressed bytes go straight
// into the reader's buffer.
constexpr size_t kGzipInputChunk = 256 << 10;

class FdSource final : public ByteSource {
 public:
  FdSource(int fd, bool owned, std::string name)
      : fd_(fd), owned_(owned), name_(std::move(name)) {}
  ~FdSource() override {
    if (owned_) ::close(fd_);
  }
  FdSource(const FdSource&) = delete;
  FdSource& operator=(const FdSource&) = delete;

  StatusOr<size_t> Read(char* dst, size_t n) override {
    while (true) {
      ssize_t got = ::read(fd_, dst, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno == EINTR) continue;
      return UnavailableError(name_ + ": read failed: " + std::strerror(errno));
    }
  }

 private:
  int fd_;
  bool owned_;
  std::string name_;
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string data) : data_(std::move(data)) {}
  StatusOr<size_t> Read(char* dst, size_t n) override {
    size_t take = std::min(n, data_.size() - pos_);
    std::memcpy(dst, data_.data() + pos_, take);
    pos_ += take;
    return take;
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

// Replays the bytes read to sniff the gzip magic, then the rest.
class PrefixedSource final : public ByteSource {
 public:
  PrefixedSource(std::string prefix, std::unique_ptr<ByteSource> rest)
      : prefix_(std::move(prefix)), rest_(std::move(rest)) {}
  StatusOr<size_t> Read(char* dst, size_t n) override {
    if (pos_ < prefix_.size()) {
      size_t take = std::min(n, prefix_.size() - pos_);
      std::memcpy(dst, prefix_.data() + pos_, take);
      pos_ += take;
      return take;
    }
    return rest_->Read(dst, n);
  }

 private:
  std::string prefix_;
  size_t pos_ = 0;
  std::unique_ptr<ByteSource> rest_;
};

class GzipSource final : public ByteSource {
 public:
  GzipSource(std::unique_ptr<ByteSource> inner, std::string name,
             uint64_t max_ratio, uint64_t ratio_check_after)
      : inner_(std::move(inner)),
        name_(std::move(name)),
        max_ratio_(max_ratio),
        ratio_check_after_(ratio_check_after),
        in_(new unsigned char[kGzipInputChunk]) {}
  ~GzipSource() override {
    if (initialised_) inflateEnd(&zs_);
  }
  GzipSource(const GzipSource&) = delete;
  GzipSource& operator=(const GzipSource&) = delete;

  Status Init() {
    // 16 + MAX_WBITS: gzip wrapper only, so zlib checks the CRC and length.
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) {
      return InternalError(name_ + ": cannot initialise zlib");
    }
    initialised_ = true;
    return OkStatus();
  }

  StatusOr<size_t> Read(char* dst, size_t n) override {
    const uInt want = static_cast<uInt>(std::min<size_t>(n, UINT_MAX));
    zs_.next_out = reinterpret_cast<Bytef*>(dst);
    zs_.avail_out = want;
    while (zs_.avail_out == want) {
      if (zs_.avail_in == 0 && !inner_eof_) {
        CBPIPE_ASSIGN_OR_RETURN(
            size_t got,
            inner_->Read(reinterpret_cast<char*>(in_.get()), kGzipInputChunk));
        if (got == 0) {
          inner_eof_ = true;
        } else {
          compressed_read_ += got;
          zs_.next_in = in_.get();
          zs_.avail_in = static_cast<uInt>(got);
        }
      }
      if (member_done_) {
        // Another member may follow (multi-member gzip, as `cat a.gz b.gz`).
        if (zs_.avail_in == 0) {
          if (inner_eof_) return size_t{0};
          continue;
        }
        if (inflateReset(&zs_) != Z_OK) {
          return InternalError(name_ + ": zlib reset failed");
        }
        member_done_ = false;
      }
      if (zs_.avail_in == 0 && inner_eof_) return Truncated();
      int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc == Z_BUF_ERROR) {
        if (inner_eof_ && zs_.avail_in == 0) return Truncated();
      } else if (rc != Z_OK) {
        return DataLossError(name_ +
                             ": corrupt gzip data near compressed byte " +
                             std::to_string(compressed_offset()) + ": " +
                             (zs_.msg != nullptr ? zs_.msg : "inflate failed"));
      }
    }
    const size_t produced = want - zs_.avail_out;
    inflated_ += produced;
    CBPIPE_RETURN_IF_ERROR(CheckRatio());
    return produced;
  }

 private:
  // A gzip bomb is caught by its ratio within its first megabytes: the
  // ratio of the bytes inflated so far to the compressed bytes they came
  // from.
  Status CheckRatio() const {
    if (inflated_ <= ratio_check_after_) return OkStatus();
    const uint64_t compressed = std::max<uint64_t>(1, compressed_offset());
    uint64_t allowed;
    if (__builtin_mul_overflow(max_ratio_, compressed, &allowed) ||
        inflated_ <= allowed) {
      return OkStatus();
    }
    return ResourceExhaustedError(
        name_ + ": gzip data expands more than " + std::to_string(max_ratio_) +
        " times (" + std::to_string(inflated_) + " bytes from the first " +
        std::to_string(compressed) +
        " compressed bytes), over input.max_compression_ratio (" +
        std::to_string(max_ratio_) +
        "); the input is refused as a likely gzip bomb");
  }

  uint64_t compressed_offset() const { return compressed_read_ - zs_.avail_in; }
  Status Truncated() const {
    return DataLossError(
        name_ + ": truncated gzip: compressed data ends at byte " +
        std::to_string(compressed_offset()) + " inside a member");
  }

  std::unique_ptr<ByteSource> inner_;
  std::string name_;
  uint64_t max_ratio_;
  uint64_t ratio_check_after_;
  uint64_t inflated_ = 0;  // over all members
  std::unique_ptr<unsigned char[]> in_;
  z_stream zs_{};
  bool initialised_ = false;
  bool inner_eof_ = false;
  bool member_done_ = false;
  uint64_t compressed_read_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<ByteSource>> OpenFileSource(const std::string& path) {
  if (path == "-") {
    return std::unique_ptr<ByteSource>(
        std::make_unique<FdSource>(STDIN_FILENO, false, "<stdin>"));
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string message = path + ": cannot open: " + std::strerror(err);
    if (err == ENOENT) return NotFoundError(std::move(message));
    if (err == EACCES || err == EPERM) {
      return PermissionDeniedError(std::move(message));
    }
    return InvalidArgumentError(std::move(message));
  }
  return std::unique_ptr<ByteSource>(
      std::make_unique<FdSource>(fd, true, path));
}

std::unique_ptr<ByteSource> MakeMemorySource(std::string data) {
  return std::make_unique<MemorySource>(std::move(data));
}

StatusOr<std::unique_ptr<ByteSource>> MaybeGunzip(
    std::unique_ptr<ByteSource> raw, const std::string& name,
    uint64_t max_ratio, uint64_t ratio_check_after, bool* empty) {
  // A pipe may deliver one byte at a time, so read until two or the end.
  char head[2];
  size_t have = 0;
  while (have < sizeof(head)) {
    CBPIPE_ASSIGN_OR_RETURN(size_t got,
                            raw->Read(head + have, sizeof(head) - have));
    if (got == 0) break;
    have += got;
  }
  *empty = have == 0;
  auto replay =
      std::make_unique<PrefixedSource>(std::string(head, have), std::move(raw));
  if (have == 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    auto gz = std::make_unique<GzipSource>(std::move(replay), name, max_ratio,
                                           ratio_check_after);
    CBPIPE_RETURN_IF_ERROR(gz->Init());
    return std::unique_ptr<ByteSource>(std::move(gz));
  }
  return std::unique_ptr<ByteSource>(std::move(replay));
}

}  // namespace cbpipe::ingest_internal
