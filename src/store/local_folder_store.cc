#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string_view>
#include <vector>

#include "common/crash_point.h"
#include "common/file_mode.h"
#include "common/sha256.h"
#include "store/file_source.h"
#include "store/object_store.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

Status FsError(const std::string& what, const std::error_code& ec) {
  if (ec == std::errc::no_such_file_or_directory)
    return NotFoundError(what + ": " + ec.message());
  if (ec == std::errc::no_space_on_device || ec == std::errc::io_error)
    return UnavailableError(what + ": " + ec.message());
  return InternalError(what + ": " + ec.message());
}

// ".put-<pid>-<random>.tmp": the pid tells a later process whether the Put
// that wrote it can still be running. No key has a segment starting with
// ".put-" (ValidateObjectKey), so no object is mistaken for one.
constexpr std::string_view kTemporaryPrefix = ".put-";

std::string TemporaryName() {
  std::random_device rd;
  return std::string(kTemporaryPrefix) + std::to_string(::getpid()) + "-" + std::to_string(rd()) +
         ".tmp";
}

Status FsyncPath(const std::string& path, bool directory) {
  const int fd =
      ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) |
                               O_CLOEXEC);
  if (fd < 0) return InternalError("open " + path + " for fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return UnavailableError("fsync " + path);
  return OkStatus();
}

}  // namespace

namespace {

// One Put into the folder: a temporary file beside the target, renamed over
// it once complete and fsynced. PutContentAddressed names the target only
// at the end, so Finish takes it then.
class LocalObjectWriter : public ObjectWriter {
 public:
  // Creates `dir` and a temporary file in it.
  static StatusOr<std::unique_ptr<LocalObjectWriter>> Start(
      const fs::path& dir, fs::path target) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return FsError("create " + dir.string(), ec);
    std::unique_ptr<LocalObjectWriter> w(new LocalObjectWriter);
    w->dir_ = dir;
    w->target_ = std::move(target);
    w->temp_ = dir / TemporaryName();
    w->fd_ = ::open(w->temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                    kRecordFileMode);
    if (w->fd_ < 0) {
      return UnavailableError("create " + w->temp_.string() + ": " +
                              std::strerror(errno));
    }
    // An object is an input, card data and all, or a file made from one:
    // as private as the batches, whatever the umask.
    Status mode = RestrictRecordFile(w->fd_, w->temp_.string());
    if (!mode.ok()) {
      w->Abort();
      return mode;
    }
    return w;
  }

  ~LocalObjectWriter() override { Abort(); }

  Status Write(const char* data, size_t n) override {
    if (fd_ < 0) return FailedPreconditionError(Closed());
    for (size_t done = 0; done < n;) {
      const ssize_t w = ::write(fd_, data + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        Status st = UnavailableError("write " + temp_.string() + ": " +
                                     std::strerror(errno));
        Abort();
        return st;
      }
      done += static_cast<size_t>(w);
    }
    return OkStatus();
  }

  Status Commit() override { return Finish(target_, false); }

  void Abort() override {
    if (fd_ < 0) return;
    ::close(fd_);
    fd_ = -1;
    std::error_code ec;
    fs::remove(temp_, ec);
  }

  // Makes the object visible under `target` (in the folder given to
  // Start). With `keep_existing`, an object already under `target` stays
  // and the temporary is dropped.
  Status Finish(const fs::path& target, bool keep_existing) {
    if (fd_ < 0) return FailedPreconditionError(Closed());
    Status st = OkStatus();
    if (::fsync(fd_) != 0)
      st = UnavailableError("fsync " + temp_.string() + ": " +
                            std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && st.ok())
      st = UnavailableError("close " + temp_.string());
    std::error_code ec;
    if (!st.ok()) {
      fs::remove(temp_, ec);
      return st;
    }
    DurablePoint("store.fsync");
    if (keep_existing && fs::is_regular_file(target, ec)) {
      fs::remove(temp_, ec);  // the same bytes are stored already
      return OkStatus();
    }
    fs::rename(temp_, target, ec);
    if (ec) {
      fs::remove(temp_, ec);
      return FsError("rename into " + target.string(), ec);
    }
    DurablePoint("store.rename");
    CBPIPE_RETURN_IF_ERROR(FsyncPath(dir_.string(), true));
    DurablePoint("store.fsync_dir");
    return OkStatus();
  }

 private:
  LocalObjectWriter() = default;
  std::string Closed() const {
    return "put of " + target_.string() + " already committed or aborted";
  }

  fs::path dir_, target_, temp_;
  int fd_ = -1;
};

class LocalObjectReader : public ObjectReader {
 public:
  LocalObjectReader(int fd, std::string key) : fd_(fd), key_(std::move(key)) {}
  ~LocalObjectReader() override { ::close(fd_); }
  StatusOr<size_t> Read(char* buf, size_t n) override {
    for (;;) {
      const ssize_t got = ::read(fd_, buf, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno == EINTR) continue;
      return UnavailableError("read object " + key_ + ": " +
                              std::strerror(errno));
    }
  }

 private:
  int fd_;
  std::string key_;
};

bool IsMissing(int err) { return err == ENOENT || err == ENOTDIR; }

}  // namespace

StatusOr<std::unique_ptr<ObjectReader>> LocalFolderStore::Get(
    const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  const std::string path = (fs::path(root_) / key).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (IsMissing(errno)) return NotFoundError("no object " + key);
    return UnavailableError("open object " + key + ": " +
                            std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return NotFoundError("no object " + key);
  }
  return std::unique_ptr<ObjectReader>(new LocalObjectReader(fd, key));
}

StatusOr<std::unique_ptr<ObjectWriter>> LocalFolderStore::Put(
    const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  const fs::path target = fs::path(root_) / key;
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<LocalObjectWriter> w,
                          LocalObjectWriter::Start(target.parent_path(),
                                                   target));
  return std::unique_ptr<ObjectWriter>(std::move(w));
}

StatusOr<ObjectInfo> LocalFolderStore::Head(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  const std::string path = (fs::path(root_) / key).string();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (IsMissing(errno)) return NotFoundError("no object " + key);
    return UnavailableError("stat object " + key + ": " +
                            std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return NotFoundError("no object " + key);
  ObjectInfo info;
  info.size = static_cast<uint64_t>(st.st_size);
  info.mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 +
                  st.st_mtim.tv_nsec / 1'000'000;
  return info;
}

Status LocalFolderStore::Delete(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  const fs::path path = fs::path(root_) / key;
  if (::unlink(path.c_str()) != 0) {
    // A folder ("a" when "a/b" exists) is no object either.
    if (IsMissing(errno) || errno == EISDIR) return OkStatus();
    return UnavailableError("delete object " + key + ": " +
                            std::strerror(errno));
  }
  return FsyncPath(path.parent_path().string(), true);
}

StatusOr<StoredObject> LocalFolderStore::PutContentAddressed(
    const std::string& prefix, int fd) {
  // The key is known only at the end: copy to a temporary name first.
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(prefix + "x"));
  const fs::path dir = (fs::path(root_) / (prefix + "x")).parent_path();
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<LocalObjectWriter> out,
                          LocalObjectWriter::Start(dir, fs::path()));
  Sha256 sha;
  StoredObject stored;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n =
        ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(stored.size));
    if (n < 0) {
      if (errno == EINTR) continue;
      return UnavailableError(std::string("read input: ") +
                              std::strerror(errno));
    }
    if (n == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(n));
    CBPIPE_RETURN_IF_ERROR(out->Write(buf.data(), static_cast<size_t>(n)));
    stored.size += static_cast<uint64_t>(n);
  }
  CBPIPE_ASSIGN_OR_RETURN(stored.sha256, sha.FinishHex());
  stored.key = prefix + stored.sha256;
  CBPIPE_RETURN_IF_ERROR(
      out->Finish(fs::path(root_) / stored.key, /*keep_existing=*/true));
  return stored;
}

StatusOr<int> LocalFolderStore::RemoveStaleTemporaries() {
  int removed = 0;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return removed;
  std::vector<fs::path> stale;
  const auto day_ago =
      fs::file_time_type::clock::now() - std::chrono::hours(24);
  for (auto it = fs::recursive_directory_iterator(root_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kTemporaryPrefix, 0) != 0 || !it->is_regular_file()) continue;
    const long pid = std::atol(name.c_str() + kTemporaryPrefix.size());
    const bool dead =
        pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    std::error_code time_ec;
    const bool old = it->last_write_time(time_ec) < day_ago && !time_ec;
    if (dead || old) stale.push_back(it->path());
  }
  if (ec) return FsError("list " + root_, ec);
  for (const fs::path& p : stale) removed += fs::remove(p, ec) ? 1 : 0;
  return removed;
}

Status LocalFolderStore::PutFile(const std::string& key,
                                 const std::string& path,
                                 const std::string& sha256) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  if (!sha256.empty()) CBPIPE_RETURN_IF_ERROR(ValidateSha256Hex(sha256));
  const fs::path target = fs::path(root_) / key;
  struct stat object {};
  if (::stat(target.c_str(), &object) == 0) {
    CBPIPE_ASSIGN_OR_RETURN(OpenedFile file, OpenFileToStore(path));
    if (file.device == object.st_dev && file.inode == object.st_ino) {
      // The file is the object already: make it durable, copy nothing.
      if (::fsync(file.fd) != 0)
        return UnavailableError("fsync " + path + ": " + std::strerror(errno));
      return FsyncPath(target.parent_path().string(), /*directory=*/true);
    }
  }
  return ObjectStore::PutFile(key, path, sha256);
}

StatusOr<std::string> LocalFolderStore::LocalPath(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  const fs::path p = fs::path(root_) / key;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return NotFoundError("no object " + key);
  return p.string();
}

StatusOr<std::vector<std::string>> LocalFolderStore::List(
    const std::string& prefix) {
  std::vector<std::string> keys;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return keys;
  for (auto it = fs::recursive_directory_iterator(root_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    if (it->path().filename().string().rfind(kTemporaryPrefix, 0) == 0)
      continue;  // a Put not committed
    const std::string key = fs::relative(it->path(), root_).string();
    if (key.rfind(prefix, 0) == 0) keys.push_back(key);
  }
  if (ec) return FsError("list " + root_, ec);
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace cbpipe
