#include "aws/credentials_chain.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

// Values no error, log or Source() may ever contain.
constexpr char kEnvSecret[] = "envSECRETwJalrXUtnFEMI";
constexpr char kFileSecret[] = "fileSECRETbPxRfiCYEXAMPLE";
constexpr char kHttpSecret[] = "httpSECRETK7MDENGbPxRfi";
constexpr char kToken[] = "sessionTOKENIQoJb3JpZ2luX2Vj";
constexpr char kAuthToken[] = "authTOKENcontainer0123";
constexpr char kImdsToken[] = "imdsTOKENAQAEAEx1";

void ExpectNoSecret(const std::string& text) {
  for (const char* secret :
       {kEnvSecret, kFileSecret, kHttpSecret, kToken, kAuthToken, kImdsToken})
    EXPECT_EQ(text.find(secret), std::string::npos) << "a secret in: " << text;
}

std::string Iso(int64_t ms) {
  const std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string CredentialsJson(int64_t expires_ms,
                            const char* key_id = "ASIAHTTP") {
  return std::string(R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":")") +
         key_id + R"(","SecretAccessKey":")" + kHttpSecret + R"(","Token":")" +
         kToken + R"(","Expiration":")" + Iso(expires_ms) + "\"}";
}

// A credentials endpoint on 127.0.0.1: the container agent or the instance
// metadata service (IMDSv2), answering what the test scripts.
class MetadataServer {
 public:
  MetadataServer() {
    server_.Put("/latest/api/token", [this](const httplib::Request& req,
                                            httplib::Response& res) {
      Count("PUT token");
      if (token_status != 200) {
        res.status = token_status;
        return;
      }
      if (req.get_header_value("X-aws-ec2-metadata-token-ttl-seconds")
              .empty()) {
        res.status = 400;
        return;
      }
      res.set_content(kImdsToken, "text/plain");
    });
    server_.Get(
        R"(/latest/meta-data/iam/security-credentials/(.*))",
        [this](const httplib::Request& req, httplib::Response& res) {
          Count("GET " + req.path);
          if (req.get_header_value("X-aws-ec2-metadata-token") != kImdsToken) {
            res.status = 401;
            return;
          }
          const std::string role = req.matches[1];
          if (role.empty()) {
            if (no_role) {
              res.status = 404;
              return;
            }
            res.set_content("cbpipe-role\n", "text/plain");
          } else if (role == "cbpipe-role") {
            res.set_content(CredentialsJson(Expiry()), "application/json");
          } else {
            res.status = 404;
          }
        });
    server_.Get("/v2/credentials/task-1234", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
      Count("GET container");
      std::lock_guard<std::mutex> lock(mu_);
      last_authorization_ = req.get_header_value("Authorization");
      if (container_status_ != 200) {
        res.status = container_status_;
        return;
      }
      res.set_content(CredentialsJson(expires_ms_), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~MetadataServer() {
    server_.stop();
    thread_.join();
  }

  std::string base() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }
  int requests(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_[what];
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& [k, v] : counts_) n += v;
    return n;
  }
  std::vector<std::string> order() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }
  std::string last_authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_authorization_;
  }
  void set_expiry(int64_t ms) {
    std::lock_guard<std::mutex> lock(mu_);
    expires_ms_ = ms;
  }
  void set_container_status(int status) {
    std::lock_guard<std::mutex> lock(mu_);
    container_status_ = status;
  }
  std::atomic<bool> no_role{false};
  std::atomic<int> token_status{200};

 private:
  void Count(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[what];
    order_.push_back(what);
  }
  int64_t Expiry() {
    std::lock_guard<std::mutex> lock(mu_);
    return expires_ms_;
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::map<std::string, int> counts_;
  std::vector<std::string> order_;
  std::string last_authorization_;
  int64_t expires_ms_ = 0;
  int container_status_ = 200;
};

// A port that accepts connections (the kernel's backlog) but never answers.
class SilentPort {
 public:
  SilentPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

AwsOptions WithProfile(const std::string& name) {
  AwsOptions options;
  options.profile = name;
  return options;
}

// A port nothing listens on (bound, then closed).
int ClosedPort() {
  SilentPort p;
  return p.port();
}

class CredentialsChainTest : public ::testing::Test {
 protected:
  CredentialsChainTest()
      : home_(
            fs::path(::testing::TempDir()) /
            ("awscreds_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    fs::remove_all(home_);
    fs::create_directories(home_ / ".aws");
    // Hermetic: never the real instance metadata service.
    vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] =
        "http://127.0.0.1:" + std::to_string(ClosedPort());
  }
  ~CredentialsChainTest() override { fs::remove_all(home_); }

  AwsHost Host() {
    AwsHost host;
    host.getenv =
        [this](const std::string& name) -> std::optional<std::string> {
      auto it = vars_.find(name);
      if (it == vars_.end()) return std::nullopt;
      return it->second;
    };
    host.home_dir = home_.string();
    host.env = &env_;
    host.container_relative_base = container_base_;
    return host;
  }
  std::unique_ptr<AwsCredentialsProvider> Chain(AwsOptions options = {}) {
    return MakeDefaultAwsCredentialsChain(options, Host());
  }
  void Write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }
  std::string CredentialsPath() {
    return (home_ / ".aws/credentials").string();
  }
  std::string ConfigPath() { return (home_ / ".aws/config").string(); }
  void WriteCredentials(const std::string& text) {
    Write(CredentialsPath(), text);
  }
  void WriteConfig(const std::string& text) { Write(ConfigPath(), text); }
  // AWS_CONTAINER_CREDENTIALS_FULL_URI to the server's task credentials.
  void UseContainer(const MetadataServer& server) {
    vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] =
        server.base() + "/v2/credentials/task-1234";
  }
  void SetEnvKeys() {
    vars_["AWS_ACCESS_KEY_ID"] = "AKIAENV";
    vars_["AWS_SECRET_ACCESS_KEY"] = kEnvSecret;
  }
  // The error of a Get that must fail, checked for secrets.
  Status GetError(AwsCredentialsProvider& chain) {
    StatusOr<AwsCredentials> got = chain.Get();
    EXPECT_FALSE(got.ok());
    if (got.ok()) return OkStatus();
    ExpectNoSecret(got.status().ToString());
    ExpectNoSecret(chain.Source());
    return got.status();
  }

  fs::path home_;
  std::map<std::string, std::string> vars_;
  FakeEnv env_;
  std::string container_base_;
};

// ---- environment ---------------------------------------------------------

TEST_F(CredentialsChainTest, EnvironmentKeysAndSessionToken) {
  SetEnvKeys();
  vars_["AWS_SESSION_TOKEN"] = kToken;
  auto chain = Chain();
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIAENV");
  EXPECT_EQ(c->secret_access_key, kEnvSecret);
  EXPECT_EQ(c->session_token, kToken);
  EXPECT_EQ(c->expires_ms, 0);
  EXPECT_EQ(chain->Source(), "environment");
}

TEST_F(CredentialsChainTest, SourceIsEmptyBeforeAGet) {
  SetEnvKeys();
  EXPECT_EQ(Chain()->Source(), "");
}

TEST_F(CredentialsChainTest, KeyIdWithoutSecretIsAClearError) {
  vars_["AWS_ACCESS_KEY_ID"] = "AKIAENV";
  WriteCredentials(
      "[default]\naws_access_key_id = AKIAFILE\n"
      "aws_secret_access_key = " +
      std::string(kFileSecret) + "\n");
  auto chain = Chain();
  Status s = GetError(*chain);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("AWS_SECRET_ACCESS_KEY is not"), std::string::npos)
      << s.ToString();
}

TEST_F(CredentialsChainTest, SecretWithoutKeyIdIsAClearError) {
  vars_["AWS_SECRET_ACCESS_KEY"] = kEnvSecret;
  auto chain = Chain();
  Status s = GetError(*chain);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("AWS_ACCESS_KEY_ID is not"), std::string::npos);
}

// ---- shared files --------------------------------------------------------

TEST_F(CredentialsChainTest, DefaultProfileFromCredentialsFile) {
  WriteCredentials(
      "# comment\n; another\n\n[other]\naws_access_key_id=AKIAOTHER\n"
      "aws_secret_access_key=x\n"
      "[default]\r\nAWS_ACCESS_KEY_ID = AKIAFILE\r\n"
      "aws_secret_access_key: " +
      std::string(kFileSecret) +
      "\r\n"
      "aws_session_token = " +
      kToken +
      "\n"
      "s3 =\n  max_concurrent_requests = 10\n");
  auto chain = Chain();
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIAFILE");
  EXPECT_EQ(c->secret_access_key, kFileSecret);
  EXPECT_EQ(c->session_token, kToken);
  EXPECT_EQ(chain->Source(), "profile default in " + CredentialsPath());
}

TEST_F(CredentialsChainTest, AwsProfileReadsProfileSectionOfConfigFile) {
  vars_["AWS_PROFILE"] = "prod";
  WriteConfig(
      "[default]\nregion = eu-west-1\n[profile prod]\n"
      "aws_access_key_id = AKIAPROD\naws_secret_access_key = " +
      std::string(kFileSecret) + "\n");
  auto chain = Chain();
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIAPROD");
  EXPECT_EQ(c->session_token, "");
  EXPECT_EQ(chain->Source(), "profile prod in " + ConfigPath());
}

TEST_F(CredentialsChainTest, CredentialsFileBeatsConfigFile) {
  WriteCredentials(
      "[prod]\naws_access_key_id = AKIACRED\n"
      "aws_secret_access_key = a\n");
  WriteConfig(
      "[profile prod]\naws_access_key_id = AKIACONF\n"
      "aws_secret_access_key = b\n");
  StatusOr<AwsCredentials> c = Chain(WithProfile("prod"))->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIACRED");
}

TEST_F(CredentialsChainTest, FileLocationsFromEnvironmentWithTilde) {
  vars_["AWS_SHARED_CREDENTIALS_FILE"] = "~/elsewhere/creds";
  vars_["AWS_CONFIG_FILE"] = (home_ / "cfg").string();
  Write(home_ / "elsewhere/creds",
        "[team]\naws_access_key_id = AKIATEAM\naws_secret_access_key = s\n");
  WriteCredentials(
      "[team]\naws_access_key_id = AKIAWRONG\n"
      "aws_secret_access_key = s\n");
  auto chain = Chain(WithProfile("team"));
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIATEAM");
  EXPECT_EQ(chain->Source(),
            "profile team in " + (home_ / "elsewhere/creds").string());
}

TEST_F(CredentialsChainTest, NamedProfileThatDoesNotExistIsAnErrorNamingIt) {
  SetEnvKeys();  // AWS_PROFILE does not switch the environment off...
  vars_["AWS_PROFILE"] = "missing";
  // ...but the environment answers first, as with the CLI.
  EXPECT_TRUE(Chain()->Get().ok());
  vars_.erase("AWS_ACCESS_KEY_ID");
  vars_.erase("AWS_SECRET_ACCESS_KEY");
  WriteCredentials(
      "[default]\naws_access_key_id = A\n"
      "aws_secret_access_key = s\n");
  auto chain = Chain();
  Status s = GetError(*chain);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("AWS profile 'missing' not found in " +
                             CredentialsPath() + " or " + ConfigPath()),
            std::string::npos)
      << s.ToString();
  // The same through [aws] profile.
  vars_.erase("AWS_PROFILE");
  s = GetError(*Chain(WithProfile("missing")));
  EXPECT_NE(s.message().find("'missing'"), std::string::npos);
}

TEST_F(CredentialsChainTest, ConfiguredProfileSwitchesTheEnvironmentOff) {
  SetEnvKeys();
  WriteCredentials(
      "[prod]\naws_access_key_id = AKIAPROD\n"
      "aws_secret_access_key = s\n");
  auto chain = Chain(WithProfile("prod"));
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIAPROD");
  EXPECT_EQ(chain->Source(), "profile prod in " + CredentialsPath());
}

TEST_F(CredentialsChainTest, MalformedFilesNameFileAndLineNeverTheLine) {
  const std::string secret_line =
      "aws_secret_access_key " + std::string(kFileSecret) + "\n";
  struct Case {
    std::string text;
    std::string expect;
  } cases[] = {
      {"[default]\naws_access_key_id = A\n" + secret_line,
       CredentialsPath() + ":3: expected `key = value`"},
      {"aws_secret_access_key = " + std::string(kFileSecret) + "\n",
       CredentialsPath() + ":1: a setting outside any [section]"},
      {"[default\n", CredentialsPath() + ":1: a [section] header without ']'"},
      {"[a]\n[a]\n", CredentialsPath() + ":2: section [a] appears twice"},
      {"[a]\nx = 1\nX = " + std::string(kFileSecret) + "\n",
       CredentialsPath() + ":3: key x appears twice in [a]"},
      {"  indented = " + std::string(kFileSecret) + "\n",
       CredentialsPath() + ":1: indented line outside any [section]"},
  };
  for (const Case& c : cases) {
    WriteCredentials(c.text);
    Status s = GetError(*Chain());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.expect), std::string::npos)
        << s.ToString() << "\nexpected: " << c.expect;
  }
}

TEST_F(CredentialsChainTest, HalfAKeyPairInAProfileIsAnError) {
  WriteConfig("[default]\naws_secret_access_key = " + std::string(kFileSecret) +
              "\n");
  Status s = GetError(*Chain());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("AWS profile 'default' in " + ConfigPath() +
                             " has aws_secret_access_key without "
                             "aws_access_key_id"),
            std::string::npos)
      << s.ToString();
}

TEST_F(CredentialsChainTest, RoleProfilesAreRefusedNotSkipped) {
  WriteConfig(
      "[profile ops]\nrole_arn = arn:aws:iam::1:role/x\n"
      "source_profile = default\n");
  Status s = GetError(*Chain(WithProfile("ops")));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("uses role_arn"), std::string::npos);
}

TEST_F(CredentialsChainTest, UnreadableFileIsAnError) {
  fs::create_directories(CredentialsPath());  // a folder, not a file
  Status s = GetError(*Chain());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(CredentialsPath()), std::string::npos)
      << s.ToString();
}

// ---- container -----------------------------------------------------------

TEST_F(CredentialsChainTest, ContainerRelativeUriWithToken) {
  MetadataServer server;
  server.set_expiry(env_.NowMs() + 3600'000);
  container_base_ = server.base();
  vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/task-1234";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = kAuthToken;
  auto chain = Chain();
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAHTTP");
  EXPECT_EQ(c->secret_access_key, kHttpSecret);
  EXPECT_EQ(c->session_token, kToken);
  EXPECT_EQ(c->expires_ms, (env_.NowMs() + 3600'000) / 1000 * 1000);
  EXPECT_EQ(chain->Source(), "container");
  EXPECT_EQ(server.last_authorization(), kAuthToken);
}

TEST_F(CredentialsChainTest, ContainerFullUriWithTokenFile) {
  MetadataServer server;
  server.set_expiry(env_.NowMs() + 3600'000);
  UseContainer(server);
  Write(home_ / "token", std::string(kAuthToken) + "\n");
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = (home_ / "token").string();
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "not-this-one";
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(server.last_authorization(), kAuthToken);
  EXPECT_EQ(chain->Source(), "container");
}

TEST_F(CredentialsChainTest, ContainerFullUriOnlyToAllowedHosts) {
  for (const char* url :
       {"http://169.254.169.254/creds", "http://example.com/creds",
        "https://10.0.0.1/creds", "ftp://127.0.0.1/creds"}) {
    vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = url;
    Status s = GetError(*Chain());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(s.message().find("must be http(s) to a loopback address"),
              std::string::npos)
        << s.ToString();
  }
}

TEST_F(CredentialsChainTest, ContainerTokenWithLineBreakIsRefused) {
  MetadataServer server;
  UseContainer(server);
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] =
      std::string(kAuthToken) + "\r\nX-Injected: 1";
  Status s = GetError(*Chain());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(server.total(), 0);
}

TEST_F(CredentialsChainTest, ContainerEndpointRefusingIsUnavailable) {
  MetadataServer server;
  server.set_container_status(403);
  UseContainer(server);
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = kAuthToken;
  Status s = GetError(*Chain());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("container credentials endpoint 127.0.0.1 "
                             "answered HTTP 403"),
            std::string::npos)
      << s.ToString();
  // The URI's path (the task's credentials id) is not in the message.
  EXPECT_EQ(s.message().find("task-1234"), std::string::npos);
  // 5xx are retried (3 attempts), 4xx are not.
  EXPECT_EQ(server.requests("GET container"), 1);
  server.set_container_status(500);
  EXPECT_EQ(GetError(*Chain()).code(), StatusCode::kUnavailable);
  EXPECT_EQ(server.requests("GET container"), 4);
}

// ---- instance metadata ---------------------------------------------------

TEST_F(CredentialsChainTest, InstanceMetadataV2TokenFlow) {
  MetadataServer server;
  server.set_expiry(env_.NowMs() + 6 * 3600'000);
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.base() + "/";
  auto chain = Chain();
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->secret_access_key, kHttpSecret);
  EXPECT_EQ(c->session_token, kToken);
  EXPECT_EQ(chain->Source(), "instance metadata");
  // The token first; both GETs carried it (the server answers 401 without).
  EXPECT_EQ(server.order(),
            (std::vector<std::string>{
                "PUT token", "GET /latest/meta-data/iam/security-credentials/",
                "GET /latest/meta-data/iam/security-credentials/cbpipe-role"}));
}

TEST_F(CredentialsChainTest, InstanceWithoutRoleMeansNoCredentials) {
  MetadataServer server;
  server.no_role = true;
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.base();
  Status s = GetError(*Chain());
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(s.message().find("no IAM role attached"), std::string::npos);
}

TEST_F(CredentialsChainTest, InstanceRefusingTokensMeansNoCredentials) {
  MetadataServer server;
  server.token_status = 403;  // IMDS turned off on the instance
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.base();
  Status s = GetError(*Chain());
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(s.message().find("token request answered HTTP 403"),
            std::string::npos)
      << s.ToString();
  EXPECT_EQ(server.total(), 1);  // no IMDSv1 request without a token
}

TEST_F(CredentialsChainTest, InstanceMetadataDisabledIsNotAsked) {
  MetadataServer server;
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.base();
  vars_["AWS_EC2_METADATA_DISABLED"] = "TRUE";
  Status s = GetError(*Chain());
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(s.message().find("AWS_EC2_METADATA_DISABLED=true"),
            std::string::npos);
  EXPECT_EQ(server.total(), 0);
}

TEST_F(CredentialsChainTest, NothingConfiguredFailsQuicklyListingWhatWasTried) {
  // The default setup: metadata endpoint on a closed port.
  const auto start = std::chrono::steady_clock::now();
  Status s = GetError(*Chain());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  for (const std::string& expected : std::vector<std::string>{
           "no AWS credentials found (tried: environment (AWS_ACCESS_KEY_ID "
           "not set)",
           "; profile default (no keys in " + CredentialsPath(),
           "; container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI "
           "not "
           "set)",
           "; instance metadata at http://127.0.0.1:"})
    EXPECT_NE(s.message().find(expected), std::string::npos)
        << s.ToString() << "\nexpected: " << expected;
}

TEST_F(CredentialsChainTest, SilentMetadataEndpointTimesOutQuickly) {
  SilentPort silent;
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] =
      "http://127.0.0.1:" + std::to_string(silent.port());
  vars_["AWS_METADATA_SERVICE_TIMEOUT"] = "0.3";
  const auto start = std::chrono::steady_clock::now();
  Status s = GetError(*Chain());
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
}

// ---- order ---------------------------------------------------------------

TEST_F(CredentialsChainTest, EnvBeatsFileBeatsContainerBeatsInstanceMetadata) {
  MetadataServer server;
  server.set_expiry(env_.NowMs() + 3600'000);
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.base();
  UseContainer(server);
  WriteCredentials(
      "[default]\naws_access_key_id = AKIAFILE\n"
      "aws_secret_access_key = s\n");
  SetEnvKeys();
  EXPECT_EQ(Chain()->Get()->access_key_id, "AKIAENV");
  vars_.erase("AWS_ACCESS_KEY_ID");
  vars_.erase("AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(Chain()->Get()->access_key_id, "AKIAFILE");
  fs::remove(CredentialsPath());
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(chain->Source(), "container");
  EXPECT_EQ(server.requests("PUT token"), 0);
  vars_.erase("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(chain->Source(), "instance metadata");
  EXPECT_EQ(server.requests("PUT token"), 1);
}

TEST_F(CredentialsChainTest, ProfileWithOnlyARegionFallsThrough) {
  MetadataServer server;
  server.set_expiry(env_.NowMs() + 3600'000);
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.base();
  WriteConfig("[default]\nregion = us-east-2\n");
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(chain->Source(), "instance metadata");
}

// ---- cache and refresh ---------------------------------------------------

TEST_F(CredentialsChainTest, RefreshesFiveMinutesBeforeExpiry) {
  MetadataServer server;
  const int64_t t0 = env_.NowMs();
  server.set_expiry(t0 + 15 * 60'000);
  UseContainer(server);
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(server.requests("GET container"), 1);
  env_.AdvanceMs(9 * 60'000);  // 6 min left: cached
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(server.requests("GET container"), 1);
  server.set_expiry(t0 + 60 * 60'000);
  env_.AdvanceMs(2 * 60'000);  // 4 min left: fetched again
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(server.requests("GET container"), 2);
  EXPECT_EQ(c->expires_ms, t0 / 1000 * 1000 + 60 * 60'000);
}

TEST_F(CredentialsChainTest, FailedEarlyRefreshKeepsValidCredentials) {
  MetadataServer server;
  const int64_t t0 = env_.NowMs() / 1000 * 1000;
  server.set_expiry(t0 + 10 * 60'000);
  UseContainer(server);
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  server.set_container_status(503);
  env_.SetNowMs(t0 + 7 * 60'000);  // in the refresh window, still valid
  StatusOr<AwsCredentials> c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->expires_ms, t0 + 10 * 60'000);
  env_.SetNowMs(t0 + 10 * 60'000);  // expired, refresh still failing
  Status s = GetError(*chain);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
}

TEST_F(CredentialsChainTest, ExpiredCredentialsFromTheEndpointAreAnError) {
  MetadataServer server;
  server.set_expiry(env_.NowMs() - 1000);
  UseContainer(server);
  Status s = GetError(*Chain());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("from container have already expired"),
            std::string::npos)
      << s.ToString();
}

TEST_F(CredentialsChainTest, InvalidateFetchesAgain) {
  WriteCredentials(
      "[default]\naws_access_key_id = AKIAOLD\n"
      "aws_secret_access_key = s\n");
  auto chain = Chain();
  EXPECT_EQ(chain->Get()->access_key_id, "AKIAOLD");
  WriteCredentials(
      "[default]\naws_access_key_id = AKIANEW\n"
      "aws_secret_access_key = s\n");
  EXPECT_EQ(chain->Get()->access_key_id, "AKIAOLD");  // no expiry: cached
  chain->Invalidate();
  EXPECT_EQ(chain->Get()->access_key_id, "AKIANEW");
}

TEST_F(CredentialsChainTest, ConcurrentGetsFetchOnce) {
  MetadataServer server;
  server.set_expiry(env_.NowMs() + 3600'000);
  UseContainer(server);
  auto chain = Chain();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      if (chain->Get().ok()) ++ok;
      (void)chain->Source();
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(server.requests("GET container"), 1);
}

// ---- region --------------------------------------------------------------

TEST_F(CredentialsChainTest, RegionPrecedence) {
  WriteConfig(
      "[default]\nregion = ap-south-1\n[profile prod]\n"
      "region = eu-central-1\n");
  AwsOptions options;
  EXPECT_EQ(*ResolveAwsRegion(options, Host()), "ap-south-1");
  options.profile = "prod";
  EXPECT_EQ(*ResolveAwsRegion(options, Host()), "eu-central-1");
  vars_["AWS_DEFAULT_REGION"] = "us-west-1";
  EXPECT_EQ(*ResolveAwsRegion(options, Host()), "us-west-1");
  vars_["AWS_REGION"] = "us-west-2";
  EXPECT_EQ(*ResolveAwsRegion(options, Host()), "us-west-2");
  options.region = "eu-north-1";
  EXPECT_EQ(*ResolveAwsRegion(options, Host()), "eu-north-1");
}

TEST_F(CredentialsChainTest, NoRegionIsAClearError) {
  StatusOr<std::string> r = ResolveAwsRegion({}, Host());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(
                "no AWS region: set [aws] region in the config, AWS_REGION, "
                "or region in profile default of " +
                ConfigPath()),
            std::string::npos)
      << r.status().ToString();
  vars_["AWS_REGION"] = "EU WEST";
  r = ResolveAwsRegion({}, Host());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("AWS_REGION: not a region name"),
            std::string::npos);
  vars_.erase("AWS_REGION");
  r = ResolveAwsRegion(WithProfile("nope"), Host());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'nope' not found"), std::string::npos);
}

TEST(AwsStaticCredentialsTest, ReturnsWhatItWasGiven) {
  AwsStaticCredentials fixed({"AKID", "secret", "token", 0});
  StatusOr<AwsCredentials> c = fixed.Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->secret_access_key, "secret");
  EXPECT_EQ(fixed.Source(), "static");
}

}  // namespace
}  // namespace cbpipe
