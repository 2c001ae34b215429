// cbpipe-demo: the README's run command with real servers. Starts a local
// SFTP server (OpenSSH) and a local FTPS server (vsftpd, explicit TLS) on
// 127.0.0.1 standing in for the card companies, writes a config routing
// Visa and Mastercard to SFTP and Amex and Discover to FTPS, runs
// `cbpipe run` on the input, prints what each server received, and stops
// the servers.
//
//   cbpipe-demo --cbpipe build/src/app/cbpipe --dir demo-out/servers INPUT
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "servers/test_servers.h"

namespace {

namespace fs = std::filesystem;
using cbpipe::testing::FtpServer;
using cbpipe::testing::FtpServerOptions;
using cbpipe::testing::FtpTls;
using cbpipe::testing::SshServer;

int Usage() {
  std::cerr << "usage: cbpipe-demo --cbpipe BIN --dir DIR INPUT...\n";
  return 2;
}

// Runs argv with `extra_env` added; returns its exit code.
int Run(const std::vector<std::string>& argv,
        const std::vector<std::string>& extra_env) {
  pid_t pid = ::fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    for (const std::string& kv : extra_env) ::putenv(strdup(kv.c_str()));
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::perror("exec");
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

void ShowReceived(const std::string& title, const std::string& root,
                  const std::vector<std::string>& folders) {
  std::cout << "== received by the " << title << "\n";
  for (const std::string& folder : folders) {
    const fs::path dir = fs::path(root) / folder;
    if (!fs::exists(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::ifstream in(entry.path());
      std::string line;
      int rows = 0;
      std::vector<std::string> head;
      while (std::getline(in, line)) {
        if (rows++ < 2) head.push_back(line);
      }
      std::cout << "  " << folder << "/" << entry.path().filename().string()
                << "  " << fs::file_size(entry) << " bytes, " << rows
                << " rows\n";
      for (const std::string& h : head) std::cout << "      " << h << "\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string cbpipe, dir;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--cbpipe" && i + 1 < argc) {
      cbpipe = fs::absolute(argv[++i]).string();
    } else if (arg == "--dir" && i + 1 < argc) {
      dir = fs::absolute(argv[++i]).string();
    } else if (arg.rfind("--", 0) == 0) {
      return Usage();
    } else {
      inputs.push_back(fs::absolute(arg).string());
    }
  }
  if (cbpipe.empty() || dir.empty() || inputs.empty()) return Usage();
  if (cbpipe::Status root = cbpipe::testing::RequireRoot(); !root.ok()) {
    std::cerr << "cbpipe-demo: " << root.message() << "\n";
    return 2;
  }
  fs::remove_all(dir);
  fs::create_directories(dir);

  auto sftp = SshServer::Start(dir + "/sftp-server");
  if (!sftp.ok()) {
    std::cerr << "cbpipe-demo: sshd: " << sftp.status().ToString() << "\n";
    return 2;
  }
  FtpServerOptions ftps_options;
  ftps_options.tls = FtpTls::kExplicit;
  auto ftps = FtpServer::Start(dir + "/ftps-server", ftps_options);
  if (!ftps.ok()) {
    std::cerr << "cbpipe-demo: vsftpd: " << ftps.status().ToString() << "\n";
    return 2;
  }
  for (const char* folder : {"visa", "mastercard"}) {
    if (!cbpipe::testing::MakeRemoteDir(sftp->root_dir(), folder, true).ok())
      return 2;
  }
  for (const char* folder : {"amex", "discover"}) {
    if (!cbpipe::testing::MakeRemoteDir(ftps->root_dir(), folder, true).ok())
      return 2;
  }
  std::cout << "== SFTP server (OpenSSH) on 127.0.0.1:" << sftp->port()
            << ", host key SHA256:" << sftp->host_key_sha256() << "\n"
            << "== FTPS server (vsftpd, explicit TLS) on 127.0.0.1:"
            << ftps->port() << "\n";

  const std::string config = dir + "/demo.toml";
  std::ofstream(config)
      << "# Written by cbpipe-demo: two local servers stand in for the card "
         "companies.\n"
      << "[output]\nwork_dir = \"" << dir << "/work\"\n\n"
      << "[[destination]]\nname = \"visa\"\nnetworks = [\"visa\"]\n"
      << "url = \"" << sftp->url("visa") << "\"\n"
      << "username = \"" << sftp->user() << "\"\n"
      << "private_key = \"file:" << sftp->client_key_path() << "\"\n"
      << "known_hosts = \"" << sftp->known_hosts_path() << "\"\n\n"
      << "[[destination]]\nname = \"mastercard\"\nnetworks = "
         "[\"mastercard\"]\n"
      << "url = \"" << sftp->url("mastercard") << "\"\n"
      << "username = \"" << sftp->user() << "\"\n"
      << "private_key = \"file:" << sftp->client_key_path() << "\"\n"
      << "host_key_sha256 = \"" << sftp->host_key_sha256() << "\"\n\n"
      << "[[destination]]\nname = \"amex\"\nnetworks = [\"amex\"]\n"
      << "url = \"" << ftps->url("amex") << "\"\n"
      << "username = \"" << ftps->user() << "\"\n"
      << "password = \"env:CBPIPE_DEMO_FTPS_PASSWORD\"\n"
      << "ca_file = \"" << ftps->ca_cert_path() << "\"\n\n"
      << "[[destination]]\nname = \"discover\"\nnetworks = [\"discover\"]\n"
      << "url = \"" << ftps->url("discover") << "\"\n"
      << "username = \"" << ftps->user() << "\"\n"
      << "password = \"env:CBPIPE_DEMO_FTPS_PASSWORD\"\n"
      << "ca_file = \"" << ftps->ca_cert_path() << "\"\n";
  std::cout << "== config: " << config << "\n";

  std::vector<std::string> args = {cbpipe, "run", "--config", config};
  args.insert(args.end(), inputs.begin(), inputs.end());
  const std::vector<std::string> env = {"CBPIPE_DEMO_FTPS_PASSWORD=" +
                                        ftps->password()};
  std::cout << "== cbpipe run --config " << config << "\n" << std::flush;
  const int rc = Run(args, env);
  ShowReceived("SFTP server", sftp->root_dir(), {"visa", "mastercard"});
  ShowReceived("FTPS server", ftps->root_dir(), {"amex", "discover"});
  std::cout << "== a second run delivers nothing new\n" << std::flush;
  const int rc2 = Run(args, env);
  sftp->Stop();
  ftps->Stop();
  std::cout << "== servers stopped\n";
  return rc != 0 ? rc : rc2;
}
