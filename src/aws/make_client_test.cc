#include "aws/make_client.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

namespace cbpipe {
namespace {

AwsHost HostWith(std::map<std::string, std::string> env) {
  AwsHost host;
  host.getenv = [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  host.home_dir = "/nonexistent-home";
  return host;
}

TEST(MakeAwsClientTest, MapsTheAwsTableIntoTheClient) {
  AwsOptions options;
  options.region = "eu-west-1";
  options.endpoints["s3"] = "http://127.0.0.1:5000";
  options.s3_addressing = AwsS3Addressing::kPathStyle;
  options.connect_timeout_seconds = 3;
  options.request_timeout_seconds = 40;
  options.idle_timeout_seconds = 7;
  StatusOr<std::shared_ptr<AwsClient>> client =
      MakeAwsClient(options, HostWith({}));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  const AwsClientOptions& o = (*client)->options();
  EXPECT_EQ(o.region, "eu-west-1");
  EXPECT_EQ((*client)->EndpointUrl("s3"), "http://127.0.0.1:5000");
  EXPECT_EQ((*client)->EndpointUrl("sqs"),
            "https://sqs.eu-west-1.amazonaws.com");
  EXPECT_EQ(o.s3_addressing, AwsS3Addressing::kPathStyle);
  EXPECT_EQ(o.connect_timeout_seconds, 3);
  EXPECT_EQ(o.request_timeout_seconds, 40);
  EXPECT_EQ(o.idle_timeout_seconds, 7);
  EXPECT_EQ(o.ca_file, "");  // libcurl's built-in CA path
}

TEST(MakeAwsClientTest, AwsCaBundleNamesTheCaFile) {
  StatusOr<std::shared_ptr<AwsClient>> client = MakeAwsClient(
      AwsOptions{}, HostWith({{"AWS_REGION", "us-east-1"},
                              {"AWS_CA_BUNDLE", "/etc/pki/tls/certs/ca-bundle.crt"}}));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ((*client)->options().ca_file, "/etc/pki/tls/certs/ca-bundle.crt");
}

TEST(MakeAwsClientTest, TheRegionComesFromTheEnvironmentWhenNotSet) {
  StatusOr<std::shared_ptr<AwsClient>> client =
      MakeAwsClient(AwsOptions{}, HostWith({{"AWS_REGION", "ap-south-1"}}));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ((*client)->options().region, "ap-south-1");
}

TEST(MakeAwsClientTest, NoRegionOrBadOptionsAreInvalidArgument) {
  EXPECT_EQ(MakeAwsClient(AwsOptions{}, HostWith({})).status().code(),
            StatusCode::kInvalidArgument);
  AwsOptions options;
  options.region = "us-east-1";
  options.idle_timeout_seconds = 0;
  EXPECT_EQ(MakeAwsClient(options, HostWith({})).status().code(),
            StatusCode::kInvalidArgument);
  options.idle_timeout_seconds = 60;
  options.endpoints["s3"] = "not a url";
  EXPECT_EQ(MakeAwsClient(options, HostWith({})).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cbpipe
