#include "store/s3_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>
#include <utility>

#include "aws/xml.h"
#include "common/sha256.h"
#include "store/file_source.h"
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
  // A missing bucket reads as kFailedPrecondition, not "no such object";
  // a body that does not match the SHA-256 (or MD5) sent with it as
  // kDataLoss.
  Status Checked(Status s, const AwsError& e) const {
    if (!s.ok() && e.code == "NoSuchBucket")
      return FailedPreconditionError("bucket " + bucket +
                                     " does not exist: " + s.message());
    if (!s.ok() &&
        (e.code == "XAmzContentSHA256Mismatch" || e.code == "BadDigest"))
      return DataLossError(s.message());
    return s;
  }
  StatusOr<AwsResponse> Send(const AwsRequest& r) const {
    AwsError e;
    StatusOr<AwsResponse> out = aws->Send(r, &e);
    if (!out.ok()) return Checked(out.status(), e);
    return out;
  }

  // The requests of a multipart upload (the writer's and PutFile's).
  // CreateMultipartUpload: the upload id.
  StatusOr<std::string> CreateUpload(const std::string& s3_key) const {
    AwsRequest r = Request("CreateMultipartUpload", "POST", s3_key);
    r.query.emplace_back("uploads", "");
    AddEncryption(&r);
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse created, Send(r));
    std::string id = AwsXmlText(created.body, "UploadId");
    if (id.empty())
      return InternalError("CreateMultipartUpload " + Resource(s3_key) +
                           ": no UploadId");
    return id;
  }
  // UploadPart of `body` as part `number`: its ETag.
  StatusOr<std::string> UploadPart(const std::string& s3_key,
                                   const std::string& upload_id, int number,
                                   AwsRequestBody body) const {
    AwsRequest r = Request("UploadPart", "PUT", s3_key);
    r.query.emplace_back("partNumber", std::to_string(number));
    r.query.emplace_back("uploadId", upload_id);
    r.body_stream = std::move(body);
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse sent, Send(r));
    return sent.Header("etag");
  }
  // CompleteMultipartUpload with parts 1..etags.size().
  Status CompleteUpload(const std::string& s3_key, const std::string& upload_id,
                        const std::vector<std::string>& etags) const {
    std::string xml = "<CompleteMultipartUpload>";
    for (size_t i = 0; i < etags.size(); ++i) {
      xml += "<Part><PartNumber>" + std::to_string(i + 1) +
             "</PartNumber><ETag>" + etags[i] + "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    AwsRequest r = Request("CompleteMultipartUpload", "POST", s3_key);
    r.query.emplace_back("uploadId", upload_id);
    r.headers.emplace_back("Content-Type", "application/xml");
    r.body = std::move(xml);
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse done, Send(r));
    // S3 may answer 200 with an <Error> body when completing fails late.
    if (done.body.find("<Error>") != std::string::npos)
      return UnavailableError("CompleteMultipartUpload " + Resource(s3_key) +
                              ": " + AwsXmlText(done.body, "Code") + ": " +
                              AwsXmlText(done.body, "Message"));
    return OkStatus();
  }
  // AbortMultipartUpload, best effort: RemoveStaleTemporaries aborts what
  // this could not.
  void AbortUpload(const std::string& s3_key,
                   const std::string& upload_id) const {
    AwsRequest r = Request("AbortMultipartUpload", "DELETE", s3_key);
    r.query.emplace_back("uploadId", upload_id);
    static_cast<void>(Send(r));
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
// Once `cancel` (may be null) is set, the next read fails and the body no
// longer rewinds, so an upload being aborted stops mid-transfer.
AwsRequestBody StringBody(const std::string* bytes, std::shared_ptr<size_t> pos,
                          const std::atomic<bool>* cancel = nullptr) {
  AwsRequestBody body;
  body.length = static_cast<int64_t>(bytes->size());
  body.read = [bytes, pos, cancel](char* buf, size_t n) -> StatusOr<size_t> {
    if (cancel && cancel->load()) return AbortedError("upload aborted");
    const size_t take = std::min(n, bytes->size() - *pos);
    std::memcpy(buf, bytes->data() + *pos, take);
    *pos += take;
    return take;
  };
  body.rewind = [pos, cancel] {
    if (cancel && cancel->load()) return false;
    *pos = 0;
    return true;
  };
  return body;
}

// A body of `length` bytes of a file from `offset`, read by pread (the fd
// is shared by the part threads) straight into the client's buffer: memory
// is that buffer, not the size. The bytes are hashed as they go, and the
// last ones are handed over only when the hash is `sha256`: a file that no
// longer matches (changed since it was hashed, or a wrong hash given) is
// never sent whole, so no server, even one that does not check
// x-amz-content-sha256, stores it. Rewinds for a retry. Once `cancel` (may
// be null) is set, the next read fails and the body no longer rewinds.
AwsRequestBody FileBody(int fd, uint64_t offset, uint64_t length,
                        std::string sha256, std::string path,
                        const std::atomic<bool>* cancel = nullptr) {
  struct State {
    uint64_t pos = 0;
    std::unique_ptr<Sha256> hash = std::make_unique<Sha256>();
  };
  auto state = std::make_shared<State>();
  AwsRequestBody body;
  body.length = static_cast<int64_t>(length);
  body.sha256 = sha256;
  body.read = [=](char* buf, size_t n) -> StatusOr<size_t> {
    if (cancel && cancel->load()) return AbortedError("upload aborted");
    const size_t take =
        static_cast<size_t>(std::min<uint64_t>(n, length - state->pos));
    for (size_t got = 0; got < take;) {
      const ssize_t r =
          ::pread(fd, buf + got, take - got,
                  static_cast<off_t>(offset + state->pos + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0)
        return UnavailableError("read " + path + ": " + std::strerror(errno));
      if (r == 0) return DataLossError(path + " changed while it was stored");
      got += static_cast<size_t>(r);
    }
    state->hash->Update(buf, take);
    state->pos += take;
    if (take > 0 && state->pos == length) {
      CBPIPE_ASSIGN_OR_RETURN(std::string hex, state->hash->FinishHex());
      if (hex != sha256)
        return DataLossError(path + " does not match its SHA-256 (" + sha256 +
                             "): not stored");
    }
    return take;
  };
  body.rewind = [state, cancel] {
    if (cancel && cancel->load()) return false;
    state->pos = 0;
    state->hash = std::make_unique<Sha256>();
    return true;
  };
  return body;
}

// Reads one object in ranges of read_chunk bytes, every range after the
// first with If-Match: the first one's ETag. With parallel_parts > 1 the
// ranges after the first are fetched ahead, on up to parallel_parts threads
// the reader owns (started when the object has more than one range, joined
// by the destructor, which waits for the ranges in flight), at most
// parallel_parts ranges ahead of the one being read: memory is bounded by
// (parallel_parts + 1) x read_chunk. A range is whole in one answer body,
// so the client can retry it after a reset.
class S3Reader : public ObjectReader {
 public:
  S3Reader(std::shared_ptr<S3ObjectStore::Shared> shared, std::string s3_key)
      : shared_(std::move(shared)), s3_key_(std::move(s3_key)) {}
  ~S3Reader() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& t : fetchers_) t.join();
  }

  // The first range: kNotFound here, at Get, when there is no object.
  Status Open() {
    CBPIPE_ASSIGN_OR_RETURN(buffer_, FetchRange(0, /*first=*/true));
    offset_ = buffer_.size();
    // (A server that ignored Range sent the whole object: nothing left.)
    ranges_ = offset_ >= total_ ? 1 : (total_ + chunk() - 1) / chunk();
    const int parallel = shared_->options.parallel_parts;
    if (parallel > 1 && ranges_ > 1) {
      next_ = 1;
      want_ = 1;
      const uint64_t threads =
          std::min<uint64_t>(static_cast<uint64_t>(parallel), ranges_ - 1);
      for (uint64_t i = 0; i < threads; ++i)
        fetchers_.emplace_back([this] { FetchThread(); });
    }
    return OkStatus();
  }

  StatusOr<size_t> Read(char* buf, size_t n) override {
    if (n == 0) return size_t{0};
    if (pos_ == buffer_.size()) {
      if (offset_ >= total_) return size_t{0};
      if (!failed_.ok()) return failed_;
      failed_ = NextRange();
      CBPIPE_RETURN_IF_ERROR(failed_);
      if (buffer_.empty()) return size_t{0};
    }
    const size_t take = std::min(n, buffer_.size() - pos_);
    std::memcpy(buf, buffer_.data() + pos_, take);
    pos_ += take;
    return take;
  }

 private:
  uint64_t chunk() const { return shared_->options.read_chunk; }

  // The range that starts at offset_ into buffer_: fetched here, or taken
  // from the fetch threads.
  Status NextRange() {
    pos_ = 0;
    buffer_.clear();
    if (fetchers_.empty()) {
      CBPIPE_ASSIGN_OR_RETURN(buffer_, FetchRange(offset_, /*first=*/false));
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] { return ready_.count(want_) > 0; });
      auto got = ready_.extract(want_);
      ++want_;
      work_cv_.notify_all();
      if (!got.mapped().ok()) return got.mapped().status();
      buffer_ = std::move(*got.mapped());
    }
    offset_ += buffer_.size();
    return OkStatus();
  }

  void FetchThread() {
    const uint64_t ahead =
        static_cast<uint64_t>(shared_->options.parallel_parts);
    for (;;) {
      uint64_t index;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] {
          return stopping_ || next_ >= ranges_ || next_ < want_ + ahead;
        });
        if (stopping_ || next_ >= ranges_) return;
        index = next_++;
      }
      StatusOr<std::string> got = FetchRange(index * chunk(), false);
      {
        std::lock_guard<std::mutex> lock(mu_);
        ready_.emplace(index, std::move(got));
      }
      done_cv_.notify_all();
    }
  }

  // GetObject of the range from `start` (read_chunk bytes, fewer at the
  // end). The first fetch learns the ETag and the size; later ones check
  // the ETag (If-Match) and that the whole range came.
  StatusOr<std::string> FetchRange(uint64_t start, bool first) {
    AwsRequest r = shared_->Request("GetObject", "GET", s3_key_);
    const uint64_t last = start + chunk() - 1;
    r.headers.emplace_back("Range", "bytes=" + std::to_string(start) + "-" +
                                        std::to_string(last));
    if (!first) r.headers.emplace_back("If-Match", etag_);
    AwsError e;
    StatusOr<AwsResponse> got = shared_->aws->Send(r, &e);
    if (!got.ok()) {
      // An empty object has no byte 0: S3 answers 416 to any range.
      if (first && e.http_status == 416) {
        total_ = 0;
        return std::string();
      }
      if (!first && (got.status().code() == StatusCode::kFailedPrecondition ||
                     got.status().code() == StatusCode::kNotFound)) {
        return FailedPreconditionError(
            shared_->Resource(s3_key_) +
            " changed while it was read (replaced or deleted): read it again");
      }
      return shared_->Checked(got.status(), e);
    }
    std::string bytes = std::move(got->body);
    if (first) {
      etag_ = got->Header("etag");
      if (got->http_status == 200) {
        total_ = bytes.size();  // the whole object came
        return bytes;
      }
      // Content-Range: bytes 0-99/1234
      const std::string range = got->Header("content-range");
      const size_t slash = range.rfind('/');
      if (slash == std::string::npos)
        return InternalError("GetObject " + shared_->Resource(s3_key_) +
                             ": a 206 answer without Content-Range");
      total_ = std::strtoull(range.c_str() + slash + 1, nullptr, 10);
    }
    const uint64_t expected = std::min(chunk(), total_ - std::min(start, total_));
    if (bytes.size() != expected)
      return InternalError("GetObject " + shared_->Resource(s3_key_) + ": " +
                           std::to_string(bytes.size()) +
                           " bytes came of a range of " +
                           std::to_string(expected));
    return bytes;
  }

  std::shared_ptr<S3ObjectStore::Shared> shared_;
  std::string s3_key_;
  std::string etag_;     // set by Open, before any fetch thread
  uint64_t total_ = 0;   // likewise
  uint64_t ranges_ = 0;  // likewise
  std::string buffer_;   // the range being read
  size_t pos_ = 0;
  uint64_t offset_ = 0;  // of the byte after buffer_
  Status failed_;        // a failed range fails every later Read

  // The fetch threads (parallel_parts > 1, more than one range).
  std::vector<std::thread> fetchers_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // want_ moved on, or stopping_
  std::condition_variable done_cv_;  // a range came (or failed)
  // Guarded by mu_ once fetch threads run:
  uint64_t next_ = 0;  // the next range to fetch
  uint64_t want_ = 0;  // the next range Read needs
  std::map<uint64_t, StatusOr<std::string>> ready_;
  bool stopping_ = false;
};

// Streams one object: a single PutObject when it fits in one part, a
// multipart upload otherwise. With parallel_parts > 1 the parts of a
// multipart upload go out on up to parallel_parts threads the writer owns
// (started by the first full part, joined by Commit and Abort); at most
// parallel_parts part buffers exist, the one being filled included, so
// Write blocks while they are all uploading. A part that fails (after the
// client's retries) fails the next Write or the Commit; the upload is then
// aborted once every part thread has stopped.
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
        Status s = SendPart(/*last=*/false);
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
    cancel_ = true;  // parts in flight stop at their next read
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.clear();
    }
    StopWorkers();
    free_.clear();
    buffer_.clear();
    buffer_.shrink_to_fit();
    if (upload_id_.empty()) return;
    // After every part thread stopped: no part can land after the abort.
    shared_->AbortUpload(s3_key_, upload_id_);
    upload_id_.clear();
  }

 private:
  enum class State { kOpen, kCommitted, kAborted };
  struct Part {
    int number = 0;
    std::string bytes;
  };

  Status PutWhole() {
    AwsRequest r = shared_->Request("PutObject", "PUT", s3_key_);
    shared_->AddEncryption(&r);
    r.body_stream = StringBody(&buffer_, std::make_shared<size_t>(0));
    return shared_->Send(r).status();
  }

  // UploadPart of `bytes` as part `number`: its ETag. Runs on the writer's
  // thread or a part thread.
  StatusOr<std::string> UploadPart(int number, const std::string& bytes) {
    return shared_->UploadPart(
        s3_key_, upload_id_, number,
        StringBody(&bytes, std::make_shared<size_t>(0), &cancel_));
  }

  // Sends buffer_ as the next part (starting the upload first if need be).
  // In parallel, hands it to the part threads and, unless it is the last,
  // takes a free buffer for the next part (waiting for one when all
  // parallel_parts are in flight). A failed earlier part is returned here.
  Status SendPart(bool last) {
    if (upload_id_.empty()) {
      CBPIPE_ASSIGN_OR_RETURN(upload_id_, shared_->CreateUpload(s3_key_));
    }
    const int number = ++parts_;
    const int parallel = shared_->options.parallel_parts;
    if (parallel <= 1) {
      CBPIPE_ASSIGN_OR_RETURN(std::string etag, UploadPart(number, buffer_));
      etags_.push_back(std::move(etag));
      buffer_.clear();
      return OkStatus();
    }
    if (workers_.empty()) {
      buffers_ = 1;  // buffer_
      for (int i = 0; i < parallel; ++i)
        workers_.emplace_back([this] { PartThread(); });
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (!failed_.ok()) return failed_;
    etags_.resize(static_cast<size_t>(number));
    queue_.push_back({number, std::move(buffer_)});
    work_cv_.notify_one();
    buffer_ = std::string();
    if (last) {
      --buffers_;  // buffer_ is no part buffer any more
      return OkStatus();
    }
    done_cv_.wait(lock, [&] {
      return !failed_.ok() || !free_.empty() || buffers_ < parallel;
    });
    if (!failed_.ok()) return failed_;
    if (!free_.empty()) {
      buffer_ = std::move(free_.back());
      free_.pop_back();
    } else {
      ++buffers_;
      buffer_.reserve(shared_->options.part_size);
    }
    return OkStatus();
  }

  void PartThread() {
    for (;;) {
      Part part;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        part = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
      }
      StatusOr<std::string> etag =
          cancel_ ? StatusOr<std::string>(AbortedError("upload aborted"))
                  : UploadPart(part.number, part.bytes);
      {
        std::lock_guard<std::mutex> lock(mu_);
        --busy_;
        if (etag.ok()) {
          etags_[static_cast<size_t>(part.number - 1)] = std::move(*etag);
        } else if (failed_.ok()) {
          failed_ = etag.status();
          cancel_ = true;  // the upload is lost: stop the other parts
        }
        part.bytes.clear();
        free_.push_back(std::move(part.bytes));
      }
      done_cv_.notify_all();
    }
  }

  // Waits until every part handed over was sent (or failed): the first
  // failure.
  Status WaitForParts() {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return queue_.empty() && busy_ == 0; });
    return failed_;
  }

  void StopWorkers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  Status Complete() {
    if (!buffer_.empty()) CBPIPE_RETURN_IF_ERROR(SendPart(/*last=*/true));
    CBPIPE_RETURN_IF_ERROR(WaitForParts());
    StopWorkers();
    free_.clear();
    CBPIPE_RETURN_IF_ERROR(
        shared_->CompleteUpload(s3_key_, upload_id_, etags_));
    upload_id_.clear();
    return OkStatus();
  }

  std::shared_ptr<S3ObjectStore::Shared> shared_;
  std::string s3_key_;
  State state_ = State::kOpen;
  std::string buffer_;  // the part being filled
  std::string upload_id_;
  int parts_ = 0;  // parts handed over so far
  std::atomic<bool> cancel_{false};

  // The part threads (parallel_parts > 1, multipart only).
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // a part queued, or stopping_
  std::condition_variable done_cv_;  // a part finished (or failed)
  // Guarded by mu_ once part threads run:
  std::deque<Part> queue_;          // handed over, not yet taken
  std::vector<std::string> free_;   // sent part buffers, for reuse
  std::vector<std::string> etags_;  // [number - 1]
  int buffers_ = 0;                 // part buffers alive, buffer_ included
  int busy_ = 0;                    // parts being sent
  bool stopping_ = false;
  Status failed_;  // the first failed part
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
  if (options.parallel_parts < 1 || options.parallel_parts > 64)
    return InvalidArgumentError("S3 parallel parts must be 1 to 64");
  if (options.single_put_max > kMaxCopy)
    return InvalidArgumentError("S3 single PUT limit is at most 5 GiB");
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

S3ObjectStore::~S3ObjectStore() { RemoveProcessFolder(cache_dir_); }

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
    // Appended piecewise: GCC 12 warns falsely (-Wrestrict, PR105651) on
    // "literal" + string chains once this is inlined.
    r.resource = "s3://";
    r.resource.append(s.bucket).append("/").append(s3_prefix);
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

Status S3ObjectStore::PutFile(const std::string& key, const std::string& path,
                              const std::string& sha256) {
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(key));
  if (!sha256.empty()) CBPIPE_RETURN_IF_ERROR(ValidateSha256Hex(sha256));
  CBPIPE_ASSIGN_OR_RETURN(OpenedFile file, OpenFileToStore(path));
  const std::string s3_key = shared_->S3Key(key);
  std::string hash = sha256;
  if (file.size > shared_->options.single_put_max) {
    // A caller's hash covers the whole file, the parts carry their own:
    // check it first, so a wrong one stores nothing.
    if (!hash.empty()) {
      CBPIPE_ASSIGN_OR_RETURN(std::string whole,
                              HashFileRange(file.fd, 0, file.size, path));
      if (whole != hash)
        return DataLossError(path + " does not match its SHA-256 (" + hash +
                             "): not stored");
    }
    return PutFileInParts(s3_key, file, path);
  }
  if (hash.empty()) {
    CBPIPE_ASSIGN_OR_RETURN(hash, HashFileRange(file.fd, 0, file.size, path));
  } else if (file.size == 0 && hash != kAwsEmptyPayloadHash) {
    // (An empty body has no last bytes for FileBody to hold back.)
    return DataLossError(path + " does not match its SHA-256 (" + hash +
                         "): not stored");
  }
  AwsRequest r = shared_->Request("PutObject", "PUT", s3_key);
  shared_->AddEncryption(&r);
  r.body_stream = FileBody(file.fd, 0, file.size, hash, path);
  return shared_->Send(r).status();
}

Status S3ObjectStore::PutFileInParts(const std::string& s3_key,
                                     const OpenedFile& file,
                                     const std::string& path) {
  // S3 takes at most 10,000 parts.
  const uint64_t part =
      std::max(shared_->options.part_size, (file.size + 9999) / 10000);
  const uint64_t parts = (file.size + part - 1) / part;
  CBPIPE_ASSIGN_OR_RETURN(std::string upload_id,
                          shared_->CreateUpload(s3_key));
  std::vector<std::string> etags(parts);
  std::atomic<uint64_t> next{0};
  std::atomic<bool> cancel{false};
  std::mutex mu;
  Status failed;  // guarded by mu: the first part that failed
  auto send_parts = [&] {
    for (;;) {
      const uint64_t i = next++;
      if (i >= parts || cancel) return;
      const uint64_t offset = i * part;
      const uint64_t length = std::min(part, file.size - offset);
      // Each part is hashed first and sent with its SHA-256 (S3 checks it).
      StatusOr<std::string> hash = HashFileRange(file.fd, offset, length, path);
      StatusOr<std::string> etag =
          hash.ok() ? shared_->UploadPart(
                          s3_key, upload_id, static_cast<int>(i + 1),
                          FileBody(file.fd, offset, length, *hash, path,
                                   &cancel))
                    : hash;
      if (!etag.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (failed.ok()) failed = etag.status();
        cancel = true;  // the upload is lost: stop the other parts
        return;
      }
      etags[i] = std::move(*etag);
    }
  };
  const uint64_t threads = std::min<uint64_t>(
      static_cast<uint64_t>(shared_->options.parallel_parts), parts);
  if (threads <= 1) {
    send_parts();
  } else {
    std::vector<std::thread> senders;
    for (uint64_t t = 0; t < threads; ++t) senders.emplace_back(send_parts);
    for (std::thread& t : senders) t.join();
  }
  // Parts read at different times: a file changed meanwhile would mix them.
  Status s = failed.ok() ? CheckFileUnchanged(file, path) : failed;
  if (s.ok()) s = shared_->CompleteUpload(s3_key, upload_id, etags);
  if (!s.ok()) shared_->AbortUpload(s3_key, upload_id);
  return s;
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
    CBPIPE_ASSIGN_OR_RETURN(cache_dir_, MakeProcessFolder("cache", Describe()));
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
