#include "common/file_mode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cbpipe {
namespace {

Status ErrnoError(const char* what, const std::string& path) {
  return InternalError(std::string(what) + " " + path + ": " +
                       std::strerror(errno));
}

}  // namespace

Status RestrictRecordFile(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("cannot stat", path);
  if ((st.st_mode & 07777) == kRecordFileMode) return OkStatus();
  if (::fchmod(fd, kRecordFileMode) != 0)
    return ErrnoError("cannot restrict the mode of", path);
  return OkStatus();
}

Status RestrictDatabaseFiles(const std::string& path) {
  if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0)
    return OkStatus();
  // By path, never through a descriptor: closing any descriptor of a file
  // drops every POSIX lock this process holds on it, and SQLite's locks on
  // the database and its -shm file are such locks.
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    const std::string file = path + suffix;
    struct stat st;
    if (::stat(file.c_str(), &st) != 0) {
      if (errno != ENOENT) continue;  // SQLite's open reports it
      if (*suffix != '\0') continue;  // SQLite makes these, mode of the db
      // Not there yet, so nobody has it open: create it with the mode.
      const int fd =
          ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                 kRecordFileMode);
      if (fd >= 0) {
        ::close(fd);
      } else if (errno != EEXIST && errno != EACCES && errno != ENOENT) {
        return ErrnoError("cannot create", file);
      }
      continue;
    }
    if ((st.st_mode & 07777 & ~kRecordFileMode) == 0) continue;
    // Not ours to change (another user reading with group rights): fine.
    if (::chmod(file.c_str(), st.st_mode & kRecordFileMode) != 0 &&
        errno != EPERM && errno != EACCES && errno != EROFS) {
      return ErrnoError("cannot restrict the mode of", file);
    }
  }
  return OkStatus();
}

}  // namespace cbpipe
