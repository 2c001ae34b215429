#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace cbpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ErrorOf(std::string_view toml) {
  StatusOr<Config> c = ParseConfig(toml, "test.toml");
  return c.ok() ? std::string("(no error)") : c.status().message();
}

constexpr std::string_view kFull = R"(
[input]
format = "csv"
pan_policy = "reject"
date_formats = ["%d/%m/%Y"]
[input.fields]
case_id = "Case Ref"
amount = "Disputed Amount"

[output]
work_dir = "/tmp/cbpipe-test"
max_files_per_batch = 2
max_file_bytes = 100000
max_records_per_file = 500

[layout.slim]
header = false
line_ending = "lf"
trailer = "count_and_total"
[[layout.slim.column]]
header = "ID"
field = "case_id"
[[layout.slim.column]]
field = "amount"
format = "amount_minor"
[[layout.slim.column]]
field = "currency"
[[layout.slim.column]]
header = "SRC"
constant = "CBPIPE"

[[destination]]
name = "visa-sftp"
networks = ["visa", "MC"]
url = "sftp://cb@127.0.0.1:2222/inbound"
host_key_sha256 = "abc="
password = "env:VISA_PASSWORD"
layout = "slim"
[destination.retry]
max_attempts = 3
jitter = "NONE"

[[destination]]
name = "amex"
network = "amex"
url = "file:///tmp/amex"
)";

TEST(ConfigTest, ParsesEveryTable) {
  StatusOr<Config> c = ParseConfig(kFull, "test.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->format, InputFormat::kCsv);
  EXPECT_EQ(c->pan_policy, PanPolicy::kReject);
  EXPECT_EQ(c->date_formats, std::vector<std::string>{"%d/%m/%Y"});
  EXPECT_EQ(c->mapping.Lookup("case ref"), Field::kCaseId);
  EXPECT_EQ(c->mapping.Lookup("Disputed Amount"), Field::kAmount);
  EXPECT_EQ(c->limits.max_files_per_batch, 2);
  EXPECT_EQ(c->limits.max_file_bytes, 100000u);
  EXPECT_EQ(c->limits.max_records_per_file, 500u);
  ASSERT_EQ(c->destinations.size(), 2u);
  const DestinationConfig& visa = c->destinations[0];
  EXPECT_EQ(visa.networks,
            (std::vector<Network>{Network::kVisa, Network::kMastercard}));
  EXPECT_EQ(visa.retry.max_attempts, 3);
  EXPECT_FALSE(visa.retry.full_jitter);
  EXPECT_EQ(c->DestinationFor(Network::kMastercard), &visa);
  EXPECT_EQ(c->DestinationFor(Network::kDiscover), nullptr);
  const Layout* slim = c->LayoutFor(visa);
  ASSERT_NE(slim, nullptr);
  EXPECT_FALSE(slim->header);
  EXPECT_EQ(slim->line_ending, "\n");
  ASSERT_EQ(slim->columns.size(), 4u);
  EXPECT_TRUE(slim->columns[0].always_quote);  // an identifier
  EXPECT_EQ(slim->columns[1].format, ColumnFormat::kAmountMinor);
  EXPECT_EQ(slim->columns[3].constant, "CBPIPE");
  // The amex destination gets the built-in amex layout.
  EXPECT_EQ(c->destinations[1].layout, "amex");
  EXPECT_NE(c->LayoutFor(c->destinations[1]), nullptr);
}

TEST(ConfigTest, ErrorsNameTheKey) {
  EXPECT_THAT(ErrorOf("[input]\nformat = \"xml\"\n"),
              HasSubstr("input.format"));
  EXPECT_THAT(ErrorOf("[output]\nmax_files_per_batch = 0\n"),
              HasSubstr("output.max_files_per_batch"));
  EXPECT_THAT(ErrorOf("[output]\nmax_file_bytes = \"big\"\n"),
              HasSubstr("output.max_file_bytes: must be a whole number"));
  EXPECT_THAT(ErrorOf("[inptu]\n"), HasSubstr("inptu: unknown key"));
  EXPECT_THAT(ErrorOf("[input.fields]\ncase = \"x\"\n"),
              HasSubstr("input.fields.case"));
  EXPECT_THAT(ErrorOf("[input.fields]\ncase_id = \"CVV2\"\n"),
              HasSubstr("sensitive"));
  EXPECT_THAT(ErrorOf("[[destination]]\nname = \"a\"\nnetworks = [\"visa\"]\n"
                      "url = \"gopher://x\"\n"),
              HasSubstr("destination[0].url"));
  EXPECT_THAT(ErrorOf("[[destination]]\nname = \"a\"\nnetworks = [\"jcb\"]\n"
                      "url = \"file:///x\"\n"),
              HasSubstr("destination[0].networks"));
  EXPECT_THAT(ErrorOf("a = [\n"), HasSubstr("test.toml:"));
}

TEST(ConfigTest, PlainFtpNeedsExplicitOptIn) {
  constexpr std::string_view kFtp = R"(
[[destination]]
name = "d"
networks = ["discover"]
url = "ftp://127.0.0.1/in"
password = "env:P"
)";
  EXPECT_THAT(ErrorOf(kFtp), HasSubstr("allow_insecure"));
  std::string opted(kFtp);
  opted += "allow_insecure = true\n";
  EXPECT_EQ(ErrorOf(opted), "(no error)");
}

TEST(ConfigTest, SftpNeedsAHostKeyUnlessSkippedExplicitly) {
  constexpr std::string_view kSftp = R"(
[[destination]]
name = "d"
networks = ["visa"]
url = "sftp://u@127.0.0.1/in"
)";
  EXPECT_THAT(ErrorOf(kSftp), HasSubstr("known_hosts"));
  std::string skipped(kSftp);
  skipped += "insecure_skip_host_key = true\n";
  EXPECT_EQ(ErrorOf(skipped), "(no error)");
}

TEST(ConfigTest, WriteOnlyAndFsyncOptions) {
  constexpr std::string_view kSftp = R"(
[[destination]]
name = "d"
networks = ["visa"]
url = "sftp://u@127.0.0.1/in"
host_key_sha256 = "SHA256:2lIgqqQ4lSZ7sZ0lRPq6OVUzIJ1rQGqUdzWLZ1d1yC8"
)";
  StatusOr<Config> plain = ParseConfig(kSftp, "test.toml");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(plain->destinations[0].write_only);
  EXPECT_TRUE(plain->destinations[0].remote_fsync);
  StatusOr<Config> drop_box = ParseConfig(
      std::string(kSftp) + "write_only = true\nfsync = false\n", "test.toml");
  ASSERT_TRUE(drop_box.ok()) << drop_box.status().ToString();
  EXPECT_TRUE(drop_box->destinations[0].write_only);
  EXPECT_FALSE(drop_box->destinations[0].remote_fsync);
  // rename must ask which names are free: a drop box refuses.
  EXPECT_THAT(ErrorOf(std::string(kSftp) +
                      "write_only = true\non_conflict = \"rename\"\n"),
              HasSubstr("destination[0].on_conflict"));
  EXPECT_THAT(ErrorOf("[[destination]]\nname = \"d\"\nnetworks = "
                      "[\"visa\"]\nurl = \"file:///tmp/x\"\n"
                      "write_only = true\n"),
              HasSubstr("destination[0].write_only"));
}

TEST(ConfigTest, PasswordsMustBeReferencesAndAreNeverEchoed) {
  constexpr std::string_view kLiteral = R"(
[[destination]]
name = "d"
networks = ["visa"]
url = "ftps://u@127.0.0.1/in"
password = "hunter2-secret"
)";
  const std::string error = ErrorOf(kLiteral);
  EXPECT_THAT(error, HasSubstr("destination[0].password"));
  EXPECT_THAT(error, Not(HasSubstr("hunter2")));
  EXPECT_THAT(ErrorOf("[[destination]]\nname = \"d\"\nnetworks = [\"visa\"]\n"
                      "url = \"ftps://u:pw@127.0.0.1/in\"\n"),
              HasSubstr("must not hold a password"));
}

TEST(ConfigTest, OneDestinationPerNetworkAndUniqueNames) {
  EXPECT_THAT(ErrorOf(R"(
[[destination]]
name = "a"
networks = ["visa"]
url = "file:///a"
[[destination]]
name = "b"
networks = ["VI"]
url = "file:///b"
)"),
              HasSubstr("visa already goes to another destination"));
  EXPECT_THAT(ErrorOf(R"(
[[destination]]
name = "a"
networks = ["visa"]
url = "file:///a"
[[destination]]
name = "a"
networks = ["amex"]
url = "file:///b"
)"),
              HasSubstr("used twice"));
}

TEST(ConfigTest, FileNameTemplateTokensAreChecked) {
  EXPECT_THAT(ErrorOf(R"(
[[destination]]
name = "a"
networks = ["visa"]
url = "file:///a"
file_name = "{network}_{when}_{file}.csv"
)"),
              HasSubstr("unknown token {when}"));
  EXPECT_THAT(ErrorOf(R"(
[[destination]]
name = "a"
networks = ["visa"]
url = "file:///a"
file_name = "{network}.csv"
)"),
              HasSubstr("{file}"));
}

TEST(ConfigTest, UnknownLayoutIsAnError) {
  EXPECT_THAT(ErrorOf(R"(
[[destination]]
name = "a"
networks = ["visa"]
url = "file:///a"
layout = "nope"
)"),
              HasSubstr("destination[0].layout"));
}

TEST(ConfigTest, DefaultConfigRoutesAllFourNetworksToFolders) {
  Config c = DefaultConfig("/tmp/out");
  ASSERT_EQ(c.destinations.size(), 4u);
  for (Network n : kAllNetworks) {
    const DestinationConfig* d = c.DestinationFor(n);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->url, "file:///tmp/out/outbox/" + std::string(NetworkName(n)));
    EXPECT_NE(c.LayoutFor(*d), nullptr);
  }
}

TEST(ConfigTest, DescribeShowsReferencesNotSecrets) {
  StatusOr<Config> c = ParseConfig(kFull, "test.toml");
  ASSERT_TRUE(c.ok());
  setenv("VISA_PASSWORD", "s3cr3t-value", 1);
  const std::string text = DescribeConfig(*c);
  EXPECT_THAT(text, HasSubstr("env:VISA_PASSWORD"));
  EXPECT_THAT(text, Not(HasSubstr("s3cr3t-value")));
  // The description is itself a loadable config.
  StatusOr<Config> again = ParseConfig(text, "described.toml");
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

TEST(ConfigTest, ServiceAndNotifySectionsRoundTrip) {
  constexpr std::string_view kService = R"(
[service]
workers = 3
settle_ms = 200
admin_listen = "127.0.0.1:9000"
admin_token = "env:CBPIPE_ADMIN_TOKEN"
log_level = "warn"
[[notify.webhook]]
url = "https://hooks.example.com/x"
secret = "env:HOOK_SECRET"
events = ["batch.failed"]
[notify.email]
url = "smtp://127.0.0.1:2525"
from = "a@example.com"
to = ["ops@example.com"]
password = "env:SMTP_PASS"
)";
  StatusOr<Config> c = ParseConfig(kService, "svc.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->service.workers, 3);
  EXPECT_EQ(c->service.admin_token_ref, "env:CBPIPE_ADMIN_TOKEN");
  ASSERT_EQ(c->webhooks.size(), 1u);
  EXPECT_EQ(c->webhooks[0].events, std::vector<std::string>{"batch.failed"});
  ASSERT_TRUE(c->email.has_value());
  StatusOr<Config> again = ParseConfig(DescribeConfig(*c), "described.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->service.settle_ms, 200);
  EXPECT_EQ(again->email->to, std::vector<std::string>{"ops@example.com"});
  EXPECT_THAT(ErrorOf("[service]\nadmin_token = \"literal\"\n"),
              ::testing::HasSubstr("service.admin_token"));
  EXPECT_THAT(ErrorOf("[[notify.webhook]]\nurl = \"https://x\"\n"),
              ::testing::HasSubstr("notify.webhook[0].secret"));
  EXPECT_THAT(ErrorOf("[service]\nworkers = 0\n"),
              ::testing::HasSubstr("service.workers"));
}

}  // namespace
}  // namespace cbpipe
