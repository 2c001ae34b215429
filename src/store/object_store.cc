// What every ObjectStore adapter shares: the key rules and the calls made
// of the others.
#include "store/object_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/sha256.h"
#include "store/file_source.h"
#include "store/local_cache.h"

namespace cbpipe {

Status ValidateObjectKey(const std::string& key) {
  if (key.empty() || key.size() > 1024 || key.front() == '/' ||
      key.back() == '/')
    return InvalidArgumentError("bad object key '" + key + "'");
  size_t segment_start = 0;
  for (size_t i = 0; i <= key.size(); ++i) {
    if (i == key.size() || key[i] == '/') {
      const std::string_view seg(key.data() + segment_start, i - segment_start);
      // ".put-..." names a local folder's unfinished Put.
      if (seg.empty() || seg == "." || seg == ".." || seg.starts_with(".put-"))
        return InvalidArgumentError("bad object key '" + key + "'");
      segment_start = i + 1;
      continue;
    }
    const char c = key[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return InvalidArgumentError("bad object key '" + key + "'");
  }
  return OkStatus();
}

StatusOr<bool> ObjectStore::Exists(const std::string& key) {
  StatusOr<ObjectInfo> info = Head(key);
  if (info.ok()) return true;
  if (info.status().code() == StatusCode::kNotFound) return false;
  return info.status();
}

Status ValidateSha256Hex(const std::string& sha256) {
  if (sha256.size() != 64 ||
      sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
    return InvalidArgumentError("not a lower-case hex SHA-256: '" + sha256 +
                                "'");
  return OkStatus();
}

namespace {

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
         st.st_mtim.tv_nsec;
}

}  // namespace

StatusOr<OpenedFile> OpenFileToStore(const std::string& path) {
  OpenedFile file;
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) {
    const std::string what = "open " + path + ": " + std::strerror(errno);
    return errno == ENOENT ? NotFoundError(what) : UnavailableError(what);
  }
  struct stat st {};
  if (::fstat(file.fd, &st) != 0)
    return UnavailableError("stat " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return InvalidArgumentError(path + " is not a regular file");
  file.size = static_cast<uint64_t>(st.st_size);
  file.device = st.st_dev;
  file.inode = st.st_ino;
  file.mtime_ns = MtimeNs(st);
  return file;
}

Status CheckFileUnchanged(const OpenedFile& file, const std::string& path) {
  struct stat st {};
  if (::fstat(file.fd, &st) != 0)
    return UnavailableError("stat " + path + ": " + std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) != file.size ||
      MtimeNs(st) != file.mtime_ns)
    return DataLossError(path + " changed while it was stored");
  return OkStatus();
}

StatusOr<std::string> HashFileRange(int fd, uint64_t offset, uint64_t length,
                                    const std::string& path) {
  Sha256 sha;
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(length, 1 << 20)));
  for (uint64_t done = 0; done < length;) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    const ssize_t n = ::pread(fd, buf.data(), want,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return UnavailableError("read " + path + ": " + std::strerror(errno));
    if (n == 0) return DataLossError(path + " changed while it was stored");
    sha.Update(buf.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  return sha.FinishHex();
}

OpenedFile::~OpenedFile() {
  if (fd >= 0) ::close(fd);
}

OpenedFile::OpenedFile(OpenedFile&& other) noexcept
    : fd(std::exchange(other.fd, -1)),
      size(other.size),
      device(other.device),
      inode(other.inode),
      mtime_ns(other.mtime_ns) {}

Status ObjectStore::PutFile(const std::string& key, const std::string& path,
                            const std::string& sha256) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  if (!sha256.empty()) CBPIPE_RETURN_IF_ERROR(ValidateSha256Hex(sha256));
  CBPIPE_ASSIGN_OR_RETURN(OpenedFile file, OpenFileToStore(path));
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> out, Put(key));
  std::optional<Sha256> hash;
  if (!sha256.empty()) hash.emplace();
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(file.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return UnavailableError("read " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    if (hash) hash->Update(buf.data(), static_cast<size_t>(n));
    CBPIPE_RETURN_IF_ERROR(out->Write(buf.data(), static_cast<size_t>(n)));
  }
  if (hash) {
    CBPIPE_ASSIGN_OR_RETURN(std::string got, hash->FinishHex());
    if (got != sha256)
      return DataLossError(path + " does not have the SHA-256 given for " +
                           key);  // `out` aborts when destroyed
  }
  return out->Commit();  // an uncommitted writer aborts when destroyed
}

bool IsLocalFolder(const ObjectStore& store, const std::string& folder) {
  const std::optional<std::string> root = store.LocalRoot();
  if (!root) return false;
  namespace fs = std::filesystem;
  std::error_code ec1, ec2;
  const fs::path a = fs::weakly_canonical(fs::absolute(*root, ec1), ec1);
  const fs::path b = fs::weakly_canonical(fs::absolute(folder, ec2), ec2);
  if (ec1 || ec2) return false;
  // weakly_canonical keeps a trailing separator: compare without it.
  return (a / "").lexically_normal() == (b / "").lexically_normal();
}

StatusOr<std::string> GetObjectBytes(ObjectStore& store,
                                     const std::string& key,
                                     size_t max_bytes) {
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> in, store.Get(key));
  std::string bytes;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    CBPIPE_ASSIGN_OR_RETURN(size_t n, in->Read(buf.data(), buf.size()));
    if (n == 0) return bytes;
    if (n > max_bytes - bytes.size()) {
      return ResourceExhaustedError(key + " is larger than " +
                                    std::to_string(max_bytes) + " bytes");
    }
    bytes.append(buf.data(), n);
  }
}

Status PutObjectBytes(ObjectStore& store, const std::string& key,
                      std::string_view bytes) {
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> out, store.Put(key));
  CBPIPE_RETURN_IF_ERROR(out->Write(bytes.data(), bytes.size()));
  return out->Commit();
}

void RemoveCachedCopy(const std::string& cache_dir, const std::string& key) {
  namespace fs = std::filesystem;
  if (cache_dir.empty()) return;
  std::error_code ec;
  fs::path path = fs::path(cache_dir) / key;
  fs::remove(path, ec);
  // fs::remove of a folder fails (and stops here) while it holds anything.
  for (path = path.parent_path();
       path.native().size() > cache_dir.size() && fs::remove(path, ec);
       path = path.parent_path()) {
  }
}

LocalCopies::~LocalCopies() {
  for (const std::string& key : held_) store_.ReleaseLocalPath(key);
}

StatusOr<std::string> LocalCopies::Path(const std::string& key) {
  CBPIPE_ASSIGN_OR_RETURN(std::string path, store_.LocalPath(key));
  held_.push_back(key);
  return path;
}

}  // namespace cbpipe
