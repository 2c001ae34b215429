// What every ObjectStore adapter shares: the key rules and the calls made
// of the others.
#include "store/object_store.h"

#include "store/local_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <vector>

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

Status ObjectStore::PutFile(const std::string& key, const std::string& path) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const std::string what = "open " + path + ": " + std::strerror(errno);
    return errno == ENOENT ? NotFoundError(what) : UnavailableError(what);
  }
  StatusOr<std::unique_ptr<ObjectWriter>> out = Put(key);
  Status st = out.status();
  std::vector<char> buf(1 << 20);
  while (st.ok()) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = UnavailableError("read " + path + ": " + std::strerror(errno));
    } else if (n == 0) {
      st = (*out)->Commit();
      break;
    } else {
      st = (*out)->Write(buf.data(), static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return st;  // an uncommitted writer aborts when destroyed
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
