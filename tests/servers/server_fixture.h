// A gtest fixture with one real server (SFTP, FTP, explicit or implicit
// FTPS) on 127.0.0.1 and a DestinationConfig pointing at it; shared by the
// transport and delivery integration tests.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "deliver/curl_transport.h"
#include "deliver/destination.h"
#include "gtest/gtest.h"
#include "servers/test_servers.h"

namespace cbpipe::testing {

constexpr char kPasswordEnv[] = "CBPIPE_TEST_SERVER_PASSWORD";

enum class Kind { kSftp, kFtp, kFtpsExplicit, kFtpsImplicit };

inline std::string KindName(Kind kind) {
  switch (kind) {
    case Kind::kSftp: return "Sftp";
    case Kind::kFtp: return "Ftp";
    case Kind::kFtpsExplicit: return "FtpsExplicit";
    case Kind::kFtpsImplicit: return "FtpsImplicit";
  }
  return "?";
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string WriteRandomFile(const std::string& path, size_t size,
                                   unsigned seed = 1) {
  std::mt19937_64 rng(seed);
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>(rng() & 0xff);
  std::ofstream(path, std::ios::binary) << data;
  return data;
}

// One server of `kind`, with writable "in", not-writable "readonly" and a
// local scratch folder; dest() points at "in".
class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status root = RequireRoot();
    if (!root.ok()) GTEST_SKIP() << root.message();
    std::string tmpl = (std::filesystem::temp_directory_path() /
                        "cbpipe-transport-test-XXXXXX")
                           .string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    local_ = dir_ + "/local";
    std::filesystem::create_directories(local_);
  }
  void TearDown() override {
    proxies_.clear();
    sftp_.reset();
    ftp_.reset();
    if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_);
    if (HasFailure()) std::cerr << "kept " << dir_ << " for inspection\n";
  }

  // Starts the server for `kind`; for FTP `pasv_address` as in
  // FtpServerOptions.
  void StartServer(Kind kind, const std::string& pasv_address = "127.0.0.1",
                   int pasv_port_count = 200) {
    kind_ = kind;
    if (kind == Kind::kSftp) {
      auto s = SshServer::Start(dir_ + "/server");
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      sftp_.emplace(std::move(*s));
      root_ = sftp_->root_dir();
      ::setenv(kPasswordEnv, sftp_->password().c_str(), 1);
      dest_.url = sftp_->url("in");
      dest_.username = sftp_->user();
      dest_.private_key_ref = "file:" + sftp_->client_key_path();
      dest_.known_hosts = sftp_->known_hosts_path();
    } else {
      FtpServerOptions options;
      options.tls = kind == Kind::kFtp            ? FtpTls::kNone
                    : kind == Kind::kFtpsExplicit ? FtpTls::kExplicit
                                                  : FtpTls::kImplicit;
      options.pasv_address = pasv_address;
      options.pasv_port_count = pasv_port_count;
      auto s = FtpServer::Start(dir_ + "/server", options);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      ftp_.emplace(std::move(*s));
      root_ = ftp_->root_dir();
      ::setenv(kPasswordEnv, ftp_->password().c_str(), 1);
      dest_.url = ftp_->url("in");
      dest_.username = ftp_->user();
      dest_.password_ref = std::string("env:") + kPasswordEnv;
      dest_.ca_file = ftp_->ca_cert_path();
      dest_.ftps_mode = kind == Kind::kFtpsImplicit ? FtpsMode::kImplicit
                                                    : FtpsMode::kExplicit;
      dest_.allow_insecure = kind == Kind::kFtp;
    }
    dest_.name = "test";
    dest_.connect_timeout_seconds = 5;
    dest_.transfer_timeout_seconds = 30;
    dest_.stall_timeout_seconds = 5;
    ASSERT_TRUE(MakeRemoteDir(root_, "in", true).ok());
    ASSERT_TRUE(MakeRemoteDir(root_, "readonly", false).ok());
  }

  std::unique_ptr<Transport> Make() {
    auto t = MakeNetworkTransport(dest_);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }

  // The URL of folder `subdir` on the current server, through `port`.
  std::string UrlOf(const std::string& subdir,
                    const std::string& host = "127.0.0.1", int port = 0) {
    return sftp_ ? sftp_->url(subdir, port) : ftp_->url(subdir, host, port);
  }

  std::string Remote(const std::string& relative) {
    return root_ + "/" + relative;
  }

  Kind kind_ = Kind::kSftp;
  std::string dir_, local_, root_;
  std::optional<SshServer> sftp_;
  std::optional<FtpServer> ftp_;
  std::vector<std::unique_ptr<CuttingProxy>> proxies_;
  DestinationConfig dest_;
};

// Writes `text` to `path`, readable by the servers' user.
inline void WriteFileAs(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  std::filesystem::permissions(path, std::filesystem::perms::owner_all |
                                         std::filesystem::perms::group_read |
                                         std::filesystem::perms::others_read);
}

}  // namespace cbpipe::testing
