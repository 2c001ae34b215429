#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "common/file_mode.h"
#include "common/crash_point.h"
#include "common/sha256.h"
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
// that wrote it can still be running.
std::string TemporaryName() {
  std::random_device rd;
  return ".put-" + std::to_string(::getpid()) + "-" + std::to_string(rd()) +
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

Status ValidateObjectKey(const std::string& key) {
  if (key.empty() || key.size() > 1024 || key.front() == '/' ||
      key.back() == '/')
    return InvalidArgumentError("bad object key '" + key + "'");
  size_t segment_start = 0;
  for (size_t i = 0; i <= key.size(); ++i) {
    if (i == key.size() || key[i] == '/') {
      const std::string_view seg(key.data() + segment_start, i - segment_start);
      if (seg.empty() || seg == "." || seg == "..")
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

Status LocalFolderStore::PutFile(const std::string& key,
                                 const std::string& path) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  const fs::path target = fs::path(root_) / key;
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return FsError("create " + target.parent_path().string(), ec);
  // Copy under a unique temporary name, fsync, then rename: atomic.
  const fs::path temp = target.parent_path() / TemporaryName();
  fs::copy_file(path, temp, fs::copy_options::overwrite_existing, ec);
  if (ec) return FsError("copy " + path, ec);
  // An object is an input, card data and all: as private as the batches,
  // whatever mode the original had.
  fs::permissions(temp, static_cast<fs::perms>(kRecordFileMode), ec);
  if (ec) return FsError("restrict the mode of " + temp.string(), ec);
  CBPIPE_RETURN_IF_ERROR(FsyncPath(temp.string(), false));
  DurablePoint("store.fsync");
  fs::rename(temp, target, ec);
  if (ec) {
    fs::remove(temp, ec);
    return FsError("rename into " + target.string(), ec);
  }
  DurablePoint("store.rename");
  CBPIPE_RETURN_IF_ERROR(FsyncPath(target.parent_path().string(), true));
  DurablePoint("store.fsync_dir");
  return OkStatus();
}

StatusOr<StoredObject> LocalFolderStore::PutContentAddressed(
    const std::string& prefix, int fd) {
  // The key is known only at the end: copy to a temporary name first.
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(prefix + "x"));
  const fs::path dir = (fs::path(root_) / (prefix + "x")).parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return FsError("create " + dir.string(), ec);
  const fs::path temp = dir / TemporaryName();
  const int out =
      ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) return UnavailableError("create " + temp.string());
  Sha256 sha;
  StoredObject stored;
  Status st = OkStatus();
  std::vector<char> buf(1 << 20);
  while (st.ok()) {
    const ssize_t n =
        ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(stored.size));
    if (n < 0) {
      if (errno == EINTR) continue;
      st = UnavailableError(std::string("read input: ") + std::strerror(errno));
      break;
    }
    if (n == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(n));
    for (ssize_t done = 0; done < n;) {
      const ssize_t w =
          ::write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        st = UnavailableError("write " + temp.string() + ": " +
                              std::strerror(errno));
        break;
      }
      done += w;
    }
    stored.size += static_cast<uint64_t>(n);
  }
  if (st.ok() && ::fsync(out) != 0)
    st = UnavailableError("fsync " + temp.string());
  if (::close(out) != 0 && st.ok())
    st = UnavailableError("close " + temp.string());
  if (st.ok()) {
    DurablePoint("store.fsync");
    StatusOr<std::string> hex = sha.FinishHex();
    if (hex.ok()) {
      stored.sha256 = *hex;
      stored.key = prefix + stored.sha256;
    } else {
      st = hex.status();
    }
  }
  if (!st.ok()) {
    fs::remove(temp, ec);
    return st;
  }
  const fs::path target = fs::path(root_) / stored.key;
  if (fs::is_regular_file(target, ec)) {
    fs::remove(temp, ec);  // the same bytes are stored already
    return stored;
  }
  fs::rename(temp, target, ec);
  if (ec) {
    fs::remove(temp, ec);
    return FsError("rename into " + target.string(), ec);
  }
  DurablePoint("store.rename");
  CBPIPE_RETURN_IF_ERROR(FsyncPath(dir.string(), true));
  DurablePoint("store.fsync_dir");
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
    if (name.rfind(".put-", 0) != 0 || !it->is_regular_file()) continue;
    const long pid = std::atol(name.c_str() + 5);
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

StatusOr<std::string> LocalFolderStore::LocalPath(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  const fs::path p = fs::path(root_) / key;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return NotFoundError("no object " + key);
  return p.string();
}

StatusOr<bool> LocalFolderStore::Exists(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  std::error_code ec;
  return fs::is_regular_file(fs::path(root_) / key, ec);
}

StatusOr<std::vector<std::string>> LocalFolderStore::List(
    const std::string& prefix) {
  std::vector<std::string> keys;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return keys;
  for (auto it = fs::recursive_directory_iterator(root_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string key = fs::relative(it->path(), root_).string();
    if (key.rfind(prefix, 0) == 0 && key.find("/.put-") == std::string::npos)
      keys.push_back(key);
  }
  if (ec) return FsError("list " + root_, ec);
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace cbpipe
