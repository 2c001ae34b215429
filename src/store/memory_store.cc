#include "store/memory_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "common/sha256.h"
#include "store/local_cache.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

class MemoryObjectReader : public ObjectReader {
 public:
  explicit MemoryObjectReader(
      std::shared_ptr<const InMemoryObjectStore::Object> object)
      : object_(std::move(object)) {}
  StatusOr<size_t> Read(char* buf, size_t n) override {
    const std::string& bytes = object_->bytes;
    const size_t take = std::min(n, bytes.size() - offset_);
    std::memcpy(buf, bytes.data() + offset_, take);
    offset_ += take;
    return take;
  }

 private:
  std::shared_ptr<const InMemoryObjectStore::Object> object_;
  size_t offset_ = 0;
};

class MemoryObjectWriter : public ObjectWriter {
 public:
  MemoryObjectWriter(InMemoryObjectStore* store, std::string key)
      : store_(store), key_(std::move(key)) {}
  Status Write(const char* data, size_t n) override {
    if (done_) return FailedPreconditionError(Closed());
    bytes_.append(data, n);
    return OkStatus();
  }
  Status Commit() override {
    if (done_) return FailedPreconditionError(Closed());
    done_ = true;
    store_->Store(key_, std::move(bytes_), /*keep_existing=*/false);
    return OkStatus();
  }
  void Abort() override {
    done_ = true;
    bytes_.clear();
  }

 private:
  std::string Closed() const {
    return "put of " + key_ + " already committed or aborted";
  }
  InMemoryObjectStore* store_;
  std::string key_;
  std::string bytes_;
  bool done_ = false;
};

}  // namespace

InMemoryObjectStore::InMemoryObjectStore(Env* env)
    : env_(env != nullptr ? env : Env::Default()),
      holds_(std::make_unique<CopyHolds>()) {}

InMemoryObjectStore::~InMemoryObjectStore() { RemoveProcessFolder(cache_dir_); }

void InMemoryObjectStore::Store(const std::string& key, std::string bytes,
                                bool keep_existing) {
  auto object = std::make_shared<Object>();
  object->bytes = std::move(bytes);
  object->mtime_ms = env_->NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (keep_existing && objects_.count(key) != 0) return;
  objects_[key] = std::move(object);
}

StatusOr<std::unique_ptr<ObjectReader>> InMemoryObjectStore::Get(
    const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFoundError("no object " + key);
  return std::unique_ptr<ObjectReader>(new MemoryObjectReader(it->second));
}

StatusOr<std::unique_ptr<ObjectWriter>> InMemoryObjectStore::Put(
    const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  return std::unique_ptr<ObjectWriter>(new MemoryObjectWriter(this, key));
}

StatusOr<ObjectInfo> InMemoryObjectStore::Head(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFoundError("no object " + key);
  ObjectInfo info;
  info.size = it->second->bytes.size();
  info.mtime_ms = it->second->mtime_ms;
  return info;
}

Status InMemoryObjectStore::Delete(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  std::lock_guard<std::mutex> lock(mu_);
  objects_.erase(key);
  return OkStatus();
}

StatusOr<std::vector<std::string>> InMemoryObjectStore::List(
    const std::string& prefix) {
  std::vector<std::string> keys;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = objects_.lower_bound(prefix);
       it != objects_.end() && it->first.starts_with(prefix); ++it)
    keys.push_back(it->first);
  return keys;
}

StatusOr<StoredObject> InMemoryObjectStore::PutContentAddressed(
    const std::string& prefix, int fd) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(prefix + "x"));
  std::string bytes;
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n =
        ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(bytes.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return UnavailableError(std::string("read input: ") +
                              std::strerror(errno));
    if (n == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(n));
    bytes.append(buf.data(), static_cast<size_t>(n));
  }
  StoredObject stored;
  stored.size = bytes.size();
  CBPIPE_ASSIGN_OR_RETURN(stored.sha256, sha.FinishHex());
  stored.key = prefix + stored.sha256;
  Store(stored.key, std::move(bytes), /*keep_existing=*/true);
  return stored;
}

StatusOr<std::string> InMemoryObjectStore::LocalPath(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFoundError("no object " + key);
  std::error_code ec;
  if (cache_dir_.empty()) {
    CBPIPE_ASSIGN_OR_RETURN(cache_dir_, MakeProcessFolder("cache", Describe()));
  }
  const fs::path path = fs::path(cache_dir_) / key;
  auto cached = cached_.find(key);
  if (cached != cached_.end() && cached->second == it->second) {
    holds_->Take(key);
    return path.string();  // this very object is there already
  }
  // The cached file of an older object may be open by a reader: write the
  // new one beside it and rename it over. No key has a ".put-" segment, so
  // the temporary name is no other key's.
  fs::create_directories(path.parent_path(), ec);
  const fs::path temp =
      path.parent_path() / (".put-" + path.filename().string());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(it->second->bytes.data(),
              static_cast<std::streamsize>(it->second->bytes.size()));
    if (!out) return UnavailableError("write the cache file of " + key);
  }
  fs::rename(temp, path, ec);
  if (ec) return UnavailableError("write the cache file of " + key);
  cached_[key] = it->second;
  holds_->Take(key);
  return path.string();
}

void InMemoryObjectStore::ReleaseLocalPath(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!holds_->Give(key)) return;
  cached_.erase(key);
  RemoveCachedCopy(cache_dir_, key);
}

}  // namespace cbpipe
