#include "store/given_paths_store.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace cbpipe {
namespace {

class FileReader : public ObjectReader {
 public:
  FileReader(std::FILE* file, bool owned, std::string key)
      : file_(file), owned_(owned), key_(std::move(key)) {}
  ~FileReader() override {
    if (owned_) std::fclose(file_);
  }
  StatusOr<size_t> Read(char* buf, size_t n) override {
    const size_t got = std::fread(buf, 1, n, file_);
    if (got == 0 && n > 0 && std::ferror(file_))
      return UnavailableError("cannot read " + key_ + ": " +
                              std::strerror(errno));
    return got;
  }

 private:
  std::FILE* file_;
  const bool owned_;
  const std::string key_;
};

Status ReadOnly(const std::string& what) {
  return PermissionDeniedError(what +
                               ": the given inputs are read-only (never "
                               "written or removed)");
}

}  // namespace

void GivenPathsStore::Add(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  paths_.insert(path);
}

Status GivenPathsStore::Given(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (paths_.count(key)) return OkStatus();
  return NotFoundError(key + " is not one of the given inputs");
}

StatusOr<std::unique_ptr<ObjectReader>> GivenPathsStore::Get(
    const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(Given(key));
  if (key == "-")
    return std::unique_ptr<ObjectReader>(
        std::make_unique<FileReader>(stdin, false, key));
  std::FILE* f = std::fopen(key.c_str(), "rb");
  if (!f) {
    const int err = errno;
    if (err == ENOENT) return NotFoundError("no file " + key);
    return UnavailableError("cannot open " + key + ": " + std::strerror(err));
  }
  return std::unique_ptr<ObjectReader>(
      std::make_unique<FileReader>(f, true, key));
}

StatusOr<std::unique_ptr<ObjectWriter>> GivenPathsStore::Put(
    const std::string& key) {
  return ReadOnly("put " + key);
}

StatusOr<ObjectInfo> GivenPathsStore::Head(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(Given(key));
  if (key == "-") return NotFoundError("standard input has no size");
  struct stat st;
  if (::stat(key.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return NotFoundError("no file " + key);
    return UnavailableError("cannot stat " + key + ": " + std::strerror(err));
  }
  ObjectInfo info;
  info.size = static_cast<uint64_t>(st.st_size);
  info.mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 +
                  st.st_mtim.tv_nsec / 1'000'000;
  return info;
}

Status GivenPathsStore::Delete(const std::string& key) {
  return ReadOnly("delete " + key);
}

StatusOr<std::vector<std::string>> GivenPathsStore::List(
    const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  for (const std::string& p : paths_) {
    if (p.compare(0, prefix.size(), prefix) == 0) keys.push_back(p);
  }
  return keys;
}

StatusOr<StoredObject> GivenPathsStore::PutContentAddressed(
    const std::string& prefix, int) {
  return ReadOnly("put " + prefix + "...");
}

StatusOr<std::string> GivenPathsStore::LocalPath(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(Given(key));
  return key;
}

}  // namespace cbpipe
