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

TEST(ConfigTest, InputLimitsHaveSafeDefaultsAndAreConfigurable) {
  StatusOr<Config> d = ParseConfig("", "empty.toml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->reader_limits.max_decompressed_bytes, 16ull << 30);
  EXPECT_EQ(d->reader_limits.max_compression_ratio, 100u);
  EXPECT_EQ(d->reject_thresholds.max_rejected_records, 1000000u);
  EXPECT_EQ(d->reject_thresholds.max_rejected_ratio, 0.5);
  StatusOr<Config> c = ParseConfig(
      "[input]\nmax_decompressed_bytes = 1048576\nmax_compression_ratio = "
      "20\nmax_rejected_records = 0\nmax_rejected_ratio = 1\n",
      "limits.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->reader_limits.max_decompressed_bytes, 1048576u);
  EXPECT_EQ(c->reader_limits.max_compression_ratio, 20u);
  EXPECT_EQ(c->reject_thresholds.max_rejected_records, 0u);
  EXPECT_EQ(c->reject_thresholds.max_rejected_ratio, 1.0);
  StatusOr<Config> again = ParseConfig(DescribeConfig(*c), "described.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->reject_thresholds.max_rejected_ratio, 1.0);
  EXPECT_EQ(again->reader_limits.max_compression_ratio, 20u);
  EXPECT_THAT(ErrorOf("[input]\nmax_rejected_ratio = 1.5\n"),
              HasSubstr("input.max_rejected_ratio: must be between"));
  EXPECT_THAT(ErrorOf("[input]\nmax_compression_ratio = 1\n"),
              HasSubstr("input.max_compression_ratio"));
  EXPECT_THAT(ErrorOf("[input]\nmax_rejected_records = -1\n"),
              HasSubstr("input.max_rejected_records"));
  EXPECT_THAT(ErrorOf("[input]\nmax_decompressed_bytes = \"4G\"\n"),
              HasSubstr("input.max_decompressed_bytes: must be a whole"));
}

TEST(ConfigTest, LayoutThatLeavesNoRoomForARowIsRefused) {
  const std::string layout =
      "[layout.wide]\nline_ending = \"lf\"\n[[layout.wide.column]]\n"
      "field = \"case_id\"\n[[layout.wide.column]]\nfield = \"amount\"\n"
      "header = \"";
  const std::string dest =
      "\"\n[[destination]]\nname = \"d\"\nnetworks = [\"visa\"]\n"
      "url = \"file:///tmp/x\"\nlayout = \"wide\"\n";
  // Header "case_id,<h>\n" plus the smallest row ",\n": exactly 1024.
  const std::string fits(1024 - 9 - 2, 'h');
  auto config = [&](const std::string& header) {
    return "[output]\nmax_file_bytes = 1024\n" + layout + header + dest;
  };
  StatusOr<Config> ok = ParseConfig(config(fits), "fits.toml");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(FixedFileBytes(ok->layouts.at("wide")), 1024u);
  EXPECT_THAT(ErrorOf(config(fits + "h")),
              HasSubstr("destination[0].layout: a file in layout 'wide' "
                        "takes at least 1025 bytes"));
  EXPECT_THAT(ErrorOf(config(fits + "h")),
              HasSubstr("more than output.max_file_bytes (1024)"));
  // The built-in layouts fit the smallest max_file_bytes allowed.
  for (Network n : kAllNetworks) {
    std::optional<Layout> builtin = BuiltinLayout(NetworkName(n));
    ASSERT_TRUE(builtin.has_value());
    EXPECT_LT(FixedFileBytes(*builtin), 1024u) << NetworkName(n);
  }
}

TEST(ConfigTest, ReviewFindsConfigsThatDeliverNothingOrLeaveNetworksOut) {
  StatusOr<Config> none = ParseConfig("[input]\n", "none.toml");
  ASSERT_TRUE(none.ok());
  ConfigReview review = ReviewConfig(*none);
  ASSERT_EQ(review.errors.size(), 1u);
  EXPECT_THAT(review.errors[0], HasSubstr("none.toml: no [[destination]]"));

  StatusOr<Config> some = ParseConfig(
      "[[destination]]\nname = \"d\"\nnetworks = [\"visa\", \"amex\"]\n"
      "url = \"file:///tmp/x\"\n",
      "some.toml");
  ASSERT_TRUE(some.ok()) << some.status().ToString();
  review = ReviewConfig(*some);
  EXPECT_TRUE(review.errors.empty());
  ASSERT_EQ(review.warnings.size(), 2u);
  EXPECT_THAT(review.warnings[0],
              HasSubstr("no destination receives mastercard records"));
  EXPECT_THAT(review.warnings[1],
              HasSubstr("no destination receives discover records"));

  review = ReviewConfig(DefaultConfig("/tmp/x"));
  EXPECT_TRUE(review.errors.empty());
  EXPECT_TRUE(review.warnings.empty());
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

TEST(ConfigTest, ServiceAdapterUrlsParseAndRoundTrip) {
  StatusOr<Config> c = ParseConfig(
      "[service]\nwork_store = \"s3://b/processed\"\n"
      "queue = \"sqs://cbpipe-inputs\"\nrun_store = \"dynamodb://runs\"\n"
      "ledger = \"dynamodb://ledger\"\nevents_queue = \"sqs://raw\"\n",
      "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->service.work_store, "s3://b/processed");
  EXPECT_EQ(c->service.queue, "sqs://cbpipe-inputs");
  EXPECT_EQ(c->service.run_store, "dynamodb://runs");
  EXPECT_EQ(c->service.ledger, "dynamodb://ledger");
  EXPECT_EQ(c->service.events_queue, "sqs://raw");
  StatusOr<Config> again = ParseConfig(DescribeConfig(*c), "described.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->service.ledger, "dynamodb://ledger");
  EXPECT_EQ(again->service.events_queue, "sqs://raw");
  for (const char* key :
       {"work_store", "queue", "run_store", "ledger", "events_queue"}) {
    EXPECT_THAT(ErrorOf("[service]\n" + std::string(key) + " = \"table\"\n"),
                ::testing::HasSubstr(std::string("service.") + key));
  }
}

// A valid destination, so that each case below fails for its own reason.
constexpr std::string_view kOneDestination = R"(
[[destination]]
name = "d"
networks = ["visa"]
url = "file:///srv/out/visa"
)";

std::string WithDestination(std::string_view rest) {
  return std::string(kOneDestination) + std::string(rest);
}

std::string DestinationWith(std::string_view url, std::string_view file_name) {
  std::string t = "[[destination]]\nname = \"d\"\nnetworks = [\"visa\"]\n";
  t += "url = \"" + std::string(url) + "\"\n";
  if (!file_name.empty())
    t += "file_name = \"" + std::string(file_name) + "\"\n";
  return t;
}

TEST(ConfigTest, WebhookAndEmailUrlsMustNotHoldCredentials) {
  const std::string webhook = WithDestination(R"(
[[notify.webhook]]
url = "http://user:hunter2@127.0.0.1:9/hook?token=s3cret"
secret = "env:HOOK_SECRET"
)");
  const std::string error = ErrorOf(webhook);
  EXPECT_THAT(error, HasSubstr("notify.webhook[0].url"));
  EXPECT_THAT(error, HasSubstr("credentials"));
  EXPECT_THAT(error, Not(HasSubstr("hunter2")));
  EXPECT_THAT(error, Not(HasSubstr("s3cret")));
  // A user name alone is refused too: there is no place for it but the URL.
  EXPECT_THAT(ErrorOf(WithDestination(R"(
[[notify.webhook]]
url = "https://ops@hooks.example.com/x"
secret = "env:HOOK_SECRET"
)")),
              HasSubstr("notify.webhook[0].url"));
  // An '@' in the path or query is not userinfo.
  EXPECT_EQ(ErrorOf(WithDestination(R"(
[[notify.webhook]]
url = "https://hooks.example.com/a@b?to=ops@example.com"
secret = "env:HOOK_SECRET"
)")),
            "(no error)");
  const std::string email = ErrorOf(WithDestination(R"(
[notify.email]
url = "smtps://ops:hunter2@mail.example.com:465"
from = "a@example.com"
to = ["ops@example.com"]
)"));
  EXPECT_THAT(email, HasSubstr("notify.email.url"));
  EXPECT_THAT(email, Not(HasSubstr("hunter2")));
}

TEST(ConfigTest, DescribeConfigNeverPrintsAWebhookQuery) {
  StatusOr<Config> c = ParseConfig(WithDestination(R"(
[[notify.webhook]]
url = "https://hooks.example.com/services/x?token=s3cret#part9"
secret = "env:HOOK_SECRET"
)"),
                                   "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->webhooks[0].url,
            "https://hooks.example.com/services/x?token=s3cret#part9");
  const std::string described = DescribeConfig(*c);
  EXPECT_THAT(described, HasSubstr("https://hooks.example.com/services/x\""));
  EXPECT_THAT(described, Not(HasSubstr("s3cret")));
  EXPECT_THAT(described, Not(HasSubstr("part9")));
}

TEST(ConfigTest, DestinationPasswordCheckLooksOnlyAtTheAuthority) {
  EXPECT_THAT(ErrorOf(DestinationWith("ftps://u:pw@127.0.0.1/in", "")),
              HasSubstr("must not hold a password"));
  // A ':' before an '@' of the path is no password.
  EXPECT_EQ(ErrorOf(DestinationWith("ftps://127.0.0.1:990/in@box", "")),
            "(no error)");
}

TEST(ConfigTest, FileNameTemplatesRefuseControlCharacters) {
  for (const char* bad :
       {R"(cb_\n{file}.csv)", R"(cb_\t{file}.csv)", R"(cb_\u0000{file}.csv)",
        R"(cb_\r{file}.csv)", R"(cb_\u001b[2J{file}.csv)",
        R"(cb_\u007f{file}.csv)", R"(cb_\u0085{file}.csv)",
        R"(cb_{file}\u202Evsc.exe)", R"(cb_\u2066{file}.csv)"}) {
    const std::string error =
        ErrorOf(DestinationWith("file:///srv/out/visa", bad));
    EXPECT_THAT(error, HasSubstr("destination[0].file_name")) << bad;
    EXPECT_THAT(error, HasSubstr("control character")) << bad;
  }
  EXPECT_EQ(ErrorOf(DestinationWith("file:///srv/out/visa",
                                    "caf\u00e9_{date}_{file}.csv")),
            "(no error)");
}

TEST(ConfigTest, FileUrlsMustBeAbsoluteWithoutDotSegments) {
  for (const char* bad :
       {"file://", "file://localhost/x", "file://rel/../../x", "file://out",
        "file://out/visa", "file:///srv/../etc", "file:///srv/out/..",
        "file:///srv/./out", "file:///..", "file:///srv/out\\u001b"}) {
    const std::string error = ErrorOf(DestinationWith(bad, ""));
    EXPECT_THAT(error, HasSubstr("destination[0].url")) << bad;
  }
  EXPECT_THAT(ErrorOf(DestinationWith("file://localhost/x", "")),
              HasSubstr("file:///absolute/folder"));
  for (const char* good :
       {"file:///srv/out/visa", "file:///srv/out/visa/", "file:///srv/a..b",
        "file:///srv/.hidden", "file:///srv/with space"}) {
    EXPECT_EQ(ErrorOf(DestinationWith(good, "")), "(no error)") << good;
  }
}

TEST(ConfigTest, DefaultConfigUrlsPassTheFileUrlRules) {
  // The built-in config (cbpipe run without --config) routes to
  // file:// folders under the work dir: they must pass the same rules,
  // whatever the work dir is written as.
  for (const char* work_dir : {"cbpipe-out", "./a/../b", "/tmp/x/../y"}) {
    Config c = DefaultConfig(work_dir);
    ASSERT_FALSE(c.destinations.empty());
    for (const DestinationConfig& d : c.destinations) {
      EXPECT_EQ(ErrorOf(DestinationWith(d.url, "")), "(no error)") << d.url;
      EXPECT_EQ(d.url.find("/.."), std::string::npos) << d.url;
    }
  }
}

TEST(ConfigTest, AdminListenIsCheckedAsServeChecksIt) {
  for (const char* bad :
       {"0.0.0.0:8787", "[::]:8787", "10.1.2.3:8787", "example.com:8787",
        "127.0.0.1:99999", "127.0.0.1:", "8787", "::1:8787"}) {
    const std::string error = ErrorOf(WithDestination(
        "[service]\nadmin_listen = \"" + std::string(bad) + "\"\n"));
    EXPECT_THAT(error, HasSubstr("service.admin_listen")) << bad;
    EXPECT_THAT(error, Not(HasSubstr("explicitly"))) << bad;
  }
  EXPECT_THAT(
      ErrorOf(WithDestination("[service]\nadmin_listen = \"0.0.0.0:8787\"\n")),
      HasSubstr("not a loopback address"));
  for (const char* good :
       {"127.0.0.1:8787", "localhost:0", "[::1]:8787", "127.0.0.2:65535"}) {
    EXPECT_EQ(ErrorOf(WithDestination("[service]\nadmin_listen = \"" +
                                      std::string(good) + "\"\n")),
              "(no error)")
        << good;
  }
}

TEST(ConfigTest, DescribeConfigEscapesControlCharacters) {
  StatusOr<Config> c = ParseConfig(WithDestination(R"(
[output]
work_dir = "/tmp/a\u001b]0;pwned\u0007b\u202e"
)"),
                                   "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const std::string described = DescribeConfig(*c);
  EXPECT_EQ(described.find('\x1b'), std::string::npos);
  EXPECT_EQ(described.find('\x07'), std::string::npos);
  EXPECT_EQ(described.find("\xE2\x80\xAE"), std::string::npos);
  EXPECT_THAT(described, HasSubstr(R"(\u001B]0;pwned\u0007b\u202E)"));
  // And it is still the same configuration.
  StatusOr<Config> again = ParseConfig(described, "described.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->work_dir, c->work_dir);
}

TEST(ConfigTest, TelemetryDefaultsToPrometheusWithoutXRay) {
  StatusOr<Config> c = ParseConfig(WithDestination(""), "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->telemetry.metrics, std::vector<std::string>{"prometheus"});
  EXPECT_EQ(c->telemetry.emf.namespace_name, "cbpipe");
  EXPECT_EQ(c->telemetry.emf.output, "stdout");
  EXPECT_EQ(c->telemetry.emf.gauge_interval_ms, 60000);
  EXPECT_FALSE(c->telemetry.xray.enabled);
  EXPECT_EQ(c->telemetry.xray.daemon_address, "");
}

TEST(ConfigTest, TelemetryTableMapsIntoTelemetryOptions) {
  StatusOr<Config> c = ParseConfig(WithDestination(R"(
[telemetry]
metrics = ["prometheus", "emf"]
emf_namespace = "cbpipe/prod"
emf_output = "/var/log/cbpipe/emf.log"
emf_gauge_interval_seconds = 30
xray = true
xray_daemon_address = "udp:127.0.0.1:2000 tcp:127.0.0.1:2001"
xray_service_name = "cbpipe-eu"
)"),
                                   "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const TelemetryOptions& t = c->telemetry;
  EXPECT_EQ(t.metrics, (std::vector<std::string>{"prometheus", "emf"}));
  EXPECT_EQ(t.emf.namespace_name, "cbpipe/prod");
  EXPECT_EQ(t.emf.output, "/var/log/cbpipe/emf.log");
  EXPECT_EQ(t.emf.gauge_interval_ms, 30000);
  EXPECT_TRUE(t.xray.enabled);
  EXPECT_EQ(t.xray.daemon_address, "udp:127.0.0.1:2000 tcp:127.0.0.1:2001");
  EXPECT_EQ(t.xray.service_name, "cbpipe-eu");
  // Described and read back the same.
  StatusOr<Config> again = ParseConfig(DescribeConfig(*c), "described.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->telemetry.metrics, t.metrics);
  EXPECT_EQ(again->telemetry.emf.gauge_interval_ms, 30000);
  EXPECT_EQ(again->telemetry.xray.daemon_address, t.xray.daemon_address);
  EXPECT_TRUE(again->telemetry.xray.enabled);
}

TEST(ConfigTest, TelemetryErrorsNameTheKey) {
  auto error = [](const std::string& table) {
    StatusOr<Config> c =
        ParseConfig(WithDestination("[telemetry]\n" + table), "t.toml");
    return c.ok() ? std::string("(no error)") : c.status().message();
  };
  EXPECT_THAT(error("metrics = [\"statsd\"]"),
              HasSubstr("telemetry.metrics: unknown metrics adapter"));
  EXPECT_THAT(error("metrics = []"), HasSubstr("telemetry.metrics"));
  EXPECT_THAT(error("metrics = [\"emf\", \"emf\"]"),
              HasSubstr("telemetry.metrics"));
  EXPECT_THAT(error("emf_namespace = \"\""),
              HasSubstr("telemetry.emf_namespace"));
  EXPECT_THAT(error("emf_output = \"\""), HasSubstr("telemetry.emf_output"));
  EXPECT_THAT(error("emf_gauge_interval_seconds = -1"),
              HasSubstr("telemetry.emf_gauge_interval_seconds"));
  EXPECT_THAT(error("xray = \"yes\""), HasSubstr("telemetry.xray"));
  EXPECT_THAT(error("xray_daemon_address = \"localhost\""),
              HasSubstr("telemetry.xray_daemon_address"));
  EXPECT_THAT(error("xray_service_name = \"\""),
              HasSubstr("telemetry.xray_service_name"));
  EXPECT_THAT(error("xray_sampling = 1"),
              HasSubstr("telemetry.xray_sampling: unknown key"));
}

TEST(ConfigTest, AwsTableMapsRegionAndProfile) {
  StatusOr<Config> c = ParseConfig(WithDestination(R"(
[aws]
region = "eu-west-1"
profile = "cbpipe-prod"
)"),
                                   "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->aws.has_value());
  EXPECT_EQ(c->aws->region, "eu-west-1");
  EXPECT_EQ(c->aws->profile, "cbpipe-prod");
  EXPECT_TRUE(UsesAws(*c));
  const std::string described = DescribeConfig(*c);
  EXPECT_THAT(described, HasSubstr("\n[aws]\nregion = \"eu-west-1\"\n"
                                   "profile = \"cbpipe-prod\"\n"));
  StatusOr<Config> again = ParseConfig(described, "described.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->aws->profile, "cbpipe-prod");
  // An empty table still counts: the lookup then uses the environment.
  c = ParseConfig(WithDestination("[aws]\n"), "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->aws.has_value());
  EXPECT_EQ(c->aws->region, "");
}

TEST(ConfigTest, AwsTableErrorsNameTheKey) {
  EXPECT_THAT(ErrorOf(WithDestination("[aws]\nregion = \"EU West\"\n")),
              HasSubstr("aws.region: must be a region name"));
  EXPECT_THAT(ErrorOf(WithDestination("[aws]\nregion = 1\n")),
              HasSubstr("aws.region: must be a string"));
  EXPECT_THAT(ErrorOf(WithDestination("[aws]\nprofile = \"a b\"\n")),
              HasSubstr("aws.profile: must be a profile name"));
  EXPECT_THAT(ErrorOf(WithDestination("[aws]\nprofile = \"\"\n")),
              HasSubstr("aws.profile: must be a profile name"));
  EXPECT_THAT(ErrorOf(WithDestination("[aws]\nsecret_key = \"x\"\n")),
              HasSubstr("aws.secret_key: unknown key"));
  EXPECT_THAT(ErrorOf("aws = 1\n" + WithDestination("")),
              HasSubstr("aws: must be a table"));
}

TEST(ConfigTest, AwsTableMapsEndpointsAddressingAndTimeouts) {
  StatusOr<Config> c = ParseConfig(WithDestination(R"(
[aws]
region = "us-east-1"
profile = "ops"
endpoints = { s3 = "http://127.0.0.1:5000", sqs = "https://sqs.local:9324" }
s3_addressing = "path"
connect_timeout_seconds = 2
request_timeout_seconds = 30
idle_timeout_seconds = 5
)"),
                                   "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->aws->endpoints.at("s3"), "http://127.0.0.1:5000");
  EXPECT_EQ(c->aws->endpoints.at("sqs"), "https://sqs.local:9324");
  EXPECT_EQ(c->aws->s3_addressing, AwsS3Addressing::kPathStyle);
  EXPECT_EQ(c->aws->connect_timeout_seconds, 2);
  EXPECT_EQ(c->aws->request_timeout_seconds, 30);
  EXPECT_EQ(c->aws->idle_timeout_seconds, 5);
  // What config check prints reads back the same.
  StatusOr<Config> again = ParseConfig(DescribeConfig(*c), "described.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->aws->endpoints, c->aws->endpoints);
  EXPECT_EQ(again->aws->s3_addressing, AwsS3Addressing::kPathStyle);
  EXPECT_EQ(again->aws->idle_timeout_seconds, 5);

  c = ParseConfig(WithDestination("[aws]\ns3_addressing = \"virtual\"\n"),
                  "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->aws->s3_addressing, AwsS3Addressing::kVirtualHosted);
  EXPECT_TRUE(c->aws->endpoints.empty());

  EXPECT_THAT(ErrorOf(WithDestination("[aws]\nendpoints = 1\n")),
              HasSubstr("aws.endpoints: must be a table"));
  EXPECT_THAT(
      ErrorOf(WithDestination("[aws]\nendpoints = { s3 = \"ftp://x\" }\n")),
      HasSubstr("aws.endpoints.s3: must be an http:// or https:// URL"));
  EXPECT_THAT(ErrorOf(WithDestination(
                  "[aws]\nendpoints = { s3 = \"http://u:p@h:1\" }\n")),
              HasSubstr("aws.endpoints.s3: must be an http"));
  EXPECT_THAT(ErrorOf(WithDestination(
                  "[aws]\nendpoints = { s3 = \"http://h:1/path\" }\n")),
              HasSubstr("aws.endpoints.s3: must be an http"));
  EXPECT_THAT(ErrorOf(WithDestination("[aws]\nendpoints = { s3 = 1 }\n")),
              HasSubstr("aws.endpoints.s3: must be a string"));
  EXPECT_THAT(ErrorOf(WithDestination("[aws]\ns3_addressing = \"dns\"\n")),
              HasSubstr("aws.s3_addressing: must be"));
  EXPECT_THAT(
      ErrorOf(WithDestination("[aws]\nconnect_timeout_seconds = 0\n")),
      HasSubstr("aws.connect_timeout_seconds: must be between"));
}

TEST(ConfigTest, NotifySnsAndSecretsManagerReferences) {
  StatusOr<Config> c = ParseConfig(
      "[[destination]]\nname = \"visa\"\nnetworks = [\"visa\"]\n"
      "url = \"sftp://u@127.0.0.1/in\"\n"
      "private_key = \"aws-sm:cbpipe/visa#private_key\"\n"
      "host_key_sha256 = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
      "[notify.sns]\n"
      "topic_arn = \"arn:aws:sns:eu-west-1:123456789012:events\"\n"
      "alert_topic_arn = \"arn:aws:sns:eu-west-1:123456789012:alerts\"\n"
      "events = [\"batch.delivered\", \"batch.failed\"]\n"
      "[aws]\nregion = \"eu-west-1\"\nprofile = \"ops\"\n"
      "secrets_cache_seconds = 60\n",
      "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->destinations[0].private_key_ref,
            "aws-sm:cbpipe/visa#private_key");
  ASSERT_TRUE(c->sns.has_value());
  EXPECT_EQ(c->sns->alert_topic_arn,
            "arn:aws:sns:eu-west-1:123456789012:alerts");
  EXPECT_EQ(c->sns->events.size(), 2u);
  EXPECT_EQ(c->aws->secrets_cache_seconds, 60);
  StatusOr<Config> again = ParseConfig(DescribeConfig(*c), "described.toml");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->sns->topic_arn, c->sns->topic_arn);
  EXPECT_EQ(again->aws->secrets_cache_seconds, 60);

  EXPECT_THAT(ErrorOf(WithDestination("[notify.sns]\ntopic_arn = \"t\"\n")),
              HasSubstr("notify.sns.topic_arn: must be an SNS topic ARN"));
  EXPECT_THAT(ErrorOf(WithDestination(
                  "[notify.sns]\ntopic_arn = "
                  "\"arn:aws:sns:eu-west-1:1:t\"\nevents = [\"nope\"]\n")),
              HasSubstr("notify.sns.events: 'nope' is not an event type"));
  EXPECT_THAT(
      ErrorOf(WithDestination("[aws]\nsecrets_cache_seconds = -1\n")),
      HasSubstr("aws.secrets_cache_seconds"));
}

TEST(ConfigTest, UsesAwsOnlyWithAnAwsTableOrAnAwsResource) {
  StatusOr<Config> c = ParseConfig(WithDestination(""), "t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(UsesAws(*c));
  EXPECT_THAT(DescribeConfig(*c), Not(HasSubstr("[aws]")));
  EXPECT_FALSE(UsesAws(DefaultConfig("/tmp/x")));
  c->service.admin_token_ref = "aws-sm:cbpipe/admin#token";
  EXPECT_TRUE(UsesAws(*c));
  c->service.admin_token_ref = "";
  c->service.object_dir = "s3://bucket/prefix";
  EXPECT_TRUE(UsesAws(*c));
  c->service.object_dir = "";
  c->service.state_db = "https://sqs.eu-west-1.amazonaws.com/123456789012/q";
  EXPECT_TRUE(UsesAws(*c));
  c->service.state_db = "https://sqs.example.com/q";
  EXPECT_FALSE(UsesAws(*c));
}

}  // namespace
}  // namespace cbpipe
