// End-to-end tests of what a config may hold, through the binary: `config
// check` refuses what `run` and `serve` would refuse later (or what would
// leak a credential), with the key named, and prints nothing secret; the
// admin API that `serve` starts parses its query strings strictly.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "e2e/cli.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// Fixed clock: 2025-06-01T12:00:00Z.
const std::string kNow = "CBPIPE_NOW=1748779200";

std::string Destination(const std::string& url,
                        const std::string& file_name = "") {
  std::string d =
      "[[destination]]\nname = \"visa\"\nnetworks = [\"visa\"]\n"
      "url = \"" +
      url + "\"\n";
  if (!file_name.empty()) d += "file_name = \"" + file_name + "\"\n";
  return d;
}

CliResult ConfigCheck(const TempDir& dir, const std::string& toml) {
  WriteFile(dir / "c.toml", toml);
  return RunCli("config check --config " + ShellQuote(dir / "c.toml"));
}

TEST(ConfigE2E, WebhookUrlWithCredentialsIsRefusedAndNeverPrinted) {
  TempDir dir("config_webhook");
  const std::string hook =
      "\n[[notify.webhook]]\n"
      "url = \"http://user:hunter2@127.0.0.1:9/hook?token=s3cret\"\n"
      "secret = \"env:CBPIPE_E2E_HOOK_SECRET\"\n";
  const std::string toml = Destination("file://" + dir.path() + "/out") + hook;
  CliResult r = ConfigCheck(dir, toml);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("notify.webhook[0].url"));
  EXPECT_THAT(r.err, HasSubstr("credentials"));
  for (const std::string& text : {r.out, r.err}) {
    EXPECT_THAT(text, Not(HasSubstr("hunter2")));
    EXPECT_THAT(text, Not(HasSubstr("s3cret")));
  }
  // serve refuses it at start, without printing it either.
  r = RunCli("serve --config " + ShellQuote(dir / "c.toml"),
             "CBPIPE_E2E_HOOK_SECRET=k");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("notify.webhook[0].url"));
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("hunter2")));
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("s3cret")));

  // Without credentials it is accepted, and its query (a token) is not
  // shown by config check.
  r = ConfigCheck(dir,
                  Destination("file://" + dir.path() + "/out") +
                      "\n[[notify.webhook]]\n"
                      "url = \"https://hooks.example.com/h?token=s3cret\"\n"
                      "secret = \"env:CBPIPE_E2E_HOOK_SECRET\"\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("url = \"https://hooks.example.com/h\""));
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("s3cret")));
}

TEST(ConfigE2E, FileNameWithControlCharactersIsRefusedBeforeAnyFileIsMade) {
  TempDir dir("config_file_name");
  ASSERT_EQ(RunCli("gen-sample --records 50 --seed 2 --output " +
                   ShellQuote(dir / "in.csv"))
                .exit_code,
            0);
  for (const std::string& bad :
       {std::string("visa\\n{file}.csv"), std::string("visa\\t{file}.csv"),
        std::string("visa\\u0000{file}.csv"),
        std::string("visa_{file}\\u202Evsc.exe")}) {
    const std::string toml = "[output]\nwork_dir = \"" + dir.path() +
                             "/work\"\n" +
                             Destination("file://" + dir.path() + "/out", bad);
    CliResult r = ConfigCheck(dir, toml);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_THAT(r.err, HasSubstr("destination[0].file_name")) << bad;
    EXPECT_THAT(r.err, HasSubstr("control character")) << bad;
    // run refuses the config before it reads or generates anything.
    r = RunCli("run --config " + ShellQuote(dir / "c.toml") + " " +
                   ShellQuote(dir / "in.csv"),
               kNow);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_FALSE(fs::exists(dir / "work")) << bad;
    EXPECT_FALSE(fs::exists(dir / "out")) << bad;
  }
}

TEST(ConfigE2E, FileUrlsMustBeAbsoluteFolders) {
  TempDir dir("config_file_url");
  for (const std::string& bad :
       {std::string("file://"), std::string("file://localhost/x"),
        std::string("file://rel/../../x"), std::string("file://out/visa"),
        "file://" + dir.path() + "/a/../../x"}) {
    CliResult r = ConfigCheck(dir, Destination(bad));
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_THAT(r.err, HasSubstr("destination[0].url")) << bad;
  }
  CliResult r = ConfigCheck(dir, Destination("file://" + dir.path() + "/out"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(ConfigE2E, RunWithoutConfigStillDeliversToItsDefaultFolders) {
  // The built-in config's file:// URLs are built from --work-dir, relative
  // and with ".." here; they must pass the same rules and land in it.
  TempDir dir("config_default");
  fs::create_directories(dir / "sub");
  // Run from `dir` below: the binary's path must not be relative.
  ::setenv("CBPIPE_BIN", fs::absolute(CbpipeBin()).c_str(), 1);
  ASSERT_EQ(RunCli("gen-sample --records 200 --seed 5 --output " +
                   ShellQuote(dir / "in.csv"))
                .exit_code,
            0);
  CliResult r = RunCli("run --work-dir sub/../w in.csv", "", dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  size_t files = 0;
  for (const char* net : {"visa", "mastercard", "amex", "discover"}) {
    const std::string folder = dir / ("w/outbox/" + std::string(net));
    ASSERT_TRUE(fs::is_directory(folder)) << folder << "\n" << r.out << r.err;
    for (const auto& e : fs::directory_iterator(folder)) {
      (void)e;
      ++files;
    }
  }
  EXPECT_GE(files, 4u);
  r = RunCli("config check", "", dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("/..")));
}

TEST(ConfigE2E, AdminListenIsRefusedByConfigCheckAsServeRefusesIt) {
  TempDir dir("config_admin_listen");
  for (const std::string& bad :
       {std::string("0.0.0.0:8787"), std::string("127.0.0.1:99999"),
        std::string("[::]:8787"), std::string("8787")}) {
    const std::string toml = "[output]\nwork_dir = \"" + dir.path() +
                             "/work\"\n" +
                             Destination("file://" + dir.path() + "/out") +
                             "[service]\nadmin_listen = \"" + bad + "\"\n";
    CliResult check = ConfigCheck(dir, toml);
    EXPECT_EQ(check.exit_code, 2) << bad;
    EXPECT_THAT(check.err, HasSubstr("service.admin_listen")) << bad;
    EXPECT_THAT(check.err, Not(HasSubstr("explicitly"))) << bad;
    CliResult serve = RunCli("serve --config " + ShellQuote(dir / "c.toml"));
    EXPECT_EQ(serve.exit_code, 2) << bad;
    EXPECT_THAT(serve.err, HasSubstr("service.admin_listen")) << bad;
  }
  CliResult r =
      ConfigCheck(dir, Destination("file://" + dir.path() + "/out") +
                           "[service]\nadmin_listen = \"0.0.0.0:8787\"\n");
  EXPECT_THAT(r.err, HasSubstr("not a loopback address"));
  EXPECT_THAT(r.err, HasSubstr("proxy"));
}

// A free TCP port on 127.0.0.1 (bound, read, released).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// The status code of one GET over a fresh connection; -1 when there is no
// answer.
int HttpStatus(int port, const std::string& target) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  const std::string req = "GET " + target +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Connection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return -1;
  }
  std::string head;
  char buf[512];
  ssize_t n;
  while (head.find("\r\n") == std::string::npos &&
         (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
    head.append(buf, static_cast<size_t>(n));
  ::close(fd);
  // "HTTP/1.1 400 Bad Request"
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) return -1;
  return std::atoi(head.c_str() + 9);
}

TEST(ConfigE2E, AdminApiRefusesMalformedQueryStrings) {
  TempDir dir("config_admin_query");
  const int port = FreePort();
  ASSERT_GT(port, 0);
  WriteFile(dir / "c.toml",
            "[output]\nwork_dir = \"" + dir.path() + "/work\"\n" +
                Destination("file://" + dir.path() + "/out") +
                "[service]\npoll_interval_ms = 50\nadmin_listen = "
                "\"127.0.0.1:" +
                std::to_string(port) + "\"\n");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string bin = CbpipeBin();
    const std::string log = dir / "serve.log";
    FILE* out = std::freopen(log.c_str(), "a", stderr);
    (void)out;
    const std::string config = dir / "c.toml";
    ::execl(bin.c_str(), bin.c_str(), "serve", "--config", config.c_str(),
            nullptr);
    ::_exit(127);
  }
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    up = HttpStatus(port, "/healthz") == 200;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (up) {
    EXPECT_EQ(HttpStatus(port, "/api/runs?limit=1"), 200);
    EXPECT_EQ(HttpStatus(port, "/api/runs?limit=%31"), 200);
    for (const char* bad :
         {"/api/runs?limit=1=1", "/api/runs?limit=3&=", "/api/runs?limit=3&",
          "/api/runs?&limit=3", "/api/runs?limit", "/api/runs?limit=%3",
          "/api/runs?limit=1&limit=1", "/api/deadletters?limit=2=2",
          "/api/runs/0000000000000001?x", "/api/runs?limit=%0a1"}) {
      EXPECT_EQ(HttpStatus(port, bad), 400) << bad;
    }
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(up) << ReadFile(dir / "serve.log");
}

// `config check` with an [aws] table says where the credentials and region
// come from, in a clean environment (env -i) so the machine's own AWS
// settings never leak into the test.
std::string AwsEnv(const TempDir& dir, const std::string& vars) {
  return "env -i PATH=/usr/bin:/bin HOME=" + ShellQuote(dir.path()) +
         " AWS_EC2_METADATA_DISABLED=true " + vars;
}

TEST(ConfigE2E, AwsCheckNamesTheSourceAndRegionNeverTheSecret) {
  TempDir dir("config_aws");
  const std::string toml = Destination("file://" + dir.path() + "/out") +
                           "\n[aws]\nregion = \"eu-west-1\"\n";
  WriteFile(dir / "c.toml", toml);
  CliResult r = RunCli(
      "config check --config " + ShellQuote(dir / "c.toml"),
      AwsEnv(dir, "AWS_ACCESS_KEY_ID=AKIAE2E AWS_SECRET_ACCESS_KEY=e2eS3cretKey "
                  "AWS_SESSION_TOKEN=e2eT0ken"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err,
              HasSubstr("aws: credentials from environment, region eu-west-1\n"));
  EXPECT_THAT(r.out, HasSubstr("[aws]\nregion = \"eu-west-1\"\n"));
  for (const std::string& text : {r.out, r.err}) {
    EXPECT_THAT(text, Not(HasSubstr("e2eS3cretKey")));
    EXPECT_THAT(text, Not(HasSubstr("e2eT0ken")));
  }

  // A profile in ~/.aws, its region from the config file.
  fs::create_directories(dir / ".aws");
  WriteFile(dir / ".aws/credentials",
            "[ops]\naws_access_key_id = AKIAOPS\n"
            "aws_secret_access_key = fileS3cretKey\n");
  WriteFile(dir / ".aws/config", "[profile ops]\nregion = us-east-2\n");
  WriteFile(dir / "c.toml", Destination("file://" + dir.path() + "/out") +
                                "\n[aws]\nprofile = \"ops\"\n");
  r = RunCli("config check --config " + ShellQuote(dir / "c.toml"),
             AwsEnv(dir, ""));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("aws: credentials from profile ops in " +
                               (dir / ".aws/credentials") +
                               ", region us-east-2\n"));
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("fileS3cretKey")));
}

TEST(ConfigE2E, AwsCheckSaysWhatTheS3ObjectStoreResolvesTo) {
  TempDir dir("config_aws_s3");
  WriteFile(dir / "c.toml",
            Destination("file://" + dir.path() + "/out") +
                "\n[service]\nobject_store = \"s3://cb-objects/raw\"\n"
                "\n[aws]\nregion = \"eu-west-1\"\n"
                "endpoints = { s3 = \"http://127.0.0.1:5999\" }\n");
  CliResult r = RunCli(
      "config check --config " + ShellQuote(dir / "c.toml"),
      AwsEnv(dir, "AWS_ACCESS_KEY_ID=AKIAE2E AWS_SECRET_ACCESS_KEY=e2eS3cret"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("object_store: s3://cb-objects/raw -> "
                               "S3ObjectStore, bucket cb-objects, prefix "
                               "\"raw\", endpoint http://127.0.0.1:5999\n"));
  EXPECT_THAT(r.out, HasSubstr("object_store = \"s3://cb-objects/raw\""));
  EXPECT_THAT(r.err + r.out, Not(HasSubstr("e2eS3cret")));

  // A bucket S3 would refuse: exit 2, saying why.
  WriteFile(dir / "c.toml",
            Destination("file://" + dir.path() + "/out") +
                "\n[service]\nobject_store = \"s3://Bad_Bucket\"\n"
                "\n[aws]\nregion = \"eu-west-1\"\n");
  r = RunCli("config check --config " + ShellQuote(dir / "c.toml"),
             AwsEnv(dir, "AWS_ACCESS_KEY_ID=A AWS_SECRET_ACCESS_KEY=B"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("service.object_store: object store URL"));
}

TEST(ConfigE2E, AwsCheckSaysWhatEveryServiceUrlResolvesTo) {
  TempDir dir("config_aws_service");
  WriteFile(dir / "c.toml",
            Destination("file://" + dir.path() + "/out") +
                "\n[service]\nobject_store = \"s3://cb-objects/raw\"\n"
                "work_store = \"s3://cb-objects/processed\"\n"
                "queue = \"sqs://cb-work\"\n"
                "run_store = \"dynamodb://cb-state\"\n"
                "ledger = \"sqlite:///var/lib/cbpipe/ledger.db\"\n"
                "events_queue = "
                "\"https://sqs.eu-west-1.amazonaws.com/123456789012/cb-raw\"\n"
                "\n[aws]\nregion = \"eu-west-1\"\n"
                "endpoints = { dynamodb = \"http://127.0.0.1:5998\" }\n");
  CliResult r = RunCli(
      "config check --config " + ShellQuote(dir / "c.toml"),
      AwsEnv(dir, "AWS_ACCESS_KEY_ID=AKIAE2E AWS_SECRET_ACCESS_KEY=e2eS3cret"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("work_store: s3://cb-objects/processed -> "
                               "S3ObjectStore, bucket cb-objects, prefix "
                               "\"processed\", endpoint "
                               "https://s3.eu-west-1.amazonaws.com\n"));
  EXPECT_THAT(r.err, HasSubstr("queue: sqs://cb-work -> SqsQueue, queue "
                               "cb-work, endpoint "
                               "https://sqs.eu-west-1.amazonaws.com\n"));
  EXPECT_THAT(r.err, HasSubstr("run_store: dynamodb://cb-state -> "
                               "DynamoDbRunStore, table cb-state, endpoint "
                               "http://127.0.0.1:5998\n"));
  EXPECT_THAT(r.err, HasSubstr("ledger: sqlite:///var/lib/cbpipe/ledger.db -> "
                               "SqliteDeliveryLedger, file "
                               "/var/lib/cbpipe/ledger.db\n"));
  EXPECT_THAT(r.err,
              HasSubstr("events_queue: https://sqs.eu-west-1.amazonaws.com/"
                        "123456789012/cb-raw -> SqsQueue, queue URL "
                        "https://sqs.eu-west-1.amazonaws.com/123456789012/"
                        "cb-raw, endpoint https://sqs.eu-west-1.amazonaws.com"
                        "\n"));
  EXPECT_THAT(r.err, HasSubstr("aws: credentials from environment"));
  EXPECT_THAT(r.err + r.out, Not(HasSubstr("e2eS3cret")));

  // A URL no adapter of the port takes: exit 2, naming the key.
  WriteFile(dir / "c.toml",
            Destination("file://" + dir.path() + "/out") +
                "\n[service]\nrun_store = \"sqs://cb-work\"\n"
                "\n[aws]\nregion = \"eu-west-1\"\n");
  r = RunCli("config check --config " + ShellQuote(dir / "c.toml"),
             AwsEnv(dir, "AWS_ACCESS_KEY_ID=A AWS_SECRET_ACCESS_KEY=B"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("cbpipe config check: service.run_store: no "
                               "run store adapter for sqs://"));
}

TEST(ConfigE2E, AwsCheckFailsWhenNoCredentialsOrRegionCanBeFound) {
  TempDir dir("config_aws_none");
  WriteFile(dir / "c.toml",
            Destination("file://" + dir.path() + "/out") + "\n[aws]\n");
  CliResult r = RunCli("config check --config " + ShellQuote(dir / "c.toml"),
                       AwsEnv(dir, ""));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("cbpipe config check: aws: no AWS credentials "
                               "found (tried: environment"));
  EXPECT_THAT(r.err, HasSubstr("cbpipe config check: aws: no AWS region"));
  EXPECT_THAT(r.err, Not(HasSubstr("config OK")));

  // Without [aws] (and no AWS resource) nothing AWS is looked up.
  WriteFile(dir / "c.toml", Destination("file://" + dir.path() + "/out"));
  r = RunCli("config check --config " + ShellQuote(dir / "c.toml"),
             AwsEnv(dir, ""));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("aws:")));
  EXPECT_THAT(r.err, Not(HasSubstr("AWS")));
}

}  // namespace
}  // namespace cbpipe::testing
