#include "deliver/local_transport.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "common/sha256.h"
#include "common/writeback.h"

namespace cbpipe {
namespace {

constexpr size_t kCopyBuffer = 1 << 20;

Status ErrnoStatus(const std::string& what, int err) {
  const std::string msg = what + ": " + std::strerror(err);
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS: return PermissionDeniedError(msg);
    case ENOENT:
    case ENOTDIR: return NotFoundError(msg);
    case EEXIST: return AlreadyExistsError(msg);
    case ENOSPC:
    case EDQUOT: return ResourceExhaustedError(msg);
    case EINTR:
    case EAGAIN:
    case EIO: return UnavailableError(msg);
    default: return InternalError(msg);
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

Status WriteAll(int fd, const char* data, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write " + path, errno);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return OkStatus();
}

Status FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus("open folder " + dir, errno);
  if (::fsync(fd.get()) != 0) return ErrnoStatus("fsync " + dir, errno);
  return OkStatus();
}

// Copies all of `in` to `out`: in the kernel with copy_file_range where the
// file system allows it (no pass through user space), else read/write.
Status CopyContents(int in, const std::string& in_path, int out,
                    const std::string& out_path) {
  bool copied_any = false;
  WritebackPacer writeback;  // the fsync after the copy waits for the tail
  bool in_kernel = true;
  std::vector<char> buf;
  while (true) {
    ssize_t n;
    if (in_kernel) {
      n = ::copy_file_range(in, nullptr, out, nullptr, kCopyBuffer * 8, 0);
      if (n < 0 && !copied_any &&
          (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
           errno == EOPNOTSUPP)) {
        in_kernel = false;  // e.g. across file systems on older kernels
        continue;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("copy " + in_path + " to " + out_path, errno);
      }
    } else {
      if (buf.empty()) buf.resize(kCopyBuffer);
      n = ::read(in, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("read " + in_path, errno);
      }
      if (n > 0) {
        CBPIPE_RETURN_IF_ERROR(
            WriteAll(out, buf.data(), static_cast<size_t>(n), out_path));
      }
    }
    if (n == 0) break;
    copied_any = true;
    writeback.Wrote(out, static_cast<uint64_t>(n));
  }
  return OkStatus();
}

}  // namespace

std::string FolderFromFileUrl(const std::string& url) {
  constexpr std::string_view kScheme = "file://";
  if (url.rfind(kScheme, 0) == 0) return url.substr(kScheme.size());
  return url;
}

StatusOr<std::string> Sha256File(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus("open " + path, errno);
  Sha256 sha;
  std::vector<char> buf(kCopyBuffer);
  while (true) {
    ssize_t r = ::read(fd.get(), buf.data(), buf.size());
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read " + path, errno);
    }
    if (r == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(r));
  }
  return sha.FinishHex();
}

LocalFolderTransport::LocalFolderTransport(std::string folder)
    : folder_(std::move(folder)) {}

std::string LocalFolderTransport::PathOf(const std::string& name) const {
  return folder_ + "/" + name;
}

Status LocalFolderTransport::EnsureFolder() {
  std::error_code ec;
  std::filesystem::create_directories(folder_, ec);
  if (ec) {
    return ErrnoStatus("create folder " + folder_, ec.value());
  }
  return OkStatus();
}

Status LocalFolderTransport::Upload(const std::string& local_path,
                                    const std::string& remote_name) {
  if (remote_name.empty() || remote_name.find('/') != std::string::npos)
    return InvalidArgumentError("bad remote name '" + remote_name + "'");
  CBPIPE_RETURN_IF_ERROR(EnsureFolder());
  Fd in(::open(local_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return ErrnoStatus("open " + local_path, errno);
  const std::string target = PathOf(remote_name);
  Fd out(
      ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
  if (out.get() < 0) return ErrnoStatus("create " + target, errno);
  CBPIPE_RETURN_IF_ERROR(CopyContents(in.get(), local_path, out.get(), target));
  if (::fsync(out.get()) != 0) return ErrnoStatus("fsync " + target, errno);
  if (::close(out.release()) != 0) return ErrnoStatus("close " + target, errno);
  return OkStatus();
}

Status LocalFolderTransport::Rename(const std::string& from,
                                    const std::string& to, bool replace) {
  const std::string a = PathOf(from), b = PathOf(to);
  if (replace) {
    if (::rename(a.c_str(), b.c_str()) != 0)
      return ErrnoStatus("rename " + a + " to " + b, errno);
  } else if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(),
                         RENAME_NOREPLACE) != 0) {
    const int err = errno;
    if (err == EEXIST)
      return AlreadyExistsError(b + " already exists; not overwritten");
    return ErrnoStatus("rename " + a + " to " + b, err);
  }
  return FsyncDir(folder_);
}

StatusOr<std::optional<uint64_t>> LocalFolderTransport::RemoteSize(
    const std::string& remote_name) {
  struct stat st;
  const std::string path = PathOf(remote_name);
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<uint64_t>();
    return ErrnoStatus("stat " + path, errno);
  }
  return std::optional<uint64_t>(static_cast<uint64_t>(st.st_size));
}

Status LocalFolderTransport::Remove(const std::string& remote_name) {
  const std::string path = PathOf(remote_name);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return ErrnoStatus("remove " + path, errno);
  return OkStatus();
}

StatusOr<std::optional<std::string>> LocalFolderTransport::RemoteSha256(
    const std::string& remote_name) {
  CBPIPE_ASSIGN_OR_RETURN(std::string sha, Sha256File(PathOf(remote_name)));
  return std::optional<std::string>(std::move(sha));
}

}  // namespace cbpipe
