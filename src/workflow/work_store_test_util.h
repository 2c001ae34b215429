// For tests of the workflow over a work store: snapshots of a store and of
// a folder as {key: bytes}, and a store wrapper that counts LocalPath holds
// and can fail a Put once (a crash mid-way, as the caller sees it).
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/object_store.h"

namespace cbpipe::testing {

// An input of two valid records (a visa, an amex) and one reject (X1: a
// bad ARN), as of 2025-06-01.
inline constexpr char kTwoNetworksAndAReject[] =
    "case_id,network,arn,merchant_id,transaction_date,"
    "chargeback_date,amount,currency,reason_code\n"
    "V1,visa,74567890123456789012341,M1,2025-03-01,2025-04-01,"
    "10.00,USD,10.4\n"
    "A1,amex,,M2,2025-03-01,2025-04-01,5.00,EUR,C08\n"
    "X1,visa,123,M3,2025-03-01,2025-04-01,1.00,USD,10.4\n";

inline std::string FileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Every file under `root` by its relative path, but those starting with
// `skip` (when not empty).
inline std::map<std::string, std::string> FolderBytes(
    const std::filesystem::path& root, const std::string& skip = "") {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string key =
        it->path().lexically_relative(root).generic_string();
    if (!skip.empty() && key.starts_with(skip)) continue;
    out[key] = FileBytes(it->path());
  }
  return out;
}

// Every object of `store` (its keys starting with `prefix`).
inline std::map<std::string, std::string> StoreBytes(
    ObjectStore& store, const std::string& prefix = "") {
  std::map<std::string, std::string> out;
  StatusOr<std::vector<std::string>> keys = store.List(prefix);
  if (!keys.ok()) return out;
  for (const std::string& key : *keys) {
    StatusOr<std::string> bytes = GetObjectBytes(store, key);
    out[key] = bytes.ok() ? *bytes : "<" + bytes.status().ToString() + ">";
  }
  return out;
}

// Another store, seen through: counts the LocalPath holds not yet released
// and keeps every path LocalPath gave; FailPutOnce(key) makes the next Put
// of `key` fail with kUnavailable.
class HoldCountingStore : public ObjectStore {
 public:
  explicit HoldCountingStore(ObjectStore* inner) : inner_(inner) {}

  StatusOr<std::unique_ptr<ObjectReader>> Get(const std::string& key) override {
    return inner_->Get(key);
  }
  StatusOr<std::unique_ptr<ObjectWriter>> Put(const std::string& key) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (fail_put_ == key) {
        fail_put_.reset();
        return UnavailableError("put of " + key + " failed (test)");
      }
    }
    return inner_->Put(key);
  }
  StatusOr<ObjectInfo> Head(const std::string& key) override {
    return inner_->Head(key);
  }
  Status Delete(const std::string& key) override { return inner_->Delete(key); }
  StatusOr<std::vector<std::string>> List(const std::string& prefix) override {
    return inner_->List(prefix);
  }
  StatusOr<StoredObject> PutContentAddressed(const std::string& prefix,
                                             int fd) override {
    return inner_->PutContentAddressed(prefix, fd);
  }
  StatusOr<std::string> LocalPath(const std::string& key) override {
    StatusOr<std::string> path = inner_->LocalPath(key);
    if (path.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      ++held_[key];
      ++taken_;
      paths_.push_back(*path);
    }
    return path;
  }
  void ReleaseLocalPath(const std::string& key) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = held_.find(key);
      if (it != held_.end() && --it->second == 0) held_.erase(it);
    }
    inner_->ReleaseLocalPath(key);
  }
  std::optional<std::string> LocalRoot() const override {
    return inner_->LocalRoot();
  }
  StatusOr<int> RemoveStaleTemporaries() override {
    return inner_->RemoveStaleTemporaries();
  }
  std::string Describe() const override { return inner_->Describe(); }

  void FailPutOnce(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_put_ = key;
  }
  // Holds taken and not released.
  int held() {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& [key, count] : held_) n += count;
    return n;
  }
  int taken() {
    std::lock_guard<std::mutex> lock(mu_);
    return taken_;
  }
  std::vector<std::string> paths() {
    std::lock_guard<std::mutex> lock(mu_);
    return paths_;
  }

 private:
  ObjectStore* inner_;
  std::mutex mu_;
  std::map<std::string, int> held_;
  int taken_ = 0;
  std::vector<std::string> paths_;
  std::optional<std::string> fail_put_;
};

}  // namespace cbpipe::testing
