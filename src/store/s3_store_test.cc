// S3ObjectStore on a real moto server: the ObjectStore contract suite
// (object_store_contract_test.cc, compiled into this binary too) and the
// S3-specific behaviour — multipart uploads and their abort on failure, a
// missing bucket, SSE headers, listings past 1000 keys.
#include "store/s3_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aws/credentials_chain.h"
#include "aws/xml.h"
#include "common/env.h"
#include "common/sha256.h"
#include "servers/http_fault_server.h"
#include "servers/moto_environment.h"
#include "servers/moto_server.h"
#include "store/object_store_contract.h"

namespace cbpipe {
namespace {

using testing::HttpFaultServer;
using testing::HttpStep;
using testing::MotoServer;

// One moto for the whole binary (servers/moto_environment.h); each test
// starts from a reset one.
MotoServer* Moto() { return testing::MotoEnvironment::server(); }

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new testing::MotoEnvironment());

std::shared_ptr<AwsClient> MotoClient(
    const std::string& endpoint, int max_attempts = 4,
    std::shared_ptr<AwsCallObserver> observer = nullptr) {
  AwsClientOptions options;
  options.observer = std::move(observer);
  options.region = "us-east-1";
  options.endpoints["s3"] = endpoint;
  options.request_timeout_seconds = 120;
  options.retry.max_attempts = max_attempts;
  options.retry.interval_seconds = 0.01;
  auto client = AwsClient::Create(
      options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::shared_ptr<AwsClient>(std::move(*client)) : nullptr;
}

AwsRequest S3Call(const char* method, const char* operation,
                  const std::string& bucket, const std::string& key = "") {
  AwsRequest r;
  r.service = "s3";
  r.method = method;
  r.operation = operation;
  r.bucket = bucket;
  r.path = "/" + key;
  r.resource = "s3://" + bucket + "/" + key;
  return r;
}

std::string FreshBucket(AwsClient& aws) {
  static std::atomic<int> serial{0};
  const std::string bucket = "cbpipe-test-" + std::to_string(::getpid()) + "-" +
                             std::to_string(serial++);
  Status s = aws.Send(S3Call("PUT", "CreateBucket", bucket)).status();
  EXPECT_TRUE(s.ok()) << s.ToString();
  return bucket;
}

std::shared_ptr<AwsClient>& SharedClient() {
  static std::shared_ptr<AwsClient> client;
  if (!client && Moto()) client = MotoClient(Moto()->endpoint());
  return client;
}

std::unique_ptr<ObjectStore> MakeS3Store(const std::string&) {
  if (!Moto()) {
    ADD_FAILURE() << "moto did not start: "
                  << testing::MotoEnvironment::error();
    return nullptr;
  }
  std::shared_ptr<AwsClient> aws = SharedClient();
  S3StoreOptions options;
  options.read_chunk = 1u << 20;  // the 20 MiB contract object: 20 ranges
  auto store =
      S3ObjectStore::Create(aws, FreshBucket(*aws), "objects", options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::unique_ptr<ObjectStore>(std::move(*store)) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(S3, ObjectStoreContract,
                         ::testing::Values(ObjectStoreFactory{"S3",
                                                              MakeS3Store}),
                         ObjectStoreContract::Name);

class S3StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(Moto(), nullptr)
        << "moto did not start: " << testing::MotoEnvironment::error();
    aws_ = SharedClient();
    ASSERT_NE(aws_, nullptr);
    bucket_ = FreshBucket(*aws_);
  }

  std::unique_ptr<S3ObjectStore> Store(S3StoreOptions options = {},
                                       std::shared_ptr<AwsClient> aws = {}) {
    auto store =
        S3ObjectStore::Create(aws ? aws : aws_, bucket_, "pre/fix", options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Uploads not completed nor aborted in the bucket.
  int OpenUploads() {
    AwsRequest r = S3Call("GET", "ListMultipartUploads", bucket_);
    r.query = {{"uploads", ""}};
    auto page = aws_->Send(r);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok()
               ? static_cast<int>(AwsXmlElements(page->body, "Upload").size())
               : -1;
  }

  std::string HeadHeader(const std::string& s3_key, const char* name) {
    auto head = aws_->Send(S3Call("HEAD", "HeadObject", bucket_, s3_key));
    EXPECT_TRUE(head.ok()) << head.status().ToString();
    return head.ok() ? head->Header(name) : "";
  }

  std::shared_ptr<AwsClient> aws_;
  std::string bucket_;
};

Status WriteBytes(ObjectWriter& out, uint64_t size) {
  std::string block(1 << 20, '\0');
  for (uint64_t done = 0; done < size;) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(block.size(), size - done));
    for (size_t i = 0; i < n; ++i)
      block[i] = static_cast<char>(((done + i) * 2654435761u) >> 13);
    CBPIPE_RETURN_IF_ERROR(out.Write(block.data(), n));
    done += n;
  }
  return OkStatus();
}

TEST_F(S3StoreTest, DescribeNamesBucketAndPrefix) {
  EXPECT_EQ(Store()->Describe(), "s3://" + bucket_ + "/pre/fix");
  auto root = S3ObjectStore::Create(aws_, bucket_, "");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ((*root)->Describe(), "s3://" + bucket_);
}

TEST_F(S3StoreTest, RefusesBadOptionsAndUrls) {
  S3StoreOptions small;
  small.part_size = 1u << 20;
  EXPECT_EQ(S3ObjectStore::Create(aws_, bucket_, "", small).status().code(),
            StatusCode::kInvalidArgument);
  S3StoreOptions sse;
  sse.sse = "rot13";
  EXPECT_EQ(S3ObjectStore::Create(aws_, bucket_, "", sse).status().code(),
            StatusCode::kInvalidArgument);
  sse.sse = "AES256";
  sse.kms_key_id = "k";
  EXPECT_EQ(S3ObjectStore::Create(aws_, bucket_, "", sse).status().code(),
            StatusCode::kInvalidArgument);
  for (int parallel : {0, 65}) {
    S3StoreOptions bad;
    bad.parallel_parts = parallel;
    EXPECT_EQ(S3ObjectStore::Create(aws_, bucket_, "", bad).status().code(),
              StatusCode::kInvalidArgument)
        << parallel;
  }
  std::string bucket, prefix;
  EXPECT_TRUE(ParseS3Url("s3://my-bucket/a/b/", &bucket, &prefix).ok());
  EXPECT_EQ(bucket, "my-bucket");
  EXPECT_EQ(prefix, "a/b");
  EXPECT_FALSE(ParseS3Url("s3://My_Bucket/a", &bucket, &prefix).ok());
  EXPECT_FALSE(ParseS3Url("s3://bucket/a//b", &bucket, &prefix).ok());
  EXPECT_FALSE(ParseS3Url("s3:///a", &bucket, &prefix).ok());
}

TEST_F(S3StoreTest, ObjectsLiveUnderThePrefix) {
  auto store = Store();
  auto out = store->Put("a/b.csv");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)->Write("xyz", 3).ok());
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ(HeadHeader("pre/fix/a/b.csv", "content-length"), "3");
}

TEST_F(S3StoreTest, MultipartUploadAboveThePartSize) {
  auto store = Store();  // 8 MiB parts
  constexpr uint64_t kSize = (8u << 20) * 2 + 12345;
  auto out = store->Put("big");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(WriteBytes(**out, kSize).ok());
  EXPECT_EQ(OpenUploads(), 1);  // started while writing, not at Commit
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ(OpenUploads(), 0);
  // A multipart object's ETag ends in -PARTS.
  EXPECT_NE(HeadHeader("pre/fix/big", "etag").find("-3"), std::string::npos);
  auto info = store->Head("big");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, kSize);
}

// CreateMultipartUpload and the first part to arrive go to moto; the
// second part to arrive fails with a 500; the rest go to moto.
std::vector<HttpStep> SecondPartFails() {
  return {HttpStep::Forward(), HttpStep::Forward(),
          HttpStep::Answer(500,
                           "<Error><Code>InternalError</Code><Message>"
                           "boom</Message></Error>")};
}

// Requests `method` on an upload (?uploadId=) the server saw: DELETE =
// AbortMultipartUpload, POST = CompleteMultipartUpload.
int UploadRequests(HttpFaultServer& server, const std::string& method) {
  int n = 0;
  for (const auto& r : server.requests())
    n += r.method == method && r.target.find("uploadId=") != std::string::npos;
  return n;
}

TEST_F(S3StoreTest, AFailedPartAbortsTheUploadAndLeavesNoObject) {
  // Parts one after another: create and part 1 go to moto; part 2 fails
  // with a 500 (no retries), failing the Write that sent it; then the abort
  // goes through.
  HttpFaultServer faults(SecondPartFails(), Moto()->port());
  ASSERT_TRUE(faults.Start().ok());
  S3StoreOptions sequential;
  sequential.parallel_parts = 1;
  auto store =
      Store(sequential, MotoClient(faults.endpoint(), /*max_attempts=*/1));
  auto out = store->Put("big");
  ASSERT_TRUE(out.ok());
  Status s = WriteBytes(**out, (8u << 20) * 3);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("UploadPart"), std::string::npos) << s.message();
  EXPECT_EQ((*out)->Write("x", 1).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*out)->Commit().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(OpenUploads(), 0);
  EXPECT_EQ(store->Head("big").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(UploadRequests(faults, "DELETE"), 1);  // AbortMultipartUpload
}

// Counts the calls of one operation in flight at once.
class CallsInFlight : public AwsCallObserver {
 public:
  explicit CallsInFlight(std::string operation)
      : operation_(std::move(operation)) {}
  std::unique_ptr<Call> Begin(const AwsCallRecord& call,
                              std::string*) override {
    if (call.operation != operation_) return nullptr;
    const int now = ++in_flight_;
    int seen = most_.load();
    while (now > seen && !most_.compare_exchange_weak(seen, now)) {
    }
    ++calls_;
    return std::make_unique<Ended>(this);
  }
  int most() const { return most_.load(); }
  int calls() const { return calls_.load(); }

 private:
  struct Ended : Call {
    explicit Ended(CallsInFlight* owner) : owner(owner) {}
    void End(const AwsCallRecord&) override { --owner->in_flight_; }
    CallsInFlight* owner;
  };
  const std::string operation_;
  std::atomic<int> in_flight_{0};
  std::atomic<int> most_{0};
  std::atomic<int> calls_{0};
};

// The bytes WriteBytes wrote, read back through `store`.
bool ReadsBackAsWritten(ObjectStore& store, const std::string& key,
                        uint64_t size) {
  auto in = store.Get(key);
  EXPECT_TRUE(in.ok()) << in.status().ToString();
  if (!in.ok()) return false;
  std::vector<char> buf(3 << 20);
  uint64_t done = 0;
  for (;;) {
    auto n = (*in)->Read(buf.data(), buf.size());
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok()) return false;
    if (*n == 0) break;
    for (size_t i = 0; i < *n; ++i) {
      if (buf[i] != static_cast<char>(((done + i) * 2654435761u) >> 13)) {
        ADD_FAILURE() << "byte " << done + i << " differs";
        return false;
      }
    }
    done += *n;
  }
  EXPECT_EQ(done, size);
  return done == size;
}

TEST_F(S3StoreTest, SendsPartsInParallelAndKeepsTheirOrder) {
  auto observer = std::make_shared<CallsInFlight>("UploadPart");
  S3StoreOptions options;
  options.part_size = 5u << 20;
  options.parallel_parts = 3;
  auto store = Store(options, MotoClient(Moto()->endpoint(), 4, observer));
  constexpr uint64_t kSize = (5u << 20) * 8 + 777;  // 9 parts
  auto out = store->Put("parallel");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(WriteBytes(**out, kSize).ok());
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ(observer->calls(), 9);
  EXPECT_GE(observer->most(), 2);  // overlapping...
  EXPECT_LE(observer->most(), 3);  // ...never more than parallel_parts
  EXPECT_EQ(OpenUploads(), 0);
  EXPECT_NE(HeadHeader("pre/fix/parallel", "etag").find("-9\""),
            std::string::npos);
  EXPECT_TRUE(ReadsBackAsWritten(*store, "parallel", kSize));
}

TEST_F(S3StoreTest, FetchesRangesAheadInParallel) {
  constexpr uint64_t kSize = (1u << 20) * 12 + 5;  // 13 ranges
  {
    auto out = Store()->Put("ranges");
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(WriteBytes(**out, kSize).ok());
    ASSERT_TRUE((*out)->Commit().ok());
  }
  auto observer = std::make_shared<CallsInFlight>("GetObject");
  S3StoreOptions options;
  options.read_chunk = 1u << 20;
  options.parallel_parts = 3;
  auto store = Store(options, MotoClient(Moto()->endpoint(), 4, observer));
  EXPECT_TRUE(ReadsBackAsWritten(*store, "ranges", kSize));
  EXPECT_EQ(observer->calls(), 13);
  EXPECT_GE(observer->most(), 2);  // overlapping...
  EXPECT_LE(observer->most(), 3);  // ...never more than parallel_parts
  // Dropping a reader in the middle joins its fetch threads.
  auto in = store->Get("ranges");
  ASSERT_TRUE(in.ok());
  char byte;
  auto n = (*in)->Read(&byte, 1);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1u);
}

TEST_F(S3StoreTest, AParallelReaderNeverMixesTwoVersions) {
  S3StoreOptions options;
  options.read_chunk = 1u << 20;
  options.parallel_parts = 2;
  auto store = Store(options);
  constexpr uint64_t kSize = (1u << 20) * 6;  // 6 ranges
  auto put = [&](uint64_t size) {
    auto out = store->Put("doc");
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(WriteBytes(**out, size).ok());
    ASSERT_TRUE((*out)->Commit().ok());
  };
  put(kSize);
  auto in = store->Get("doc");
  ASSERT_TRUE(in.ok());
  std::vector<char> buf(1u << 20);
  auto first = (*in)->Read(buf.data(), buf.size());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(*first, buf.size());
  put(kSize + 1);  // replaced while read: a new ETag
  // At most parallel_parts ranges were fetched ahead of the old version;
  // a later one fails rather than mixing in the new bytes.
  Status failed;
  for (int i = 0; i < 6 && failed.ok(); ++i)
    failed = (*in)->Read(buf.data(), buf.size()).status();
  EXPECT_EQ(failed.code(), StatusCode::kFailedPrecondition) << failed.ToString();
  EXPECT_NE(failed.message().find("changed while it was read"),
            std::string::npos)
      << failed.message();
  // And it stays failed.
  EXPECT_EQ((*in)->Read(buf.data(), buf.size()).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(S3StoreTest, AFailedParallelPartAbortsTheUploadAndLeavesNoObject) {
  // Create goes to moto; of the parts sent at once, the second to arrive
  // fails with a 500 (no retries); the rest go to moto. The failure comes
  // out of a later Write or the Commit; the upload is aborted, not
  // completed.
  HttpFaultServer faults(SecondPartFails(), Moto()->port());
  ASSERT_TRUE(faults.Start().ok());
  S3StoreOptions options;
  options.part_size = 5u << 20;
  options.parallel_parts = 4;
  auto store = Store(options, MotoClient(faults.endpoint(), 1));
  auto out = store->Put("big");
  ASSERT_TRUE(out.ok());
  Status s = WriteBytes(**out, (5u << 20) * 6 + 1);
  if (s.ok()) s = (*out)->Commit();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("UploadPart"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("boom"), std::string::npos) << s.message();
  EXPECT_EQ((*out)->Write("x", 1).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*out)->Commit().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(OpenUploads(), 0);
  EXPECT_EQ(store->Head("big").status().code(), StatusCode::kNotFound);
  auto listed = store->List("");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_TRUE(listed->empty());
  EXPECT_EQ(UploadRequests(faults, "DELETE"), 1);  // AbortMultipartUpload
  EXPECT_EQ(UploadRequests(faults, "POST"), 0);    // no Complete
}

TEST_F(S3StoreTest, DroppingAWriterWithPartsInFlightAbortsIt) {
  S3StoreOptions options;
  options.part_size = 5u << 20;
  options.parallel_parts = 4;
  auto store = Store(options);
  {
    auto out = store->Put("big");
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(WriteBytes(**out, (5u << 20) * 4 + 1).ok());
    EXPECT_EQ(OpenUploads(), 1);
  }  // joins the part threads, then aborts
  EXPECT_EQ(OpenUploads(), 0);
  EXPECT_EQ(store->Head("big").status().code(), StatusCode::kNotFound);
}

TEST_F(S3StoreTest, DroppingAnUnfinishedMultipartWriterAbortsIt) {
  auto store = Store();
  {
    auto out = store->Put("big");
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(WriteBytes(**out, (8u << 20) + 1).ok());
    EXPECT_EQ(OpenUploads(), 1);
  }
  EXPECT_EQ(OpenUploads(), 0);
  EXPECT_EQ(store->Head("big").status().code(), StatusCode::kNotFound);
}

TEST_F(S3StoreTest, AMissingBucketIsAClearError) {
  auto store = S3ObjectStore::Create(aws_, "no-such-bucket-here", "p");
  ASSERT_TRUE(store.ok());
  Status get = (*store)->Get("k").status();
  EXPECT_EQ(get.code(), StatusCode::kFailedPrecondition) << get.ToString();
  EXPECT_NE(get.message().find("bucket no-such-bucket-here does not exist"),
            std::string::npos)
      << get.message();
  EXPECT_EQ((*store)->List("").status().code(),
            StatusCode::kFailedPrecondition);
  auto out = (*store)->Put("k");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)->Write("x", 1).ok());
  EXPECT_EQ((*out)->Commit().code(), StatusCode::kFailedPrecondition);
}

TEST_F(S3StoreTest, SendsServerSideEncryptionHeaders) {
  S3StoreOptions options;
  options.sse = "AES256";
  auto store = Store(options);
  auto out = store->Put("small");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)->Write("abc", 3).ok());
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ(HeadHeader("pre/fix/small", "x-amz-server-side-encryption"),
            "AES256");
  out = store->Put("large");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(WriteBytes(**out, (8u << 20) + 10).ok());
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ(HeadHeader("pre/fix/large", "x-amz-server-side-encryption"),
            "AES256");
  ASSERT_TRUE(store->Copy("small", "copied").ok());
  EXPECT_EQ(HeadHeader("pre/fix/copied", "x-amz-server-side-encryption"),
            "AES256");

  options.sse = "aws:kms";
  options.kms_key_id = "alias/cbpipe-test";
  auto kms = Store(options);
  out = kms->Put("kms");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE((*out)->Write("abc", 3).ok());
  ASSERT_TRUE((*out)->Commit().ok());
  EXPECT_EQ(HeadHeader("pre/fix/kms", "x-amz-server-side-encryption"),
            "aws:kms");
  EXPECT_NE(
      HeadHeader("pre/fix/kms", "x-amz-server-side-encryption-aws-kms-key-id")
          .find("cbpipe-test"),
      std::string::npos);
}

TEST_F(S3StoreTest, ListsPastOneThousandKeys) {
  auto store = Store();
  constexpr int kKeys = 1003;
  for (int i = 0; i < kKeys; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "many/%05d", i);
    auto out = store->Put(key);
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE((*out)->Commit().ok());
  }
  auto keys = store->List("many/");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(keys->front(), "many/00000");
  EXPECT_EQ(keys->back(), "many/01002");
}

TEST_F(S3StoreTest, ContentAddressedPutLeavesNoTemporary) {
  auto store = Store();
  std::string path =
      (std::filesystem::temp_directory_path() / "cbpipe-s3-ca-XXXXXX").string();
  const int fd = ::mkstemp(path.data());
  ASSERT_GE(fd, 0);
  ::unlink(path.c_str());
  ASSERT_EQ(::write(fd, "hello", 5), 5);
  auto stored = store->PutContentAddressed("inputs/", fd);
  ::close(fd);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->key,
            "inputs/"
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  AwsRequest list = S3Call("GET", "ListObjectsV2", bucket_);
  list.query = {{"list-type", "2"}};
  auto page = aws_->Send(list);
  ASSERT_TRUE(page.ok());
  auto items = AwsXmlElements(page->body, "Contents");
  ASSERT_EQ(items.size(), 1u) << page->body;
  EXPECT_EQ(AwsXmlText(items[0], "Key"), "pre/fix/" + stored->key);
}

TEST_F(S3StoreTest, RemoveStaleTemporariesAbortsOldUploads) {
  // moto reports every upload as initiated 2010-11-10: stale here.
  auto store = Store();
  auto out = store->Put("big");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(WriteBytes(**out, (8u << 20) + 1).ok());
  EXPECT_EQ(OpenUploads(), 1);
  auto removed = store->RemoveStaleTemporaries();
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, 1);
  EXPECT_EQ(OpenUploads(), 0);
  EXPECT_FALSE((*out)->Commit().ok());  // the upload is gone
}

std::string IsoTime(int64_t seconds_ago) {
  const time_t t = ::time(nullptr) - seconds_ago;
  struct tm tm {};
  gmtime_r(&t, &tm);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
  return text;
}

TEST_F(S3StoreTest, RemoveStaleTemporariesKeepsWhatIsLessThanADayOld) {
  const std::string uploads =
      "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
      "<Upload><UploadId>fresh</UploadId><Key>pre/fix/a</Key><Initiated>" +
      IsoTime(3600) +
      "</Initiated></Upload><Upload><UploadId>old</UploadId><Key>pre/fix/b"
      "</Key><Initiated>" +
      IsoTime(2 * 86400) + "</Initiated></Upload></ListMultipartUploadsResult>";
  const std::string objects =
      "<ListBucketResult><IsTruncated>false</IsTruncated>"
      "<Contents><Key>pre/fix/in/.put-new.tmp</Key><LastModified>" +
      IsoTime(60) +
      "</LastModified></Contents><Contents><Key>pre/fix/in/.put-old.tmp</Key>"
      "<LastModified>" +
      IsoTime(2 * 86400) +
      "</LastModified></Contents><Contents><Key>pre/fix/in/old-object</Key>"
      "<LastModified>" +
      IsoTime(9 * 86400) + "</LastModified></Contents></ListBucketResult>";
  HttpFaultServer server({HttpStep::Answer(200, uploads),
                          HttpStep::Answer(204),  // abort "old"
                          HttpStep::Answer(200, objects),
                          HttpStep::Answer(204)});  // delete .put-old.tmp
  ASSERT_TRUE(server.Start().ok());
  auto store = Store({}, MotoClient(server.endpoint(), 1));
  auto removed = store->RemoveStaleTemporaries();
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, 2);
  std::vector<std::string> deletes;
  for (const auto& r : server.requests())
    if (r.method == "DELETE") deletes.push_back(r.target);
  ASSERT_EQ(deletes.size(), 2u);
  EXPECT_NE(deletes[0].find("/pre/fix/b?uploadId=old"), std::string::npos)
      << deletes[0];
  EXPECT_NE(deletes[1].find("/pre/fix/in/.put-old.tmp"), std::string::npos)
      << deletes[1];
}

// Counts every call, by operation.
class CallsByOperation : public AwsCallObserver {
 public:
  std::unique_ptr<Call> Begin(const AwsCallRecord& call,
                              std::string*) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_[call.operation];
    ++total_;
    return nullptr;
  }
  int count(const std::string& operation) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_.find(operation);
    return it == calls_.end() ? 0 : it->second;
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> calls_;
  int total_ = 0;
};

// A file of `size` bytes of WriteBytes' pattern, removed with the object.
class PatternFile {
 public:
  explicit PatternFile(uint64_t size) {
    std::string name =
        (std::filesystem::temp_directory_path() / "cbpipe-s3-putfile-XXXXXX")
            .string();
    const int fd = ::mkstemp(name.data());
    EXPECT_GE(fd, 0);
    path_ = name;
    Sha256 sha;
    std::string block;
    for (uint64_t done = 0; done < size;) {
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(1 << 20, size - done));
      block.resize(n);
      for (size_t i = 0; i < n; ++i)
        block[i] = static_cast<char>(((done + i) * 2654435761u) >> 13);
      EXPECT_EQ(::write(fd, block.data(), n), static_cast<ssize_t>(n));
      sha.Update(block.data(), n);
      done += n;
    }
    ::close(fd);
    sha256_ = *sha.FinishHex();
  }
  ~PatternFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  const std::string& sha256() const { return sha256_; }

 private:
  std::string path_;
  std::string sha256_;
};

TEST_F(S3StoreTest, PutFileIsOnePutObjectStreamedWithTheFilesSha256) {
  // Larger than a part: Put would send Create + 3 UploadPart + Complete.
  constexpr uint64_t kSize = (8u << 20) * 2 + 4321;
  PatternFile file(kSize);
  HttpFaultServer seen({}, Moto()->port());  // forwards all, records all
  ASSERT_TRUE(seen.Start().ok());
  auto calls = std::make_shared<CallsByOperation>();
  auto store = Store({}, MotoClient(seen.endpoint(), 4, calls));
  Status s = store->PutFile("batches/b1/visa.csv", file.path(), file.sha256());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(calls->count("PutObject"), 1);
  EXPECT_EQ(calls->total(), 1);
  auto requests = seen.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].Header("x-amz-content-sha256"), file.sha256());
  EXPECT_EQ(requests[0].Header("content-length"), std::to_string(kSize));
  EXPECT_TRUE(ReadsBackAsWritten(*store, "batches/b1/visa.csv", kSize));

  // Without the hash: the file is hashed first, still one request.
  s = store->PutFile("batches/b1/mc.csv", file.path());
  ASSERT_TRUE(s.ok()) << s.ToString();
  requests = seen.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().method, "PUT");
  EXPECT_EQ(requests.back().Header("x-amz-content-sha256"), file.sha256());
  EXPECT_EQ(calls->count("PutObject"), 2);
  EXPECT_EQ(calls->total(), 2 + calls->count("GetObject"));
  EXPECT_TRUE(ReadsBackAsWritten(*store, "batches/b1/mc.csv", kSize));
}

TEST_F(S3StoreTest, PutFileOfBytesThatDoNotMatchTheirSha256StoresNothing) {
  // moto does not check x-amz-content-sha256 (S3 does): the adapter holds
  // the last bytes back, so moto never gets the whole body either.
  constexpr uint64_t kSize = (3u << 20) + 5;
  PatternFile file(kSize);
  auto store = Store();
  ASSERT_TRUE(PutObjectBytes(*store, "batches/b1/visa.csv", "before").ok());
  const std::string wrong(64, 'b');
  Status s = store->PutFile("batches/b1/visa.csv", file.path(), wrong);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_EQ(*GetObjectBytes(*store, "batches/b1/visa.csv"), "before");
  EXPECT_EQ(store->PutFile("batches/b1/new.csv", file.path(), wrong).code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(store->Head("batches/b1/new.csv").status().code(),
            StatusCode::kNotFound);

  // What S3 answers to a body that does not match (not retried).
  HttpFaultServer s3({HttpStep::Answer(
      400,
      "<Error><Code>XAmzContentSHA256Mismatch</Code><Message>The provided "
      "'x-amz-content-sha256' header does not match what was computed."
      "</Message></Error>")});
  ASSERT_TRUE(s3.Start().ok());
  auto refused = Store({}, MotoClient(s3.endpoint(), 4));
  s = refused->PutFile("batches/b1/visa.csv", file.path(), file.sha256());
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_NE(s.message().find("XAmzContentSHA256Mismatch"), std::string::npos);
  EXPECT_EQ(s3.requests().size(), 1u);
}

TEST_F(S3StoreTest, ARetriedPutFileReadsTheFileAgain) {
  constexpr uint64_t kSize = (2u << 20) + 99;
  PatternFile file(kSize);
  HttpFaultServer faults(
      {HttpStep::Answer(500, "<Error><Code>InternalError</Code></Error>")},
      Moto()->port());
  ASSERT_TRUE(faults.Start().ok());
  auto store = Store({}, MotoClient(faults.endpoint(), 4));
  Status s = store->PutFile("batches/b1/visa.csv", file.path(), file.sha256());
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto requests = faults.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].body.size(), kSize);
  EXPECT_TRUE(ReadsBackAsWritten(*store, "batches/b1/visa.csv", kSize));
}

TEST_F(S3StoreTest, AFileAboveTheSinglePutLimitGoesInPartsReadFromIt) {
  auto calls = std::make_shared<CallsByOperation>();
  S3StoreOptions options;
  options.single_put_max = 1u << 20;  // small, for the test
  options.part_size = 5u << 20;
  options.parallel_parts = 3;
  options.sse = "AES256";
  auto store = Store(options, MotoClient(Moto()->endpoint(), 4, calls));
  constexpr uint64_t kSize = (5u << 20) * 3 + 777;  // 4 parts
  PatternFile file(kSize);
  Status s = store->PutFile("big", file.path(), file.sha256());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(calls->count("CreateMultipartUpload"), 1);
  EXPECT_EQ(calls->count("UploadPart"), 4);
  EXPECT_EQ(calls->count("CompleteMultipartUpload"), 1);
  EXPECT_EQ(calls->count("PutObject"), 0);
  EXPECT_EQ(OpenUploads(), 0);
  EXPECT_NE(HeadHeader("pre/fix/big", "etag").find("-4\""), std::string::npos);
  EXPECT_EQ(HeadHeader("pre/fix/big", "x-amz-server-side-encryption"),
            "AES256");
  EXPECT_TRUE(ReadsBackAsWritten(*store, "big", kSize));

  // Under the limit: one PutObject, with the same encryption.
  PatternFile small(1000);
  ASSERT_TRUE(store->PutFile("small", small.path()).ok());
  EXPECT_EQ(calls->count("PutObject"), 1);
  EXPECT_EQ(HeadHeader("pre/fix/small", "x-amz-server-side-encryption"),
            "AES256");

  // A caller's hash that is wrong: checked before any upload starts.
  EXPECT_EQ(store->PutFile("other", file.path(), std::string(64, 'c')).code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(calls->count("CreateMultipartUpload"), 1);
  EXPECT_EQ(store->Head("other").status().code(), StatusCode::kNotFound);

  S3StoreOptions over;
  over.single_put_max = (5ull << 30) + 1;
  EXPECT_EQ(S3ObjectStore::Create(aws_, bucket_, "", over).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(S3StoreTest, AFailedFilePartAbortsTheUploadAndLeavesNoObject) {
  HttpFaultServer faults(SecondPartFails(), Moto()->port());
  ASSERT_TRUE(faults.Start().ok());
  S3StoreOptions options;
  options.single_put_max = 1u << 20;
  options.part_size = 5u << 20;
  options.parallel_parts = 1;
  auto store = Store(options, MotoClient(faults.endpoint(), 1));
  PatternFile file((5u << 20) * 3);
  Status s = store->PutFile("big", file.path());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("UploadPart"), std::string::npos) << s.message();
  EXPECT_EQ(OpenUploads(), 0);
  EXPECT_EQ(store->Head("big").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(UploadRequests(faults, "DELETE"), 1);  // AbortMultipartUpload
  EXPECT_EQ(UploadRequests(faults, "POST"), 0);    // never completed
}

TEST_F(S3StoreTest, ExpiredCredentialsAreUnauthenticated) {
  // (A HEAD answer has no body to name the error: GET is checked.)
  // A server that answers every attempt with ExpiredToken.
  std::vector<HttpStep> script;
  for (int i = 0; i < 4; ++i)
    script.push_back(HttpStep::Answer(
        400,
        "<Error><Code>ExpiredToken</Code><Message>The provided token "
        "has expired.</Message></Error>"));
  HttpFaultServer server(script);
  ASSERT_TRUE(server.Start().ok());
  auto store = Store({}, MotoClient(server.endpoint(), 1));
  Status get = store->Get("k").status();
  EXPECT_EQ(get.code(), StatusCode::kUnauthenticated) << get.ToString();
  EXPECT_NE(get.message().find("ExpiredToken"), std::string::npos);
}

}  // namespace
}  // namespace cbpipe
