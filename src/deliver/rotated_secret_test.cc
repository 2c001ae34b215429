// A card company's credentials in AWS Secrets Manager (moto) are rotated
// while cbpipe holds the old ones in its cache: the next delivery's login
// is refused, MakeTransport's transport invalidates the cached secret,
// reads the rotated one and delivers, without a restart. Over SFTP (a
// private key) and FTPS (a password).
#include <memory>
#include <string>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "deliver/deliverer.h"
#include "deliver/local_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/in_memory_ledger.h"
#include "nlohmann/json.hpp"
#include "secrets/aws_secrets_manager.h"
#include "servers/moto_environment.h"
#include "servers/moto_server.h"
#include "servers/server_fixture.h"

namespace cbpipe {
namespace {

using ::cbpipe::testing::Kind;
using ::cbpipe::testing::KindName;
using ::cbpipe::testing::MotoServer;
using ::cbpipe::testing::ReadAll;
using ::cbpipe::testing::ServerTest;
using ::cbpipe::testing::WriteRandomFile;
using json = nlohmann::json;

const auto* const kMotoEnvironment = ::testing::AddGlobalTestEnvironment(
    new testing::MotoEnvironment);


class RotatedSecretTest : public ServerTest,
                          public ::testing::WithParamInterface<Kind> {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_NE(testing::MotoEnvironment::server(), nullptr) << "moto did not start: " << testing::MotoEnvironment::error();
    ASSERT_TRUE(testing::MotoEnvironment::server()->Reset().ok());
    AwsClientOptions options;
    options.region = "us-east-1";
    options.endpoints["secretsmanager"] = testing::MotoEnvironment::server()->endpoint();
    options.env = &env_;
    auto client = AwsClient::Create(
        options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    aws_ = std::move(*client);
    secrets_ = std::make_unique<AwsSecretsManagerStore>(
        aws_, AwsSecretsManagerOptions{.env = &env_});
    StartServer(GetParam());
    dest_.retry.max_attempts = 1;
    if (GetParam() == Kind::kSftp) {
      key_ = "private_key";
      wrong_ = ReadAll(sftp_->unknown_key_path());
      right_ = ReadAll(sftp_->client_key_path());
      dest_.private_key_ref = "aws-sm:cbpipe/visa#private_key";
    } else {
      key_ = "password";
      wrong_ = "the-old-password";
      right_ = ftp_->password();
      dest_.password_ref = "aws-sm:cbpipe/visa#password";
    }
  }

  void SetSecret(const std::string& action, const std::string& value) {
    json body = {{action == "CreateSecret" ? "Name" : "SecretId",
                  "cbpipe/visa"},
                 {"SecretString", json({{"user", "visa"}, {key_, value}})
                                      .dump()}};
    auto r = aws_->CallJson("secretsmanager", "secretsmanager." + action,
                            body.dump());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  const std::string& Ref() const {
    return GetParam() == Kind::kSftp ? dest_.private_key_ref
                                     : dest_.password_ref;
  }
  DeliveryResult Deliver(const std::string& name) {
    const std::string path = local_ + "/" + name;
    WriteRandomFile(path, 5000, 7);
    auto transport = MakeTransport(dest_, secrets_.get());
    EXPECT_TRUE(transport.ok()) << transport.status().ToString();
    if (!transport.ok()) return {};
    FileDeliverer d(dest_, transport->get(), &ledger_, &env_);
    return d.Deliver({path, name, 5000, *Sha256File(path), "in1-b001"});
  }

  FakeEnv env_{1'700'000'000'000};
  std::shared_ptr<AwsClient> aws_;
  std::unique_ptr<AwsSecretsManagerStore> secrets_;
  InMemoryDeliveryLedger ledger_{&env_};
  std::string key_, wrong_, right_;
};

TEST_P(RotatedSecretTest, ARefusedLoginReadsTheRotatedSecretOnceAndDelivers) {
  // cbpipe read the secret before it was rotated: the cache has the old one.
  SetSecret("CreateSecret", wrong_);
  ASSERT_TRUE(secrets_->Resolve(Ref()).ok());
  SetSecret("PutSecretValue", right_);

  DeliveryResult r = Deliver("visa_001.csv");
  ASSERT_EQ(r.outcome, DeliveryOutcome::kDelivered) << r.error.ToString();
  EXPECT_EQ(ReadAll(Remote("in/visa_001.csv")),
            ReadAll(local_ + "/visa_001.csv"));
  EXPECT_EQ(secrets_->fetches(), 2);  // the first read and one refresh
  // Later deliveries use the refreshed cache: no more calls.
  ASSERT_EQ(Deliver("visa_002.csv").outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(secrets_->fetches(), 2);
}

TEST_P(RotatedSecretTest, StillRefusedAfterTheRefreshFailsWithoutLooping) {
  SetSecret("CreateSecret", wrong_);
  ASSERT_TRUE(secrets_->Resolve(Ref()).ok());
  DeliveryResult r = Deliver("visa_001.csv");
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(r.error.code(), StatusCode::kUnauthenticated)
      << r.error.ToString();
  EXPECT_EQ(secrets_->fetches(), 2);
  EXPECT_THAT(r.error.message(), ::testing::Not(::testing::HasSubstr(
                                     GetParam() == Kind::kSftp
                                         ? std::string("PRIVATE KEY")
                                         : wrong_)));
}

INSTANTIATE_TEST_SUITE_P(Servers, RotatedSecretTest,
                         ::testing::Values(Kind::kSftp, Kind::kFtpsExplicit),
                         [](const auto& info) {
                           return KindName(info.param);
                         });

}  // namespace
}  // namespace cbpipe
