// Real SFTP (OpenSSH sshd) and FTP/FTPS (vsftpd) servers on 127.0.0.1 for
// integration tests and benchmarks, plus a TCP proxy that cuts connections.
//
//   auto sftp = SshServer::Start(dir);       // dir: an empty scratch folder
//   if (!sftp.ok()) FAIL() << sftp.status().ToString();
//   destination.url = sftp->url("in");      //
//   sftp://cbpipe-ftp@127.0.0.1:P/<root>/in destination.known_hosts =
//   sftp->known_hosts_path();
//
//   auto ftps = FtpServer::Start(dir, {.tls = FtpTls::kExplicit});
//   destination.ca_file = ftps->ca_cert_path();
//
// Both servers log in the system user kTestUser (created on first use with
// a random password kept in /var/lib/cbpipe-test/password, mode 0600, shell
// /usr/sbin/nologin), so they need root: RequireRoot() says why otherwise.
// Each server is one foreground process in its own process group; Stop()
// (and the destructor) kill it and every session process it forked.
//
// Cutting transfers mid-way (CuttingProxy):
//  - SFTP is one TCP connection: put a CuttingProxy in front of the sshd
//    port and point the URL at the proxy (pin the host key by fingerprint,
//    since a known_hosts line names the port).
//  - FTP/FTPS have a data connection whose port the server announces. Start
//    the FtpServer with pasv_address = "127.0.0.2" (any 127/8 address is
//    loopback on Linux): vsftpd still listens on 127.0.0.1:data_port() but
//    tells the client to connect to 127.0.0.2:data_port(), where a
//    CuttingProxy listens. For EPSV (which carries no address) the control
//    connection must also reach 127.0.0.2: a non-cutting proxy on
//    127.0.0.2:port() forwards it. The certificate names 127.0.0.2 too.
//    TLS passes through the proxies untouched.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace cbpipe::testing {

inline constexpr char kTestUser[] = "cbpipe-ftp";

// kFailedPrecondition with an explanation when not running as root.
Status RequireRoot();

// Creates kTestUser and its PAM service if needed (idempotent, safe when
// several test processes call it at once) and returns its password.
StatusOr<std::string> EnsureTestUser();

// A port that was free on 127.0.0.1 a moment ago.
StatusOr<int> FindFreePort(const std::string& host = "127.0.0.1");

// A child process in its own process group; killed (with its descendants)
// on destruction.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  // argv[0] must be a path. stdout and stderr go to `log_path`.
  static StatusOr<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                      const std::string& log_path);
  pid_t pid() const { return pid_; }
  bool Running();
  // SIGKILLs the process, its group and every descendant; reaps it.
  void Kill();

 private:
  pid_t pid_ = -1;
};

struct SshServerOptions {
  // A write-only drop box: internal-sftp -P opendir,readdir,read,stat,
  // lstat,fstat (upload, rename and remove are all that is left).
  bool write_only = false;
  // ChrootDirectory: the session sees only root_dir(), URLs start at "/".
  // sshd wants every component of the path root-owned and not writable by
  // others, which /tmp is not: the root is then a folder under
  // /var/lib/cbpipe-test/chroot/, removed by RemoveChroot().
  bool chroot = false;
};

class SshServer {
 public:
  // Generates host and client keys under `dir`, writes sshd_config and
  // starts sshd on a free port. Root dir: `dir`/root, owned by kTestUser.
  static StatusOr<SshServer> Start(const std::string& dir,
                                   const SshServerOptions& options = {});

  int port() const { return port_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  // Base64 SHA-256 of the host key, without "SHA256:".
  const std::string& host_key_sha256() const { return host_key_sha256_; }
  // A known_hosts file naming [127.0.0.1]:port().
  const std::string& known_hosts_path() const { return known_hosts_path_; }
  // A known_hosts file with another key for [127.0.0.1]:port().
  const std::string& wrong_known_hosts_path() const {
    return wrong_known_hosts_path_;
  }
  // An ed25519 key (mode 0600) in authorized_keys, and one that is not.
  const std::string& client_key_path() const { return client_key_path_; }
  const std::string& unknown_key_path() const { return unknown_key_path_; }
  // Absolute path of the folder the tests upload into.
  const std::string& root_dir() const { return root_dir_; }
  // "sftp://127.0.0.1:<port><root_dir>/<subdir>" (user not in the URL);
  // chrooted: "sftp://127.0.0.1:<port>/<subdir>".
  std::string url(const std::string& subdir, int port = 0) const;
  const std::string& log_path() const { return log_path_; }
  void Stop() { process_.Kill(); }
  // Stops the server and removes the chroot folder (if any).
  void RemoveChroot();

 private:
  ChildProcess process_;
  int port_ = 0;
  std::string user_, password_, host_key_sha256_, known_hosts_path_,
      wrong_known_hosts_path_, client_key_path_, unknown_key_path_, root_dir_,
      url_root_, log_path_;
  bool chroot_ = false;
};

// ProFTPD 1.3.8 with mod_sftp (SFTP, public key auth, ECDSA host key), one
// foreground process. Users come from its own AuthUserFile (kTestUser's uid,
// home root_dir(), DefaultRoot ~: URLs start at "/"). The binary is the one
// scripts/bootstrap unpacks in /opt/cbpipe-test-proftpd (Debian's
// proftpd-core conflicts with vsftpd), else /usr/sbin/proftpd.
// kSftp: mod_sftp. kFtps*: mod_tls, explicit FTPS (AUTH TLS), password
// login, TLS session reuse required on data connections (ProFTPD's
// default), TLS 1.2 only or TLS 1.3 only.
enum class ProFtpdMode { kSftp, kFtpsTls12, kFtpsTls13Only };

class ProFtpdServer {
 public:
  static StatusOr<ProFtpdServer> Start(const std::string& dir,
                                       ProFtpdMode mode = ProFtpdMode::kSftp);

  int port() const { return port_; }
  const std::string& user() const { return user_; }
  const std::string& host_key_sha256() const { return host_key_sha256_; }
  const std::string& known_hosts_path() const { return known_hosts_path_; }
  const std::string& client_key_path() const { return client_key_path_; }
  const std::string& root_dir() const { return root_dir_; }
  // FTPS: the login password and the self-signed certificate.
  const std::string& password() const { return password_; }
  const std::string& ca_cert_path() const { return ca_cert_path_; }
  // "sftp://127.0.0.1:<port>/<subdir>" (or ftps://).
  std::string url(const std::string& subdir, int port = 0) const;
  const std::string& log_path() const { return log_path_; }
  // FTPS: passive data ports data_port() .. data_port() + kDataPorts - 1,
  // where a test can put cutting proxies (on 127.0.0.2, see FtpServer).
  static constexpr int kDataPorts = 8;
  int data_port() const { return data_port_; }
  void Stop() { process_.Kill(); }

 private:
  ChildProcess process_;
  ProFtpdMode mode_ = ProFtpdMode::kSftp;
  int port_ = 0, data_port_ = 0;
  std::string user_, password_, ca_cert_path_, host_key_sha256_,
      known_hosts_path_, client_key_path_, root_dir_, log_path_;
};

enum class FtpTls { kNone, kExplicit, kImplicit };

struct FtpServerOptions {
  FtpTls tls = FtpTls::kNone;
  // The address announced in PASV replies (see the header comment).
  std::string pasv_address = "127.0.0.1";
  // Passive data ports: data_port() .. data_port() + count - 1. A cutting
  // proxy needs a single port; many files need many (vsftpd stalls while
  // the port of the previous data connection is still being closed).
  int pasv_port_count = 200;
  // A write-only drop box: download_enable=NO, dirlist_enable=NO.
  bool write_only = false;
};

class FtpServer {
 public:
  static StatusOr<FtpServer> Start(const std::string& dir,
                                   const FtpServerOptions& options = {});

  int port() const { return port_; }
  // The first passive data port vsftpd listens on (on 127.0.0.1).
  int data_port() const { return data_port_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  // Self-signed certificate (SAN 127.0.0.1, 127.0.0.2, localhost); empty
  // without TLS.
  const std::string& ca_cert_path() const { return ca_cert_path_; }
  // The user's FTP root: URLs are relative to it.
  const std::string& root_dir() const { return root_dir_; }
  // "ftp://127.0.0.1:<port>/<subdir>" or ftps:// (TLS).
  std::string url(const std::string& subdir,
                  const std::string& host = "127.0.0.1", int port = 0) const;
  const std::string& log_path() const { return log_path_; }
  void Stop() { process_.Kill(); }

 private:
  ChildProcess process_;
  FtpTls tls_ = FtpTls::kNone;
  int port_ = 0, data_port_ = 0;
  std::string user_, password_, ca_cert_path_, root_dir_, log_path_;
};

// pure-ftpd 1.0.50 with TLS required (-Y 2), one virtual user (pure-pw,
// kTestUser's uid, chrooted to root_dir(): URLs start at "/"). The binary is
// the one scripts/bootstrap unpacks in /opt/cbpipe-test-pureftpd (Debian's
// pure-ftpd conflicts with vsftpd).
class PureFtpdServer {
 public:
  static StatusOr<PureFtpdServer> Start(const std::string& dir);

  int port() const { return port_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  const std::string& ca_cert_path() const { return ca_cert_path_; }
  const std::string& root_dir() const { return root_dir_; }
  // "ftps://127.0.0.1:<port>/<subdir>".
  std::string url(const std::string& subdir) const;
  // Passive data ports data_port() .. data_port() + kDataPorts - 1.
  static constexpr int kDataPorts = 8;
  int data_port() const { return data_port_; }
  void Stop() { process_.Kill(); }

 private:
  ChildProcess process_;
  int port_ = 0, data_port_ = 0;
  std::string user_, password_, ca_cert_path_, root_dir_;
};

// Creates `root`/`relative` (and parents). Writable: owned by kTestUser;
// otherwise owned by root, mode 0755 (the test user cannot write in it).
Status MakeRemoteDir(const std::string& root, const std::string& relative,
                     bool writable);

// Forwards TCP connections from listen_host:port() to target_host:target_port.
// When cut_after_bytes > 0, each connection is reset (both sides, RST) once
// more than that many bytes went upstream (client to server) through it.
class CuttingProxy {
 public:
  struct Options {
    std::string listen_host = "127.0.0.1";
    int listen_port = 0;  // 0: any free port
    std::string target_host = "127.0.0.1";
    int target_port = 0;
    uint64_t cut_after_bytes = 0;  // 0: never cut
  };
  static StatusOr<std::unique_ptr<CuttingProxy>> Start(const Options& options);
  ~CuttingProxy();

  int port() const { return port_; }
  // Number of connections cut so far.
  int cuts() const { return cuts_.load(); }
  // Number of client connections accepted so far.
  int connections() const { return connections_.load(); }

 private:
  CuttingProxy() = default;
  void Run();

  Options options_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<int> cuts_{0};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

}  // namespace cbpipe::testing
