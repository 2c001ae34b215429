#include "config/lambda_environment.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

namespace cbpipe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kSecretArn[] =
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cbpipe/"
    "destinations/visa-AbCdEf";

// What deploy/aws/cbpipe.yaml gives a step function, Visa and Amex set.
std::map<std::string, std::string> TemplateStep() {
  return {
      {"CBPIPE_RAW_BUCKET", "cbpipe-raw-123456789012-eu-west-1"},
      {"CBPIPE_PROCESSED_BUCKET", "cbpipe-processedbucket-1x2y3z"},
      {"CBPIPE_STATE_TABLE", "cbpipe-StateTable-ABC123"},
      {"CBPIPE_NOTIFICATION_TOPIC_ARN",
       "arn:aws:sns:eu-west-1:123456789012:cbpipe-NotificationTopic-X"},
      {"CBPIPE_MAX_FILES_PER_BATCH", "3"},
      {"CBPIPE_MAX_FILE_BYTES", "200000"},
      {"CBPIPE_MAX_INPUT_BYTES", "5000000"},
      {"CBPIPE_DESTINATION_VISA_URL", "sftp://visa.example:2222/inbox"},
      {"CBPIPE_DESTINATION_VISA_SECRET", kSecretArn},
      {"CBPIPE_DESTINATION_MASTERCARD_URL", ""},
      {"CBPIPE_DESTINATION_MASTERCARD_SECRET", ""},
      {"CBPIPE_DESTINATION_AMEX_URL", "ftps://amex.example/in"},
      {"CBPIPE_DESTINATION_AMEX_SECRET", "cbpipe/destinations/amex"},
      {"CBPIPE_DESTINATION_DISCOVER_URL", ""},
      {"CBPIPE_DESTINATION_DISCOVER_SECRET", ""},
  };
}

StatusOr<Config> FromEnv(const std::map<std::string, std::string>& env,
                         LambdaConfigRole role = LambdaConfigRole::kStep) {
  return ConfigFromLambdaEnvironment(
      [&](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      role);
}

std::string ErrorOf(const std::map<std::string, std::string>& env,
                    LambdaConfigRole role = LambdaConfigRole::kStep) {
  StatusOr<Config> c = FromEnv(env, role);
  if (c.ok()) return "(no error)";
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

TEST(LambdaEnvironmentTest, TemplateVariablesBecomeTheConfig) {
  StatusOr<Config> c = FromEnv(TemplateStep());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->service.object_store, "s3://cbpipe-raw-123456789012-eu-west-1");
  EXPECT_EQ(c->service.work_store, "s3://cbpipe-processedbucket-1x2y3z");
  EXPECT_EQ(c->service.ledger, "dynamodb://cbpipe-StateTable-ABC123");
  EXPECT_EQ(c->service.run_store, "dynamodb://cbpipe-StateTable-ABC123");
  ASSERT_TRUE(c->sns.has_value());
  EXPECT_EQ(c->sns->topic_arn,
            "arn:aws:sns:eu-west-1:123456789012:cbpipe-NotificationTopic-X");
  EXPECT_EQ(c->sns->alert_topic_arn, "");
  EXPECT_EQ(c->limits.max_files_per_batch, 3);
  EXPECT_EQ(c->limits.max_file_bytes, 200000u);
  EXPECT_EQ(c->reader_limits.max_decompressed_bytes, 5000000u);
  ASSERT_EQ(c->destinations.size(), 2u);
  const DestinationConfig& visa = c->destinations[0];
  EXPECT_EQ(visa.name, "visa");
  EXPECT_THAT(visa.networks, ElementsAre(Network::kVisa));
  EXPECT_EQ(visa.url, "sftp://visa.example:2222/inbox");
  EXPECT_EQ(visa.password_ref, std::string("aws-sm:") + kSecretArn +
                                   "#password");
  EXPECT_EQ(visa.layout, "visa");
  const DestinationConfig& amex = c->destinations[1];
  EXPECT_EQ(amex.name, "amex");
  EXPECT_THAT(amex.networks, ElementsAre(Network::kAmex));
  EXPECT_EQ(amex.password_ref, "aws-sm:cbpipe/destinations/amex#password");
  EXPECT_EQ(c->DestinationFor(Network::kMastercard), nullptr);
  ASSERT_NE(c->DestinationFor(Network::kVisa), nullptr);
  EXPECT_NE(c->LayoutFor(visa), nullptr);
  EXPECT_TRUE(UsesAws(*c));
  ASSERT_TRUE(c->aws.has_value());
  EXPECT_THAT(c->aws->endpoints, IsEmpty());
  // The built-in defaults where the template says nothing.
  EXPECT_EQ(c->work_dir, Config().work_dir);
}

TEST(LambdaEnvironmentTest, DefaultsWhenLimitsAndTopicAreUnset) {
  auto env = TemplateStep();
  for (const char* v : {"CBPIPE_MAX_FILES_PER_BATCH", "CBPIPE_MAX_FILE_BYTES",
                        "CBPIPE_MAX_INPUT_BYTES",
                        "CBPIPE_NOTIFICATION_TOPIC_ARN"})
    env.erase(v);
  StatusOr<Config> c = FromEnv(env);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->limits.max_files_per_batch, Limits().max_files_per_batch);
  EXPECT_EQ(c->limits.max_file_bytes, Limits().max_file_bytes);
  EXPECT_EQ(c->reader_limits.max_decompressed_bytes,
            ReaderLimits().max_decompressed_bytes);
  EXPECT_FALSE(c->sns.has_value());
}

TEST(LambdaEnvironmentTest, StartNeedsOnlyTheRawBucket) {
  StatusOr<Config> c =
      FromEnv({{"CBPIPE_RAW_BUCKET", "raw-bucket"}}, LambdaConfigRole::kStart);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->service.object_store, "s3://raw-bucket");
  EXPECT_EQ(c->service.work_store, "");
  EXPECT_THAT(c->destinations, IsEmpty());
  EXPECT_THAT(ErrorOf({}, LambdaConfigRole::kStart),
              HasSubstr("CBPIPE_RAW_BUCKET is not set"));
}

TEST(LambdaEnvironmentTest, EachMissingRequiredVariableIsNamed) {
  for (const LambdaConfigVariable& v :
       LambdaConfigVariables(LambdaConfigRole::kStep)) {
    auto env = TemplateStep();
    env.erase(v.name);
    if (v.required) {
      EXPECT_THAT(ErrorOf(env), HasSubstr(v.name + " is not set")) << v.name;
    } else if (v.name.ends_with("_SECRET") &&
               !env[v.name.substr(0, v.name.size() - 6) + "URL"].empty()) {
      EXPECT_THAT(ErrorOf(env), HasSubstr(v.name + " is not set")) << v.name;
    } else if (v.name.ends_with("_URL") &&
               !env[v.name.substr(0, v.name.size() - 3) + "SECRET"].empty()) {
      EXPECT_THAT(ErrorOf(env), HasSubstr("_SECRET is set without " + v.name))
          << v.name;
    } else {
      EXPECT_EQ(ErrorOf(env), "(no error)") << v.name;
    }
  }
  // Set but empty is missing too (a template's '' value).
  auto env = TemplateStep();
  env["CBPIPE_STATE_TABLE"] = "";
  EXPECT_THAT(ErrorOf(env), HasSubstr("CBPIPE_STATE_TABLE is not set"));
}

TEST(LambdaEnvironmentTest, BadValuesNameTheVariable) {
  const std::map<std::string, std::string> bad = {
      {"CBPIPE_RAW_BUCKET", "Not_A_Bucket"},
      {"CBPIPE_PROCESSED_BUCKET", "x"},
      {"CBPIPE_STATE_TABLE", "a table"},
      {"CBPIPE_NOTIFICATION_TOPIC_ARN", "my-topic"},
      {"CBPIPE_MAX_FILES_PER_BATCH", "0"},
      {"CBPIPE_MAX_FILE_BYTES", "12kb"},
      {"CBPIPE_MAX_INPUT_BYTES", "-5"},
      {"CBPIPE_DESTINATION_VISA_URL", "http://visa.example/inbox"},
      {"CBPIPE_DESTINATION_AMEX_SECRET", "name#password"},
  };
  for (const auto& [name, value] : bad) {
    auto env = TemplateStep();
    env[name] = value;
    EXPECT_THAT(ErrorOf(env), HasSubstr(name)) << name << "=" << value;
  }
  auto env = TemplateStep();
  env["CBPIPE_DESTINATION_VISA_URL"] = "sftp:///inbox";
  EXPECT_THAT(ErrorOf(env), HasSubstr("CBPIPE_DESTINATION_VISA_URL: has no host"));
  // A secret without its URL is a mistake, not a silent no-op.
  env = TemplateStep();
  env["CBPIPE_DESTINATION_DISCOVER_SECRET"] = "cbpipe/discover";
  EXPECT_THAT(ErrorOf(env),
              HasSubstr("CBPIPE_DESTINATION_DISCOVER_SECRET is set without "
                        "CBPIPE_DESTINATION_DISCOVER_URL"));
}

TEST(LambdaEnvironmentTest, APasswordInAUrlIsRefusedWithoutEchoingIt) {
  auto env = TemplateStep();
  env["CBPIPE_DESTINATION_VISA_URL"] = "sftp://bob:hunter2secret@visa.example/in";
  const std::string error = ErrorOf(env);
  EXPECT_THAT(error, HasSubstr("CBPIPE_DESTINATION_VISA_URL"));
  EXPECT_THAT(error, HasSubstr("password"));
  EXPECT_THAT(error, Not(HasSubstr("hunter2secret")));
  // A user alone is fine (the secret then need not hold one).
  env["CBPIPE_DESTINATION_VISA_URL"] = "sftp://bob@visa.example/in";
  EXPECT_EQ(ErrorOf(env), "(no error)");
}

TEST(LambdaEnvironmentTest, EndpointsFromTheSdkVariables) {
  auto env = TemplateStep();
  env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:5000";
  env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9000";
  StatusOr<Config> c = FromEnv(env);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->aws->endpoints.at("s3"), "http://127.0.0.1:9000");
  EXPECT_EQ(c->aws->endpoints.at("dynamodb"), "http://127.0.0.1:5000");
  EXPECT_EQ(c->aws->endpoints.at("secretsmanager"), "http://127.0.0.1:5000");
  env["AWS_ENDPOINT_URL_SNS"] = "http://127.0.0.1:5000/path";
  EXPECT_THAT(ErrorOf(env), HasSubstr("AWS_ENDPOINT_URL_SNS"));
}

TEST(LambdaEnvironmentTest, VariablesSetTellsTheDeploymentKind) {
  auto env = TemplateStep();
  auto lookup = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  // The empty ones ('' for an unused destination) do not count.
  std::vector<std::string> set = LambdaConfigVariablesSet(lookup);
  EXPECT_EQ(set.size(), 11u);
  env.clear();
  EXPECT_THAT(LambdaConfigVariablesSet(lookup), IsEmpty());
  env["CBPIPE_CONFIG"] = "cbpipe.toml";
  EXPECT_THAT(LambdaConfigVariablesSet(lookup), IsEmpty());
  env["CBPIPE_DESTINATION_AMEX_URL"] = "ftps://a.example/in";
  EXPECT_THAT(LambdaConfigVariablesSet(lookup),
              ElementsAre("CBPIPE_DESTINATION_AMEX_URL"));
}

}  // namespace
}  // namespace cbpipe
