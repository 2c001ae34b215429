// AwsSecretsManagerStore against moto: the SecretStore contract, the cache
// and its TTL, Invalidate after a rotation, and the errors (missing secret
// or key as moto and AWS answer them, throttling and 500s, credentials
// missing or expired) through a fault-injecting server in front of moto.
#include "secrets/aws_secrets_manager.h"

#include <atomic>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "secrets/secret_store_contract.h"
#include "servers/http_fault_server.h"
#include "servers/moto_environment.h"
#include "servers/moto_server.h"

namespace cbpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::HttpFaultServer;
using testing::HttpStep;
using testing::MotoServer;
using json = nlohmann::json;

// One moto for the binary; every test (and contract test) resets it.
const auto* const kMotoEnvironment = ::testing::AddGlobalTestEnvironment(
    new testing::MotoEnvironment);


FakeEnv* RetryEnv() {
  static FakeEnv env;  // retry waits pass at once
  return &env;
}

std::shared_ptr<AwsClient> MakeClient(
    const std::string& endpoint,
    std::shared_ptr<AwsCredentialsProvider> credentials = nullptr) {
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["secretsmanager"] = endpoint;
  options.env = RetryEnv();
  options.request_timeout_seconds = 30;
  if (!credentials) {
    credentials = MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost());
  }
  auto client = AwsClient::Create(options, std::move(credentials));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::shared_ptr<AwsClient>(std::move(*client))
                     : nullptr;
}

// Test set-up calls straight to moto.
void CreateSecret(const std::string& name, const std::string& value) {
  auto client = MakeClient(testing::MotoEnvironment::server()->endpoint());
  auto r = client->CallJson("secretsmanager", "secretsmanager.CreateSecret",
                            json({{"Name", name}, {"SecretString", value}})
                                .dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

void PutSecretValue(const std::string& name, const std::string& value) {
  auto client = MakeClient(testing::MotoEnvironment::server()->endpoint());
  auto r = client->CallJson(
      "secretsmanager", "secretsmanager.PutSecretValue",
      json({{"SecretId", name}, {"SecretString", value}}).dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

std::string UniqueName(const std::string& id) {
  static std::atomic<int> n{0};
  return "cbpipe/contract-" + std::to_string(++n) + "-" + id;
}

// --- The contract over moto ------------------------------------------------

std::unique_ptr<SecretStore> MakeOnMoto() {
  if (testing::MotoEnvironment::server() == nullptr) {
    ADD_FAILURE() << "moto did not start: " << testing::MotoEnvironment::error();
    return nullptr;
  }
  EXPECT_TRUE(testing::MotoEnvironment::server()->Reset().ok());
  return std::make_unique<AwsSecretsManagerStore>(
      MakeClient(testing::MotoEnvironment::server()->endpoint()));
}

// The whole SecretString is the value.
std::string DefineWhole(SecretStore&, const std::string&,
                        const std::string& id, const std::string& value) {
  const std::string name = UniqueName(id);
  CreateSecret(name, value);
  return "aws-sm:" + name;
}

// One key of a JSON secret, as a card company's credentials are kept.
std::string DefineJsonKey(SecretStore&, const std::string&,
                          const std::string& id, const std::string& value) {
  const std::string name = UniqueName(id);
  CreateSecret(name, json({{"username", "visa"}, {id, value}}).dump());
  return "aws-sm:" + name + "#" + id;
}

INSTANTIATE_TEST_SUITE_P(
    Adapters, SecretStoreContract,
    ::testing::Values(
        SecretStoreFactory{"SecretsManagerWhole", MakeOnMoto, DefineWhole,
                           DefineJsonKey,
                           [](const std::string&) {
                             return std::string("aws-sm:cbpipe/never-made");
                           }},
        SecretStoreFactory{"SecretsManagerJsonKey", MakeOnMoto, DefineJsonKey,
                           DefineWhole,
                           [](const std::string&) {
                             return std::string(
                                 "aws-sm:cbpipe/never-made#password");
                           }}),
    SecretStoreContract::Name);

// --- Adapter-specific ------------------------------------------------------

class AwsSecretsManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(testing::MotoEnvironment::server(), nullptr) << "moto did not start: " << testing::MotoEnvironment::error();
    ASSERT_TRUE(testing::MotoEnvironment::server()->Reset().ok());
  }
  std::unique_ptr<AwsSecretsManagerStore> Store(const std::string& endpoint,
                                                int64_t ttl_ms = 300'000) {
    return std::make_unique<AwsSecretsManagerStore>(
        MakeClient(endpoint),
        AwsSecretsManagerOptions{.cache_ttl_ms = ttl_ms, .env = &clock_});
  }
  FakeEnv clock_;
};

TEST(AwsSecretReferenceTest, Parses) {
  auto r = ParseAwsSecretReference("aws-sm:prod/visa#password");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->secret_id, "prod/visa");
  EXPECT_EQ(r->json_key, "password");
  const std::string arn =
      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:visa-AbCdEf";
  r = ParseAwsSecretReference("aws-sm:" + arn);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->secret_id, arn);
  EXPECT_EQ(r->json_key, "");
  for (const char* bad : {"aws-sm:", "aws-sm:#key", "aws-sm:id#", "env:X",
                          "s3cr3t-pasted"}) {
    auto b = ParseAwsSecretReference(bad);
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ParseAwsSecretReference("s3cr3t-pasted").status().message(),
              Not(HasSubstr("s3cr3t")));
}

TEST_F(AwsSecretsManagerTest, CachedForTheTtlThenReadAgain) {
  CreateSecret("visa", R"({"password":"old-pw","user":"visa"})");
  auto store = Store(testing::MotoEnvironment::server()->endpoint(), 300'000);
  EXPECT_EQ(store->Resolve("aws-sm:visa#password")->value(), "old-pw");
  EXPECT_EQ(store->Resolve("aws-sm:visa#user")->value(), "visa");
  EXPECT_EQ(store->fetches(), 1);  // one secret, one call for both keys
  PutSecretValue("visa", R"({"password":"new-pw","user":"visa"})");
  clock_.AdvanceMs(299'000);
  EXPECT_EQ(store->Resolve("aws-sm:visa#password")->value(), "old-pw");
  EXPECT_EQ(store->fetches(), 1);
  clock_.AdvanceMs(1'000);  // the TTL has passed
  EXPECT_EQ(store->Resolve("aws-sm:visa#password")->value(), "new-pw");
  EXPECT_EQ(store->fetches(), 2);
}

TEST_F(AwsSecretsManagerTest, InvalidatePicksUpARotatedSecretAtOnce) {
  CreateSecret("visa", R"({"password":"old-pw"})");
  auto store = Store(testing::MotoEnvironment::server()->endpoint());
  EXPECT_EQ(store->Resolve("aws-sm:visa#password")->value(), "old-pw");
  PutSecretValue("visa", R"({"password":"new-pw"})");
  EXPECT_EQ(store->Resolve("aws-sm:visa#password")->value(), "old-pw");
  EXPECT_TRUE(store->Invalidate("aws-sm:visa#password"));
  EXPECT_FALSE(store->Invalidate("aws-sm:visa#password"));  // nothing left
  EXPECT_FALSE(store->Invalidate("env:HOME"));
  EXPECT_EQ(store->Resolve("aws-sm:visa#password")->value(), "new-pw");
  EXPECT_EQ(store->fetches(), 2);
}

TEST_F(AwsSecretsManagerTest, KeyFileFollowsTheRotation) {
  CreateSecret("key", R"({"private_key":"KEY-ONE\n"})");
  auto store = Store(testing::MotoEnvironment::server()->endpoint());
  auto path = store->KeyFilePath("aws-sm:key#private_key");
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  PutSecretValue("key", R"({"private_key":"KEY-TWO\n"})");
  store->Invalidate("aws-sm:key#private_key");
  auto again = store->KeyFilePath("aws-sm:key#private_key");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *path);  // one file per reference, rewritten
  std::ifstream in(*again);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "KEY-TWO\n");
}

TEST_F(AwsSecretsManagerTest, MissingKeyAndNonJsonNeverShowTheValue) {
  CreateSecret("json", R"({"password":"Hidden-Pw-1"})");
  CreateSecret("plain", "Hidden-Plain-2");
  auto store = Store(testing::MotoEnvironment::server()->endpoint());
  auto missing = store->Resolve("aws-sm:json#username");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("username"));
  EXPECT_THAT(missing.status().message(), Not(HasSubstr("Hidden-Pw-1")));
  auto not_json = store->Resolve("aws-sm:plain#password");
  EXPECT_EQ(not_json.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(not_json.status().message(), Not(HasSubstr("Hidden")));
  EXPECT_EQ(store->Resolve("aws-sm:plain")->value(), "Hidden-Plain-2");
}

TEST_F(AwsSecretsManagerTest, MissingSecretIsNotFoundAsMotoAndAwsSayIt) {
  // moto: HTTP 404.
  auto store = Store(testing::MotoEnvironment::server()->endpoint());
  auto moto = store->Resolve("aws-sm:nope#password");
  EXPECT_EQ(moto.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(moto.status().message(), HasSubstr("aws-sm:nope#password"));
  // AWS: HTTP 400 ResourceNotFoundException.
  HttpFaultServer aws({HttpStep::Answer(
      400,
      R"({"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."})",
      {{"Content-Type", "application/x-amz-json-1.1"},
       {"x-amzn-RequestId", "req-1234"}})});
  ASSERT_TRUE(aws.Start().ok());
  auto real = Store(aws.endpoint())->Resolve("aws-sm:nope#password");
  EXPECT_EQ(real.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(real.status().message(), HasSubstr("aws-sm:nope#password"));
  EXPECT_THAT(real.status().message(), HasSubstr("ResourceNotFoundException"));
  EXPECT_EQ(aws.requests().size(), 1u);  // not retried
}

TEST_F(AwsSecretsManagerTest, ThrottlingIsRetriedThen500sGiveUp) {
  CreateSecret("visa", R"({"password":"pw"})");
  const std::string throttled =
      R"({"__type":"ThrottlingException","message":"Rate exceeded"})";
  HttpFaultServer flaky({HttpStep::Answer(400, throttled),
                         HttpStep::Answer(500, ""), HttpStep::Forward()},
                        testing::MotoEnvironment::server()->port());
  ASSERT_TRUE(flaky.Start().ok());
  auto got = Store(flaky.endpoint())->Resolve("aws-sm:visa#password");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->value(), "pw");
  EXPECT_EQ(flaky.requests().size(), 3u);

  HttpFaultServer down({HttpStep::Answer(500, ""), HttpStep::Answer(500, ""),
                        HttpStep::Answer(500, ""), HttpStep::Answer(500, ""),
                        HttpStep::Answer(500, "")});
  ASSERT_TRUE(down.Start().ok());
  auto failed = Store(down.endpoint())->Resolve("aws-sm:visa#password");
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(down.requests().size(), 4u);  // the client's max_attempts
}

TEST_F(AwsSecretsManagerTest, CredentialsMissingOrExpired) {
  CreateSecret("visa", R"({"password":"pw"})");
  auto none = std::make_shared<AwsStaticCredentials>(AwsCredentials{});
  AwsSecretsManagerStore no_keys(MakeClient(testing::MotoEnvironment::server()->endpoint(), none));
  EXPECT_EQ(no_keys.Resolve("aws-sm:visa#password").status().code(),
            StatusCode::kUnauthenticated);

  const std::string expired =
      R"({"__type":"ExpiredTokenException","message":"The security token included in the request is expired"})";
  HttpFaultServer aws(
      {HttpStep::Answer(400, expired), HttpStep::Answer(400, expired)});
  ASSERT_TRUE(aws.Start().ok());
  auto got = Store(aws.endpoint())->Resolve("aws-sm:visa#password");
  EXPECT_EQ(got.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(got.status().message(), HasSubstr("ExpiredToken"));
}

}  // namespace
}  // namespace cbpipe
