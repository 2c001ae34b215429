#include "store/s3_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>

#include "aws/xml.h"
#include "common/sha256.h"
#include "store/local_cache.h"

namespace cbpipe {

namespace fs = std::filesystem;

struct S3ObjectStore::Shared {
  std::shared_ptr<AwsClient> aws;
  std::string bucket;
  std::string prefix;  // "" or "p/" (with the trailing '/')
  S3StoreOptions options;

  std::string S3Key(const std::string& key) const { return prefix + key; }
  std::string Resource(const std::string& s3_key) const {
    return "s3://" + bucket + "/" + s3_key;
  }
  AwsRequest Request(const char* operation, const char* method,
                     const std::string& s3_key) const {
    AwsRequest r;
    r.service = "s3";
    r.operation = operation;
    r.method = method;
    r.bucket = bucket;
    r.path = "/" + s3_key;
    r.resource = Resource(s3_key);
    return r;
  }
  void AddEncryption(AwsRequest* r) const {
    if (options.sse.empty()) return;
    r->headers.emplace_back("x-amz-server-side-encryption", options.sse);
    if (!options.kms_key_id.empty())
      r->headers.emplace_back("x-amz-server-side-encryption-aws-kms-key-id",
                              options.kms_key_id);
  }
  // A missing bucket reads as kFailedPrecondition, not "no such object".
  Status Checked(Status s, const AwsError& e) const {
    if (!s.ok() && e.code == "NoSuchBucket")
      return FailedPreconditionError("bucket " + bucket +
                                     " does not exist: " + s.message());
    return s;
  }
  StatusOr<AwsResponse> Send(const AwsRequest& r) const {
    AwsError e;
    StatusOr<AwsResponse> out = aws->Send(r, &e);
    if (!out.ok()) return Checked(out.status(), e);
    return out;
  }
};

namespace {

constexpr uint64_t kMinPart = 5u << 20;
constexpr uint64_t kMaxCopy = 5ull << 30;

std::string RandomHex() {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 4; ++i) {
    uint32_t v = rd();
    for (int j = 0; j < 8; ++j, v >>= 4) out.push_back(kHex[v & 15]);
  }
  return out;
}

// "Wed, 21 Oct 2015 07:28:00 GMT" or "2015-10-21T07:28:00.000Z" -> epoch ms
// (0 when unreadable).
int64_t ParseS3Time(const std::string& text) {
  struct tm tm {};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  if (!end) {
    tm = {};
    end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  }
  if (!end) return 0;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (*end == '.') ms += std::atoi(end + 1) % 1000;
  return ms;
}

// A body streamed from a string the writer owns (rewindable: retried).
AwsRequestBody StringBody(const std::string* bytes,
                          std::shared_ptr<size_t> pos) {
  AwsRequestBody body;
  body.length = static_cast<int64_t>(bytes->size());
  body.read = [bytes, pos](char* buf, size_t n) -> StatusOr<size_t> {
    const size_t take = std::min(n, bytes->size() - *pos);
    std::memcpy(buf, bytes->data() + *pos, take);
    *pos += take;
    return take;
  };
  body.rewind = [pos] {
    *pos = 0;
    return true;
  };
  return body;
}

class S3Reader : public ObjectReader {
 public:
  S3Reader(std::shared_ptr<S3ObjectStore::Shared> shared, std::string s3_key)
      : shared_(std::move(shared)), s3_key_(std::move(s3_key)) {}

  // The first range: kNotFound here, at Get, when there is no object.
  Status Open() { return Fetch(); }

  StatusOr<size_t> Read(char* buf, size_t n) override {
    if (n == 0) return size_t{0};
    if (pos_ == buffer_.size()) {
      if (offset_ >= total_) return size_t{0};
      CBPIPE_RETURN_IF_ERROR(Fetch());
      if (buffer_.empty()) return size_t{0};
    }
    const size_t take = std::min(n, buffer_.size() - pos_);
    std::memcpy(buf, buffer_.data() + pos_, take);
    pos_ += take;
    return take;
  }

 private:
  Status Fetch() {
    AwsRequest r = shared_->Request("GetObject", "GET", s3_key_);
    const uint64_t last = offset_ + shared_->options.read_chunk - 1;
    r.headers.emplace_back("Range", "bytes=" + std::to_string(offset_) + "-" +
                                        std::to_string(last));
    if (!etag_.empty()) r.headers.emplace_back("If-Match", etag_);
    buffer_.clear();
    pos_ = 0;
    AwsError e;
    StatusOr<AwsResponse> got = shared_->aws->Send(r, &e);
    if (!got.ok()) {
      // An empty object has no byte 0: S3 answers 416 to any range.
      if (offset_ == 0 && e.http_status == 416) {
        total_ = 0;
        return OkStatus();
      }
      if (!etag_.empty() &&
          (got.status().code() == StatusCode::kFailedPrecondition ||
           got.status().code() == StatusCode::kNotFound)) {
        return FailedPreconditionError(
            shared_->Resource(s3_key_) +
            " changed while it was read (replaced or deleted): read it again");
      }
      return shared_->Checked(got.status(), e);
    }
    buffer_ = std::move(got->body);
    if (etag_.empty()) etag_ = got->Header("etag");
    if (got->http_status == 200) {
      total_ = buffer_.size();  // the whole object came
    } else {
      // Content-Range: bytes 0-99/1234
      const std::string range = got->Header("content-range");
      const size_t slash = range.rfind('/');
      if (slash == std::string::npos)
        return InternalError("GetObject " + shared_->Resource(s3_key_) +
                             ": a 206 answer without Content-Range");
      total_ = std::strtoull(range.c_str() + slash + 1, nullptr, 10);
    }
    offset_ += buffer_.size();
    if (buffer_.empty() && offset_ < total_)
      return InternalError("GetObject " + shared_->Resource(s3_key_) +
                           ": an empty range before the end");
    return OkStatus();
  }

  std::shared_ptr<S3ObjectStore::Shared> shared_;
  std::string s3_key_;
  std::string etag_;
  std::string buffer_;
  size_t pos_ = 0;
  uint64_t offset_ = 0;  // of the byte after buffer_
  uint64_t total_ = 0;
};

class S3Writer : public ObjectWriter {
 public:
  S3Writer(std::shared_ptr<S3ObjectStore::Shared> shared, std::string s3_key)
      : shared_(std::move(shared)), s3_key_(std::move(s3_key)) {
    buffer_.reserve(std::min<uint64_t>(shared_->options.part_size, 1u << 20));
  }
  ~S3Writer() override { Abort(); }

  Status Write(const char* data, size_t n) override {
    if (state_ != State::kOpen)
      return FailedPreconditionError("write to a finished or failed put of " +
                                     shared_->Resource(s3_key_));
    const uint64_t part = shared_->options.part_size;
    while (n > 0) {
      const size_t take = std::min<uint64_t>(n, part - buffer_.size());
      buffer_.append(data, take);
      data += take;
      n -= take;
      if (buffer_.size() == part) {
        Status s = UploadPart();
        if (!s.ok()) {
          Abort();
          return s;
        }
      }
    }
    return OkStatus();
  }

  Status Commit() override {
    if (state_ != State::kOpen)
      return FailedPreconditionError("commit of a finished or failed put of " +
                                     shared_->Resource(s3_key_));
    Status s = upload_id_.empty() ? PutWhole() : Complete();
    if (!s.ok()) {
      Abort();
      return s;
    }
    state_ = State::kCommitted;
    return OkStatus();
  }

  void Abort() override {
    if (state_ == State::kCommitted) return;
    state_ = State::kAborted;
    buffer_.clear();
    buffer_.shrink_to_fit();
    if (upload_id_.empty()) return;
    AwsRequest r =
        shared_->Request("AbortMultipartUpload", "DELETE", s3_key_);
    r.query.emplace_back("uploadId", upload_id_);
    // Best effort: RemoveStaleTemporaries aborts what this could not.
    static_cast<void>(shared_->Send(r));
    upload_id_.clear();
  }

  uint64_t size() const { return size_; }

 private:
  enum class State { kOpen, kCommitted, kAborted };

  Status PutWhole() {
    AwsRequest r = shared_->Request("PutObject", "PUT", s3_key_);
    shared_->AddEncryption(&r);
    r.body_stream = StringBody(&buffer_, std::make_shared<size_t>(0));
    CBPIPE_RETURN_IF_ERROR(shared_->Send(r).status());
    size_ += buffer_.size();
    return OkStatus();
  }

  Status UploadPart() {
    if (upload_id_.empty()) {
      AwsRequest r =
          shared_->Request("CreateMultipartUpload", "POST", s3_key_);
      r.query.emplace_back("uploads", "");
      shared_->AddEncryption(&r);
      CBPIPE_ASSIGN_OR_RETURN(AwsResponse created, shared_->Send(r));
      upload_id_ = AwsXmlText(created.body, "UploadId");
      if (upload_id_.empty())
        return InternalError("CreateMultipartUpload " +
                             shared_->Resource(s3_key_) + ": no UploadId");
    }
    const int number = static_cast<int>(etags_.size()) + 1;
    AwsRequest r = shared_->Request("UploadPart", "PUT", s3_key_);
    r.query.emplace_back("partNumber", std::to_string(number));
    r.query.emplace_back("uploadId", upload_id_);
    r.body_stream = StringBody(&buffer_, std::make_shared<size_t>(0));
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse sent, shared_->Send(r));
    etags_.push_back(sent.Header("etag"));
    size_ += buffer_.size();
    buffer_.clear();
    return OkStatus();
  }

  Status Complete() {
    if (!buffer_.empty()) CBPIPE_RETURN_IF_ERROR(UploadPart());
    std::string xml = "<CompleteMultipartUpload>";
    for (size_t i = 0; i < etags_.size(); ++i) {
      xml += "<Part><PartNumber>" + std::to_string(i + 1) +
             "</PartNumber><ETag>" + etags_[i] + "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    AwsRequest r =
        shared_->Request("CompleteMultipartUpload", "POST", s3_key_);
    r.query.emplace_back("uploadId", upload_id_);
    r.headers.emplace_back("Content-Type", "application/xml");
    r.body = std::move(xml);
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse done, shared_->Send(r));
    // S3 may answer 200 with an <Error> body when completing fails late.
    if (done.body.find("<Error>") != std::string::npos)
      return UnavailableError("CompleteMultipartUpload " +
                              shared_->Resource(s3_key_) + ": " +
                              AwsXmlText(done.body, "Code") + ": " +
                              AwsXmlText(done.body, "Message"));
    upload_id_.clear();
    return OkStatus();
  }

  std::shared_ptr<S3ObjectStore::Shared> shared_;
  std::string s3_key_;
  State state_ = State::kOpen;
  std::string buffer_;  // at most one part
  std::string upload_id_;
  std::vector<std::string> etags_;
  uint64_t size_ = 0;
};

bool IsBucketName(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.'))
      return false;
  }
  return b.front() != '-' && b.front() != '.' && b.back() != '-' &&
         b.back() != '.';
}

// Reads the whole of fd (pread from 0) into `writer`, hashing it.
Status CopyFd(int fd, ObjectWriter& writer, Sha256* sha, uint64_t* size) {
  std::vector<char> buf(1 << 20);
  off_t offset = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return UnavailableError(std::string("read the file to store: ") +
                              std::strerror(errno));
    }
    if (n == 0) break;
    if (sha) sha->Update(buf.data(), static_cast<size_t>(n));
    CBPIPE_RETURN_IF_ERROR(writer.Write(buf.data(), static_cast<size_t>(n)));
    offset += n;
  }
  *size = static_cast<uint64_t>(offset);
  return OkStatus();
}

}  // namespace

Status ParseS3Url(std::string_view url, std::string* bucket,
                  std::string* prefix) {
  if (url.rfind("s3://", 0) != 0)
    return InvalidArgumentError("not an s3:// URL: " + std::string(url));
  std::string_view rest = url.substr(5);
  const size_t slash = rest.find('/');
  *bucket = std::string(rest.substr(0, slash));
  *prefix = slash == std::string_view::npos ? ""
                                            : std::string(rest.substr(slash + 1));
  while (!prefix->empty() && prefix->back() == '/') prefix->pop_back();
  if (!IsBucketName(*bucket))
    return InvalidArgumentError(
        "s3:// URL " + std::string(url) +
        ": the bucket must be 3-63 of lowercase letters, digits, '-' and '.'");
  if (!prefix->empty() && !ValidateObjectKey(*prefix).ok())
    return InvalidArgumentError("s3:// URL " + std::string(url) +
                                ": the prefix must be a valid key path "
                                "([A-Za-z0-9._/-], no empty or . segments)");
  return OkStatus();
}

StatusOr<std::unique_ptr<S3ObjectStore>> S3ObjectStore::Create(
    std::shared_ptr<AwsClient> aws, std::string bucket, std::string prefix,
    S3StoreOptions options) {
  if (!aws) return InvalidArgumentError("S3ObjectStore needs an AwsClient");
  std::string b, p;
  CBPIPE_RETURN_IF_ERROR(ParseS3Url("s3://" + bucket + "/" + prefix, &b, &p));
  if (options.part_size < kMinPart || options.part_size > kMaxCopy)
    return InvalidArgumentError("S3 part size must be 5 MiB to 5 GiB");
  if (options.read_chunk < 1)
    return InvalidArgumentError("S3 read chunk must be at least 1 byte");
  if (!options.sse.empty() && options.sse != "AES256" &&
      options.sse != "aws:kms")
    return InvalidArgumentError("S3 sse must be \"AES256\" or \"aws:kms\"");
  if (!options.kms_key_id.empty() && options.sse != "aws:kms")
    return InvalidArgumentError("S3 kms_key_id needs sse = \"aws:kms\"");
  auto shared = std::make_shared<Shared>();
  shared->aws = std::move(aws);
  shared->bucket = b;
  shared->prefix = p.empty() ? "" : p + "/";
  shared->options = std::move(options);
  return std::unique_ptr<S3ObjectStore>(new S3ObjectStore(std::move(shared)));
}

S3ObjectStore::S3ObjectStore(std::shared_ptr<Shared> shared)
    : shared_(std::move(shared)), holds_(std::make_unique<CopyHolds>()) {}

S3ObjectStore::~S3ObjectStore() {
  if (!cache_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(cache_dir_, ec);
  }
}

std::string S3ObjectStore::Describe() const {
  std::string out = "s3://" + shared_->bucket;
  if (!shared_->prefix.empty())
    out += "/" + shared_->prefix.substr(0, shared_->prefix.size() - 1);
  return out;
}

StatusOr<std::unique_ptr<ObjectReader>> S3ObjectStore::Get(
    const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  auto reader = std::make_unique<S3Reader>(shared_, shared_->S3Key(key));
  CBPIPE_RETURN_IF_ERROR(reader->Open());
  return std::unique_ptr<ObjectReader>(std::move(reader));
}

StatusOr<std::unique_ptr<ObjectWriter>> S3ObjectStore::Put(
    const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  return PutRaw(shared_->S3Key(key));
}

StatusOr<std::unique_ptr<ObjectWriter>> S3ObjectStore::PutRaw(
    const std::string& s3_key) {
  return std::unique_ptr<ObjectWriter>(new S3Writer(shared_, s3_key));
}

StatusOr<ObjectInfo> S3ObjectStore::Head(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  CBPIPE_ASSIGN_OR_RETURN(
      AwsResponse r,
      shared_->Send(shared_->Request("HeadObject", "HEAD", shared_->S3Key(key))));
  ObjectInfo info;
  info.size = std::strtoull(r.Header("content-length").c_str(), nullptr, 10);
  info.mtime_ms = ParseS3Time(r.Header("last-modified"));
  return info;
}

Status S3ObjectStore::Delete(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  return shared_
      ->Send(shared_->Request("DeleteObject", "DELETE", shared_->S3Key(key)))
      .status();
}

namespace {

struct Listed {
  std::string key;  // full S3 key
  int64_t mtime_ms = 0;
};

// Every key under `s3_prefix` (ListObjectsV2, following continuation).
StatusOr<std::vector<Listed>> ListAll(const S3ObjectStore::Shared& s,
                                      const std::string& s3_prefix) {
  std::vector<Listed> out;
  std::string token;
  for (;;) {
    AwsRequest r;
    r.service = "s3";
    r.operation = "ListObjectsV2";
    r.bucket = s.bucket;
    r.path = "/";
    r.resource = "s3://" + s.bucket + "/" + s3_prefix;
    r.query = {{"list-type", "2"}, {"prefix", s3_prefix}};
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse page, s.Send(r));
    for (std::string_view item : AwsXmlElements(page.body, "Contents")) {
      out.push_back(
          {AwsXmlText(item, "Key"), ParseS3Time(AwsXmlText(item, "LastModified"))});
    }
    if (AwsXmlText(page.body, "IsTruncated") != "true") break;
    token = AwsXmlText(page.body, "NextContinuationToken");
    if (token.empty())
      return InternalError("ListObjectsV2 " + r.resource +
                           ": truncated without a continuation token");
  }
  return out;
}

}  // namespace

StatusOr<std::vector<std::string>> S3ObjectStore::List(
    const std::string& prefix) {
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Listed> all,
                          ListAll(*shared_, shared_->S3Key(prefix)));
  std::vector<std::string> keys;
  keys.reserve(all.size());
  for (Listed& item : all) {
    std::string key = item.key.substr(shared_->prefix.size());
    // Temporaries (.put-*.tmp) and keys put by others that are not store
    // keys are not objects of this store.
    if (ValidateObjectKey(key).ok()) keys.push_back(std::move(key));
  }
  return keys;  // S3 lists in UTF-8 binary order: bytewise
}

Status S3ObjectStore::Copy(const std::string& from, const std::string& to) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(from));
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(to));
  AwsRequest r = shared_->Request("CopyObject", "PUT", shared_->S3Key(to));
  r.headers.emplace_back("x-amz-copy-source",
                         "/" + shared_->bucket + "/" + shared_->S3Key(from));
  shared_->AddEncryption(&r);
  CBPIPE_ASSIGN_OR_RETURN(AwsResponse done, shared_->Send(r));
  if (done.body.find("<Error>") != std::string::npos)
    return UnavailableError("CopyObject " + shared_->Resource(shared_->S3Key(to)) +
                            ": " + AwsXmlText(done.body, "Code"));
  return OkStatus();
}

StatusOr<StoredObject> S3ObjectStore::PutContentAddressed(
    const std::string& prefix, int fd) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(prefix + "x"));
  // The temporary sits beside the final key: PREFIX.put-RANDOM.tmp is no
  // store key (a ".put-" segment), so List never shows it.
  const size_t cut = prefix.rfind('/');
  const std::string dir =
      cut == std::string::npos ? "" : prefix.substr(0, cut + 1);
  const std::string temp =
      shared_->S3Key(dir + ".put-" + RandomHex() + ".tmp");
  Sha256 sha;
  StoredObject stored;
  {
    CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> out, PutRaw(temp));
    CBPIPE_RETURN_IF_ERROR(CopyFd(fd, *out, &sha, &stored.size));
    CBPIPE_RETURN_IF_ERROR(out->Commit());
  }
  StatusOr<std::string> hex = sha.FinishHex();
  auto drop_temp = [&] {
    static_cast<void>(
        shared_->Send(shared_->Request("DeleteObject", "DELETE", temp)));
  };
  if (!hex.ok()) {
    drop_temp();
    return hex.status();
  }
  stored.sha256 = *hex;
  stored.key = prefix + stored.sha256;
  StatusOr<bool> there = Exists(stored.key);
  Status s = there.status();
  if (s.ok() && !*there) {
    if (stored.size <= kMaxCopy) {
      AwsRequest r =
          shared_->Request("CopyObject", "PUT", shared_->S3Key(stored.key));
      r.headers.emplace_back("x-amz-copy-source", "/" + shared_->bucket + "/" + temp);
      shared_->AddEncryption(&r);
      s = shared_->Send(r).status();
    } else {
      // Above CopyObject's limit: read the file again into the final key.
      StatusOr<std::unique_ptr<ObjectWriter>> out = Put(stored.key);
      s = out.status();
      uint64_t again = 0;
      if (s.ok()) s = CopyFd(fd, **out, nullptr, &again);
      if (s.ok() && again != stored.size)
        s = FailedPreconditionError("the file changed while it was stored");
      if (s.ok()) s = (*out)->Commit();
    }
  }
  drop_temp();
  CBPIPE_RETURN_IF_ERROR(s);
  return stored;
}

StatusOr<std::string> S3ObjectStore::LocalPath(const std::string& key) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  CBPIPE_ASSIGN_OR_RETURN(
      AwsResponse head,
      shared_->Send(shared_->Request("HeadObject", "HEAD", shared_->S3Key(key))));
  const std::string etag = head.Header("etag");
  std::lock_guard<std::mutex> lock(cache_mu_);
  std::error_code ec;
  if (cache_dir_.empty()) {
    const fs::path dir = fs::temp_directory_path(ec) /
                         ("cbpipe-s3-store-" + std::to_string(::getpid()) +
                          "-" + RandomHex());
    if (ec || !fs::create_directories(dir, ec) || ec)
      return UnavailableError("create a cache folder for " + Describe());
    fs::permissions(dir, fs::perms::owner_all, ec);
    cache_dir_ = dir.string();
  }
  const fs::path path = fs::path(cache_dir_) / key;
  auto cached = cached_.find(key);
  if (cached != cached_.end() && !etag.empty() && cached->second == etag &&
      fs::exists(path, ec)) {
    holds_->Take(key);
    return path.string();
  }
  fs::create_directories(path.parent_path(), ec);
  // An older cached file may be open by a reader: write beside, rename over.
  const fs::path temp =
      path.parent_path() / (".put-" + path.filename().string());
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> in, Get(key));
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    std::vector<char> buf(1 << 20);
    for (;;) {
      CBPIPE_ASSIGN_OR_RETURN(size_t n, in->Read(buf.data(), buf.size()));
      if (n == 0) break;
      out.write(buf.data(), static_cast<std::streamsize>(n));
    }
    if (!out) return UnavailableError("write the cache file of " + key);
  }
  fs::rename(temp, path, ec);
  if (ec) return UnavailableError("write the cache file of " + key);
  cached_[key] = etag;
  holds_->Take(key);
  return path.string();
}

void S3ObjectStore::ReleaseLocalPath(const std::string& key) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (!holds_->Give(key)) return;
  cached_.erase(key);
  RemoveCachedCopy(cache_dir_, key);
}

StatusOr<int> S3ObjectStore::RemoveStaleTemporaries() {
  const int64_t day_ago_ms =
      static_cast<int64_t>(std::time(nullptr)) * 1000 - 24 * 3600 * 1000LL;
  int removed = 0;
  // Multipart uploads never completed nor aborted.
  std::string key_marker, id_marker;
  for (;;) {
    AwsRequest r;
    r.service = "s3";
    r.operation = "ListMultipartUploads";
    r.bucket = shared_->bucket;
    r.path = "/";
    r.resource = Describe();
    r.query = {{"uploads", ""}, {"prefix", shared_->prefix}};
    if (!key_marker.empty()) {
      r.query.emplace_back("key-marker", key_marker);
      r.query.emplace_back("upload-id-marker", id_marker);
    }
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse page, shared_->Send(r));
    for (std::string_view item : AwsXmlElements(page.body, "Upload")) {
      if (ParseS3Time(AwsXmlText(item, "Initiated")) > day_ago_ms) continue;
      AwsRequest abort = shared_->Request("AbortMultipartUpload", "DELETE",
                                          AwsXmlText(item, "Key"));
      abort.query.emplace_back("uploadId", AwsXmlText(item, "UploadId"));
      CBPIPE_RETURN_IF_ERROR(shared_->Send(abort).status());
      ++removed;
    }
    if (AwsXmlText(page.body, "IsTruncated") != "true") break;
    key_marker = AwsXmlText(page.body, "NextKeyMarker");
    id_marker = AwsXmlText(page.body, "NextUploadIdMarker");
    if (key_marker.empty()) break;
  }
  // Temporaries of PutContentAddressed left by a crash.
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Listed> all,
                          ListAll(*shared_, shared_->prefix));
  for (const Listed& item : all) {
    const size_t cut = item.key.rfind('/');
    const std::string name =
        cut == std::string::npos ? item.key : item.key.substr(cut + 1);
    if (name.rfind(".put-", 0) != 0 || name.size() < 9 ||
        name.compare(name.size() - 4, 4, ".tmp") != 0 ||
        item.mtime_ms > day_ago_ms)
      continue;
    CBPIPE_RETURN_IF_ERROR(
        shared_->Send(shared_->Request("DeleteObject", "DELETE", item.key))
            .status());
    ++removed;
  }
  return removed;
}

}  // namespace cbpipe
