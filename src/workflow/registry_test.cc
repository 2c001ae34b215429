#include "workflow/registry.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("registry_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

Status PutString(ObjectStore& store, const std::string& key,
                 const std::string& bytes) {
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> out, store.Put(key));
  CBPIPE_RETURN_IF_ERROR(out->Write(bytes.data(), bytes.size()));
  return out->Commit();
}

TEST_F(RegistryTest, FileUrlOpensTheFolder) {
  // A path with characters a URL must encode.
  const fs::path folder = root_ / "my objects%?#";
  StatusOr<std::string> url = FileUrl(folder.string());
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(*url, "file://" + root_.string() + "/my%20objects%25%3F%23");
  StatusOr<std::unique_ptr<ObjectStore>> store = OpenObjectStore(*url);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->Describe(), "file://" + folder.string());
  ASSERT_TRUE(PutString(**store, "inputs/a", "hello").ok());
  std::ifstream in(folder / "inputs/a");
  std::string text;
  in >> text;
  EXPECT_EQ(text, "hello");
  EXPECT_EQ(FileUrl("relative/path").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, FileUrlNeedsAnAbsolutePathAndNoHostOrQuery) {
  for (const char* bad : {"file://", "file://host/data", "file://relative",
                          "file:///data?x=1", "file:///data#frag",
                          "file:///da%2", "file:///da%zz", "file:/data",
                          "/data", "", "://x"}) {
    StatusOr<std::unique_ptr<ObjectStore>> store = OpenObjectStore(bad);
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(RegistryTest, MemoryStoresAreNewAndEmptyEachTime) {
  auto a = OpenObjectStore("memory://");
  auto b = OpenObjectStore("MEMORY://");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->Describe(), "memory://");
  ASSERT_TRUE(PutString(**a, "k", "v").ok());
  EXPECT_TRUE(*(*a)->Exists("k"));
  EXPECT_FALSE(*(*b)->Exists("k"));
  EXPECT_EQ(OpenObjectStore("memory://name").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, S3UrlOpensAnS3StoreOnTheSharedClient) {
  AwsOptions aws;
  aws.region = "us-east-1";
  aws.endpoints["s3"] = "http://127.0.0.1:9";
  StatusOr<std::unique_ptr<ObjectStore>> store =
      OpenObjectStore("s3://my-bucket/raw/in?sse=aws:kms&kms_key_id=k1", aws);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->Describe(), "s3://my-bucket/raw/in");
  store = OpenObjectStore("s3://my-bucket", aws);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->Describe(), "s3://my-bucket");
  store = OpenObjectStore("s3://my-bucket/p?part_size_mib=16&parallel_parts=8",
                          aws);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  // One client per distinct [aws] table.
  StatusOr<std::shared_ptr<AwsClient>> a = AwsClientFor(aws);
  StatusOr<std::shared_ptr<AwsClient>> b = AwsClientFor(aws);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  AwsOptions other = aws;
  other.endpoints["s3"] = "http://127.0.0.1:10";
  StatusOr<std::shared_ptr<AwsClient>> c = AwsClientFor(other);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->get(), c->get());

  for (const char* bad :
       {"s3://", "s3://Bad_Bucket/x", "s3://b/x", "s3://bucket/a//b",
        "s3://bucket/p?sse=rot13", "s3://bucket/p?part_size_mib=1",
        "s3://bucket/p?kms_key_id=k", "s3://bucket/p?acl=public",
        "s3://bucket/p?parallel_parts=0", "s3://bucket/p?parallel_parts=65",
        "s3://bucket/p?parallel_parts=four"}) {
    EXPECT_EQ(OpenObjectStore(bad, aws).status().code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
  StatusOr<std::unique_ptr<ObjectStore>> leak =
      OpenObjectStore("s3://AKIAKEY:hunter2@bucket/p", aws);
  ASSERT_FALSE(leak.ok());
  EXPECT_THAT(leak.status().message(), Not(HasSubstr("hunter2")));
}

TEST_F(RegistryTest, UnknownSchemeNamesItAndTheKnownOnes) {
  StatusOr<std::unique_ptr<ObjectStore>> store =
      OpenObjectStore("gs://AKIAKEY:hunter2@bucket/prefix?token=t0k");
  ASSERT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  const std::string message = store.status().message();
  EXPECT_THAT(message, HasSubstr("\"gs\""));
  EXPECT_THAT(message, HasSubstr("s3://"));
  EXPECT_THAT(message, HasSubstr("file://"));
  EXPECT_THAT(message, HasSubstr("memory://"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2")));
  EXPECT_THAT(message, Not(HasSubstr("t0k")));

  StatusOr<std::unique_ptr<SecretStore>> secrets =
      OpenSecretStore("vault://x");
  ASSERT_EQ(secrets.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(secrets.status().message(), HasSubstr("\"vault\""));
  EXPECT_THAT(secrets.status().message(), HasSubstr("env+file://"));

  StatusOr<std::unique_ptr<Queue>> queue = OpenQueue("amqp://broker/inputs");
  ASSERT_EQ(queue.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(queue.status().message(), HasSubstr("\"amqp\""));
  EXPECT_THAT(queue.status().message(), HasSubstr("sqlite://"));
  // sqs:// takes a queue name and nothing else.
  for (const char* bad : {"sqs://", "sqs://inputs/more", "sqs://inputs?x=1"}) {
    EXPECT_EQ(OpenQueue(bad).status().code(), StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST_F(RegistryTest, SecretStores) {
  auto env_file = OpenSecretStore("env+file://");
  ASSERT_TRUE(env_file.ok()) << env_file.status().ToString();
  ::setenv("CBPIPE_REGISTRY_TEST", "from-env", 1);
  EXPECT_EQ((*env_file)->Resolve("env:CBPIPE_REGISTRY_TEST")->value(),
            "from-env");
  ::unsetenv("CBPIPE_REGISTRY_TEST");

  auto memory = OpenSecretStore("memory://");
  ASSERT_TRUE(memory.ok());
  EXPECT_EQ((*memory)->Resolve("env:HOME").status().code(),
            StatusCode::kNotFound);  // its own secrets only, none yet
  EXPECT_EQ(OpenSecretStore("env+file:///etc").status().code(),
            StatusCode::kInvalidArgument);
}

// Both claim ports: sqlite:// shares the file between openers (a second
// opener sees the first's claim), memory:// is new at each open.
TEST_F(RegistryTest, RunStoreAndDeliveryLedger) {
  FakeEnv env;
  const std::string url =
      "sqlite://" + FileUrl((root_ / "state.db").string())->substr(7);
  auto runs = OpenRunStore(url, &env);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  RunRecord run;
  run.run_id = "r1";
  ASSERT_TRUE(*(*runs)->CreateIfAbsent(run));
  ASSERT_TRUE(*(*runs)->Claim("r1", "w1", 60'000));
  auto again = OpenRunStore(url, &env);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*(*again)->Claim("r1", "w2", 60'000));
  auto memory = OpenRunStore("memory://", &env);
  ASSERT_TRUE(memory.ok());
  EXPECT_EQ((*memory)->Get("r1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(OpenRunStore(url + "?queue=x", &env).status().code(),
            StatusCode::kInvalidArgument);
  // dynamodb:// takes a table name only (the region is [aws]'s):
  // registry_dynamodb_test opens real ones on moto.
  auto with_region = OpenRunStore("dynamodb://eu-west-1/runs", &env);
  EXPECT_EQ(with_region.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(with_region.status().message()),
              HasSubstr("table name"));
  EXPECT_THAT(
      std::string(OpenRunStore("dynamo://runs", &env).status().message()),
      HasSubstr("dynamodb"));

  const std::string ledger_url =
      "sqlite://" + FileUrl((root_ / "ledger.db").string())->substr(7);
  auto ledger = OpenDeliveryLedger(ledger_url, &env);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  ASSERT_TRUE(*(*ledger)->ClaimDelivery("visa", "f.csv", "w1", 60'000));
  auto other = OpenDeliveryLedger(ledger_url, &env);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(*(*other)->ClaimDelivery("visa", "f.csv", "w2", 60'000));
  auto fresh = OpenDeliveryLedger("memory://", &env);
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(*(*fresh)->ClaimDelivery("visa", "f.csv", "w2", 60'000));
  EXPECT_EQ(OpenDeliveryLedger("memory://x", &env).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenDeliveryLedger(*FileUrl((root_ / "l.db").string()), &env)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, SqliteQueue) {
  const std::string db = (root_ / "state db.sqlite").string();
  QueueOptions options;
  options.max_receive_count = 2;
  StatusOr<std::unique_ptr<Queue>> queue =
      OpenQueue(*FileUrl(db) + "?queue=inputs", options);
  // file:// is no queue scheme.
  EXPECT_EQ(queue.status().code(), StatusCode::kInvalidArgument);

  const std::string url =
      "sqlite://" + FileUrl(db)->substr(7) + "?queue=inputs";
  queue = OpenQueue(url, options);
  ASSERT_TRUE(queue.ok()) << queue.status().ToString();
  ASSERT_TRUE((*queue)->Send("hello").ok());
  EXPECT_TRUE(fs::exists(db));
  // A second opener of the same URL sees the same queue.
  StatusOr<std::unique_ptr<Queue>> again = OpenQueue(url, options);
  ASSERT_TRUE(again.ok());
  auto got = (*again)->Receive(10, 60'000);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "hello");
  // Another queue of the same file is another queue.
  auto other = OpenQueue("sqlite://" + FileUrl(db)->substr(7) +
                         "?queue=deliveries");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE((*other)->Receive(10, 60'000)->empty());

  for (const std::string& bad :
       {"sqlite://" + FileUrl(db)->substr(7),
        "sqlite://" + FileUrl(db)->substr(7) + "?queue=",
        "sqlite://" + FileUrl(db)->substr(7) + "?queue=a&color=red",
        "sqlite://" + FileUrl(db)->substr(7) + "?queue=a&queue=b",
        std::string("sqlite://host/state.db?queue=a"),
        std::string("sqlite://relative.db?queue=a"), std::string("memory://")}) {
    EXPECT_EQ(OpenQueue(bad).status().code(), StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(AdapterUrlTest, SplitsAndDecodes) {
  StatusOr<AdapterUrl> u =
      ParseAdapterUrl("SQLite://h%41st/a%20b/c?x=1&y=%3D&z", "test");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->scheme, "sqlite");
  EXPECT_EQ(u->host, "hAst");
  EXPECT_EQ(u->path, "/a b/c");
  EXPECT_EQ(u->params, (std::map<std::string, std::string>{
                           {"x", "1"}, {"y", "="}, {"z", ""}}));
  EXPECT_FALSE(ParseAdapterUrl("no scheme", "test").ok());
  EXPECT_FALSE(ParseAdapterUrl("a b://x", "test").ok());
}

}  // namespace
}  // namespace cbpipe
