// The serve tests' card-company servers and their [[destination]] tables:
// SFTP (sshd, key login, pinned host key) for visa and mastercard, FTPS
// (vsftpd, explicit TLS, password login) for amex and discover.
//
//   std::optional<SshServer> sftp;  std::optional<FtpServer> ftps;
//   ASSERT_TRUE(StartCardServers(dir, &sftp, &ftps).ok());
//   ... deliver ...; CardFiles got = ReceivedFiles(*sftp, *ftps);
//   std::string toml = SftpDestination(*sftp, "visa", FastRetry(3)) +
//                      FtpsDestination(*ftps, "amex", "env:FTPS_PASSWORD",
//                                      FastRetry(3));
#pragma once

#include <optional>
#include <string>

#include "e2e/card_files.h"
#include "servers/test_servers.h"

namespace cbpipe::testing {

// Starts both servers under `dir` (sftp/, ftps/) with a writable folder
// per network they receive.
inline Status StartCardServers(const std::string& dir,
                               std::optional<SshServer>* sftp,
                               std::optional<FtpServer>* ftps) {
  CBPIPE_ASSIGN_OR_RETURN(SshServer ssh, SshServer::Start(dir + "/sftp"));
  sftp->emplace(std::move(ssh));
  FtpServerOptions options;
  options.tls = FtpTls::kExplicit;
  CBPIPE_ASSIGN_OR_RETURN(FtpServer ftp, FtpServer::Start(dir + "/ftps", options));
  ftps->emplace(std::move(ftp));
  for (const char* network : {"visa", "mastercard"})
    CBPIPE_RETURN_IF_ERROR(MakeRemoteDir((*sftp)->root_dir(), network, true));
  for (const char* network : {"amex", "discover"})
    CBPIPE_RETURN_IF_ERROR(MakeRemoteDir((*ftps)->root_dir(), network, true));
  return OkStatus();
}

// What the servers StartCardServers started received, by network.
inline CardFiles ReceivedFiles(const SshServer& sftp, const FtpServer& ftps) {
  CardFiles got;
  for (const char* network : {"visa", "mastercard"})
    got.AddUnder(sftp.root_dir() + "/" + network, network);
  for (const char* network : {"amex", "discover"})
    got.AddUnder(ftps.root_dir() + "/" + network, network);
  return got;
}

// A [destination.retry] table with short waits (tests).
inline std::string FastRetry(int max_attempts) {
  return "[destination.retry]\ninterval_seconds = 0.2\nbackoff_rate = 1.5\n"
         "max_delay_seconds = 1\njitter = \"NONE\"\nmax_attempts = " +
         std::to_string(max_attempts) + "\n";
}

// `network` to the folder of that name on `sftp`; `port` (0: the server's)
// lets a test go through a proxy.
inline std::string SftpDestination(const SshServer& sftp,
                                   const std::string& network,
                                   const std::string& retry, int port = 0) {
  return "\n[[destination]]\nname = \"" + network + "\"\nnetworks = [\"" +
         network + "\"]\nurl = \"" + sftp.url(network, port) +
         "\"\nusername = \"" + sftp.user() + "\"\nprivate_key = \"file:" +
         sftp.client_key_path() + "\"\nhost_key_sha256 = \"" +
         sftp.host_key_sha256() + "\"\n" + retry;
}

// `network` to the folder of that name on `ftps`, the password from the
// secret reference `password_ref`.
inline std::string FtpsDestination(const FtpServer& ftps,
                                   const std::string& network,
                                   const std::string& password_ref,
                                   const std::string& retry) {
  return "\n[[destination]]\nname = \"" + network + "\"\nnetworks = [\"" +
         network + "\"]\nurl = \"" + ftps.url(network) + "\"\nusername = \"" +
         ftps.user() + "\"\npassword = \"" + password_ref +
         "\"\nca_file = \"" + ftps.ca_cert_path() + "\"\n" + retry;
}

}  // namespace cbpipe::testing
