// What every ObjectStore adapter shares: the key rules and the calls made
// of the others.
#include "store/object_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

}  // namespace cbpipe
