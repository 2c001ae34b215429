#include "servers/test_servers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kStateDir[] = "/var/lib/cbpipe-test";
constexpr char kPasswordFile[] = "/var/lib/cbpipe-test/password";
constexpr char kLockFile[] = "/var/lib/cbpipe-test/setup.lock";
constexpr char kPamService[] = "cbpipe-test-ftp";
constexpr char kPamFile[] = "/etc/pam.d/cbpipe-test-ftp";

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteFile(const std::string& path, const std::string& content,
                 mode_t mode) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) return InternalError("cannot write " + tmp);
  }
  ::chmod(tmp.c_str(), mode);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return InternalError("cannot rename " + tmp + ": " + strerror(errno));
  }
  return OkStatus();
}

std::string Tail(const std::string& text, size_t n = 2000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

// Runs argv to completion; returns its combined output, or an error with it.
// `stdin_text` is fed to its standard input.
StatusOr<std::string> Run(const std::vector<std::string>& argv,
                          const std::string& stdin_text = "") {
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return InternalError("pipe failed");
  }
  pid_t pid = ::fork();
  if (pid < 0) return InternalError("fork failed");
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(out_pipe[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (!stdin_text.empty()) {
    (void)!::write(in_pipe[1], stdin_text.data(), stdin_text.size());
  }
  ::close(in_pipe[1]);
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out_pipe[0], buf, sizeof buf)) > 0) output.append(buf, n);
  ::close(out_pipe[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return InternalError(argv[0] + " " + (argv.size() > 1 ? argv[1] : "") +
                         " failed (status " + std::to_string(wstatus) +
                         "): " + Tail(output));
  }
  return output;
}

Status RunOk(const std::vector<std::string>& argv) {
  auto r = Run(argv);
  return r.ok() ? OkStatus() : r.status();
}

// Every descendant of `root` (children, grandchildren...), from /proc.
std::vector<pid_t> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return {};
  while (dirent* e = ::readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::string stat =
        ReadFileOrEmpty("/proc/" + std::string(e->d_name) + "/stat");
    size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(close_paren + 2));
    char state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    children.emplace(ppid, pid);
  }
  ::closedir(proc);
  std::vector<pid_t> out;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    auto [begin, end] = children.equal_range(p);
    for (auto it = begin; it != end; ++it) {
      out.push_back(it->second);
      todo.push_back(it->second);
    }
  }
  return out;
}

Status WaitForPort(ChildProcess& process, int port, const std::string& log,
                   const std::string& what) {
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    if (!process.Running()) {
      return UnavailableError(
          what + " exited at start: " + Tail(ReadFileOrEmpty(log)));
    }
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::close(fd);
    if (rc == 0) return OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  process.Kill();
  return DeadlineExceededError(what + " did not accept connections on port " +
                               std::to_string(port) +
                               " within 10 s: " + Tail(ReadFileOrEmpty(log)));
}

Status ChownToTestUser(const std::string& path) {
  passwd* pw = ::getpwnam(kTestUser);
  if (pw == nullptr)
    return FailedPreconditionError("no user " + std::string(kTestUser));
  if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    return InternalError("chown " + path + ": " + strerror(errno));
  }
  return OkStatus();
}

Status PrepareDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return InternalError("cannot create " + dir + ": " + ec.message());
  // mkdtemp makes 0700 folders: the test user must be able to traverse.
  for (fs::path p = fs::absolute(dir); p != p.root_path();
       p = p.parent_path()) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && (st.st_mode & 0011) != 0011 &&
        !(st.st_mode & S_ISVTX)) {
      ::chmod(p.c_str(), (st.st_mode & 07777) | 0011);
    }
  }
  return OkStatus();
}

std::string RandomPassword() {
  static const char kChars[] =
      "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  std::random_device rd;
  std::string out = "cbp-";
  for (int i = 0; i < 24; ++i) out += kChars[rd() % (sizeof kChars - 1)];
  return out;
}

}  // namespace

Status RequireRoot() {
  if (::geteuid() != 0) {
    return FailedPreconditionError(
        "the FTP/SFTP test servers need root (they create the system user "
        "cbpipe-ftp and run sshd/vsftpd); run the integration tests as root, "
        "as CI does");
  }
  for (const char* bin : {"/usr/sbin/sshd", "/usr/sbin/vsftpd"}) {
    if (::access(bin, X_OK) != 0) {
      return FailedPreconditionError(
          std::string(bin) +
          " is missing: apt-get install -y openssh-server vsftpd");
    }
  }
  return OkStatus();
}

StatusOr<std::string> EnsureTestUser() {
  CBPIPE_RETURN_IF_ERROR(RequireRoot());
  ::mkdir(kStateDir, 0700);
  int lock = ::open(kLockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return InternalError("cannot open " + std::string(kLockFile));
  ::flock(lock, LOCK_EX);
  auto unlock = [&] { ::close(lock); };

  Status status;
  bool created = false;
  if (::getpwnam(kTestUser) == nullptr) {
    status =
        RunOk({"useradd", "--system", "--home-dir", "/", "--no-create-home",
               "--shell", "/usr/sbin/nologin", kTestUser});
    if (!status.ok()) return unlock(), status;
    created = true;
  }
  std::string password = ReadFileOrEmpty(kPasswordFile);
  if (password.empty() || created) {
    if (password.empty()) password = RandomPassword();
    auto r = Run({"chpasswd"}, std::string(kTestUser) + ":" + password + "\n");
    if (!r.ok()) return unlock(), r.status();
    status = WriteFile(kPasswordFile, password, 0600);
    if (!status.ok()) return unlock(), status;
  }
  if (ReadFileOrEmpty(kPamFile).empty()) {
    status = WriteFile(kPamFile,
                       "# cbpipe test FTP server (tests/servers)\n"
                       "auth required pam_unix.so\n"
                       "account required pam_unix.so\n",
                       0644);
    if (!status.ok()) return unlock(), status;
  }
  unlock();
  return password;
}

StatusOr<int> FindFreePort(const std::string& host) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return UnavailableError("bind " + host + ":0: " + strerror(errno));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

// ---- ChildProcess ----

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Kill();
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

ChildProcess::~ChildProcess() { Kill(); }

StatusOr<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                           const std::string& log_path) {
  int log =
      ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return InternalError("cannot open " + log_path);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    return InternalError("fork failed");
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(1);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::close_range(3, ~0U, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(log);
  ChildProcess child;
  child.pid_ = pid;
  return child;
}

bool ChildProcess::Running() {
  if (pid_ <= 0) return false;
  int wstatus;
  pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  // Session processes may have left the group (sshd calls setsid): find
  // them through the process tree first, stop the parent from forking more.
  ::kill(pid_, SIGSTOP);
  for (pid_t child : Descendants(pid_)) ::kill(child, SIGKILL);
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

// ---- SshServer ----

std::string SshServer::url(const std::string& subdir, int port) const {
  std::string u =
      "sftp://127.0.0.1:" + std::to_string(port ? port : port_) + url_root_;
  if (!subdir.empty()) u += "/" + subdir;
  return u;
}

void SshServer::RemoveChroot() {
  process_.Kill();
  if (!chroot_ || root_dir_.empty()) return;
  std::error_code ec;
  fs::remove_all(root_dir_, ec);
}

StatusOr<SshServer> SshServer::Start(const std::string& dir_arg,
                                     const SshServerOptions& options) {
  CBPIPE_ASSIGN_OR_RETURN(std::string password, EnsureTestUser());
  std::string dir = fs::absolute(dir_arg).string();
  CBPIPE_RETURN_IF_ERROR(PrepareDir(dir));
  ::mkdir("/run/sshd", 0755);
  SshServer s;
  s.user_ = kTestUser;
  s.password_ = password;
  std::string ssh = dir + "/sshd";
  s.root_dir_ = dir + "/root";
  s.chroot_ = options.chroot;
  if (options.chroot) {
    const std::string base = std::string(kStateDir) + "/chroot";
    ::mkdir(base.c_str(), 0755);
    std::string tmpl = base + "/root-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return InternalError("mkdtemp " + tmpl + ": " + strerror(errno));
    }
    s.root_dir_ = tmpl;
    s.url_root_ = "";
  } else {
    s.url_root_ = s.root_dir_;
  }
  fs::create_directories(ssh);
  fs::create_directories(s.root_dir_);
  ::chmod(s.root_dir_.c_str(), 0755);
  if (!options.chroot) {
    CBPIPE_RETURN_IF_ERROR(ChownToTestUser(s.root_dir_));
  }
  const std::string sftp_command =
      options.write_only
          ? "internal-sftp -P opendir,readdir,read,stat,lstat,fstat"
          : "internal-sftp";

  for (const char* key :
       {"host_key", "other_host_key", "client_key", "unknown_key"}) {
    std::string path = ssh + "/" + key;
    fs::remove(path);
    fs::remove(path + ".pub");
    CBPIPE_RETURN_IF_ERROR(RunOk({"ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                                  "-C", key, "-f", path}));
  }
  s.client_key_path_ = ssh + "/client_key";
  s.unknown_key_path_ = ssh + "/unknown_key";
  CBPIPE_RETURN_IF_ERROR(WriteFile(ssh + "/authorized_keys",
                                   ReadFileOrEmpty(ssh + "/client_key.pub"),
                                   0644));
  CBPIPE_ASSIGN_OR_RETURN(
      std::string fp,
      Run({"ssh-keygen", "-l", "-E", "sha256", "-f", ssh + "/host_key.pub"}));
  size_t at = fp.find("SHA256:");
  if (at == std::string::npos) return InternalError("no fingerprint: " + fp);
  s.host_key_sha256_ = fp.substr(at + 7, fp.find(' ', at) - at - 7);

  auto pub_key_of = [&](const std::string& name) {
    std::istringstream in(ReadFileOrEmpty(ssh + "/" + name + ".pub"));
    std::string type, blob;
    in >> type >> blob;
    return type + " " + blob;
  };
  s.log_path_ = ssh + "/sshd.log";
  Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    CBPIPE_ASSIGN_OR_RETURN(s.port_, FindFreePort());
    std::string host = "[127.0.0.1]:" + std::to_string(s.port_);
    s.known_hosts_path_ = ssh + "/known_hosts";
    s.wrong_known_hosts_path_ = ssh + "/wrong_known_hosts";
    CBPIPE_RETURN_IF_ERROR(WriteFile(
        s.known_hosts_path_, host + " " + pub_key_of("host_key") + "\n", 0644));
    CBPIPE_RETURN_IF_ERROR(
        WriteFile(s.wrong_known_hosts_path_,
                  host + " " + pub_key_of("other_host_key") + "\n", 0644));
    std::string config =
        "ListenAddress 127.0.0.1\n"
        "Port " +
        std::to_string(s.port_) +
        "\n"
        "HostKey " +
        ssh +
        "/host_key\n"
        "PidFile " +
        ssh +
        "/sshd.pid\n"
        "AuthorizedKeysFile " +
        ssh +
        "/authorized_keys\n"
        "UsePAM no\n"
        "PasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        "PermitRootLogin no\n"
        "AllowUsers " +
        std::string(kTestUser) +
        "\n"
        "StrictModes no\n"
        "MaxStartups 100\n"
        "MaxAuthTries 6\n"
        "LoginGraceTime 20\n"
        "Subsystem sftp " +
        sftp_command +
        "\n"
        "ForceCommand " +
        sftp_command + "\n" +
        (options.chroot ? "ChrootDirectory " + s.root_dir_ + "\n" : "") +
        "LogLevel INFO\n";
    CBPIPE_RETURN_IF_ERROR(WriteFile(ssh + "/sshd_config", config, 0644));
    CBPIPE_ASSIGN_OR_RETURN(
        s.process_, ChildProcess::Spawn({"/usr/sbin/sshd", "-D", "-e", "-f",
                                         ssh + "/sshd_config"},
                                        s.log_path_));
    last = WaitForPort(s.process_, s.port_, s.log_path_, "sshd");
    if (last.ok()) return s;
    s.process_.Kill();
  }
  return last;
}

// ---- FtpServer ----

std::string FtpServer::url(const std::string& subdir, const std::string& host,
                           int port) const {
  std::string u = (tls_ == FtpTls::kNone ? "ftp://" : "ftps://") + host + ":" +
                  std::to_string(port ? port : port_) + "/";
  return u + subdir;
}

StatusOr<FtpServer> FtpServer::Start(const std::string& dir_arg,
                                     const FtpServerOptions& options) {
  CBPIPE_ASSIGN_OR_RETURN(std::string password, EnsureTestUser());
  std::string dir = fs::absolute(dir_arg).string();
  CBPIPE_RETURN_IF_ERROR(PrepareDir(dir));
  FtpServer s;
  s.tls_ = options.tls;
  s.user_ = kTestUser;
  s.password_ = password;
  std::string ftp = dir + "/vsftpd";
  s.root_dir_ = dir + "/root";
  fs::create_directories(ftp + "/empty");
  ::chmod((ftp + "/empty").c_str(), 0555);
  fs::create_directories(s.root_dir_);
  ::chmod(s.root_dir_.c_str(), 0755);
  CBPIPE_RETURN_IF_ERROR(ChownToTestUser(s.root_dir_));

  std::string tls_config;
  if (options.tls != FtpTls::kNone) {
    s.ca_cert_path_ = ftp + "/cert.pem";
    CBPIPE_RETURN_IF_ERROR(RunOk(
        {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ftp + "/key.pem",
         "-out", s.ca_cert_path_, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost"}));
    ::chmod((ftp + "/key.pem").c_str(), 0600);
    tls_config =
        "ssl_enable=YES\n"
        "rsa_cert_file=" +
        s.ca_cert_path_ +
        "\n"
        "rsa_private_key_file=" +
        ftp +
        "/key.pem\n"
        "require_ssl_reuse=NO\n"
        "force_local_logins_ssl=YES\n"
        "force_local_data_ssl=YES\n"
        "ssl_ciphers=HIGH\n";
    if (options.tls == FtpTls::kImplicit) tls_config += "implicit_ssl=YES\n";
  }
  s.log_path_ = ftp + "/vsftpd.log";
  Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    CBPIPE_ASSIGN_OR_RETURN(s.port_, FindFreePort());
    if (options.pasv_port_count <= 1) {
      CBPIPE_ASSIGN_OR_RETURN(s.data_port_, FindFreePort());
    } else {
      // A range below the kernel's ephemeral ports (32768-60999), so that
      // client sockets do not take them; vsftpd skips ports in use.
      std::random_device rd;
      s.data_port_ = 10000 + static_cast<int>(rd() % 20000);
    }
    const int last_data_port =
        s.data_port_ + std::max(1, options.pasv_port_count) - 1;
    std::string config =
        "listen=YES\n"
        "listen_ipv6=NO\n"
        "background=NO\n"
        "listen_address=127.0.0.1\n"
        "listen_port=" +
        std::to_string(s.port_) +
        "\n"
        "anonymous_enable=NO\n"
        "local_enable=YES\n"
        "write_enable=YES\n"
        "local_umask=022\n"
        "pam_service_name=" +
        std::string(kPamService) +
        "\n"
        "userlist_enable=NO\n"
        "local_root=" +
        s.root_dir_ +
        "\n"
        "chroot_local_user=NO\n"
        "secure_chroot_dir=" +
        ftp +
        "/empty\n"
        "pasv_enable=YES\n"
        "pasv_address=" +
        options.pasv_address +
        "\n"
        "pasv_addr_resolve=NO\n"
        "pasv_min_port=" +
        std::to_string(s.data_port_) +
        "\n"
        "pasv_max_port=" +
        std::to_string(last_data_port) +
        "\n"
        "port_enable=YES\n"
        "connect_from_port_20=NO\n"
        "delay_failed_login=0\n"
        "delay_successful_login=0\n"
        "max_login_fails=100\n"
        "idle_session_timeout=60\n"
        "data_connection_timeout=30\n"
        "xferlog_enable=YES\n"
        "vsftpd_log_file=" +
        s.log_path_ +
        "\n"
        "seccomp_sandbox=NO\n"
        "isolate=NO\n"
        "isolate_network=NO\n" +
        (options.write_only ? "download_enable=NO\ndirlist_enable=NO\n" : "") +
        tls_config;
    CBPIPE_RETURN_IF_ERROR(WriteFile(ftp + "/vsftpd.conf", config, 0600));
    CBPIPE_ASSIGN_OR_RETURN(
        s.process_,
        ChildProcess::Spawn({"/usr/sbin/vsftpd", ftp + "/vsftpd.conf"},
                            s.log_path_));
    last = WaitForPort(s.process_, s.port_, s.log_path_, "vsftpd");
    if (last.ok()) return s;
    s.process_.Kill();
  }
  return last;
}

// ---- ProFtpdServer ----

std::string ProFtpdServer::url(const std::string& subdir, int port) const {
  return (mode_ == ProFtpdMode::kSftp ? "sftp" : "ftps") +
         std::string("://127.0.0.1:") + std::to_string(port ? port : port_) +
         "/" + subdir;
}

StatusOr<ProFtpdServer> ProFtpdServer::Start(const std::string& dir_arg,
                                             ProFtpdMode mode) {
  std::string binary = "/opt/cbpipe-test-proftpd/usr/sbin/proftpd";
  std::string modules = "/opt/cbpipe-test-proftpd/usr/lib/proftpd";
  if (::access(binary.c_str(), X_OK) != 0) {
    binary = "/usr/sbin/proftpd";
    modules = "/usr/lib/proftpd";
  }
  if (::access(binary.c_str(), X_OK) != 0 ||
      ::access((modules + "/mod_sftp.so").c_str(), R_OK) != 0) {
    return FailedPreconditionError(
        "ProFTPD with mod_sftp is missing: run scripts/bootstrap (it unpacks "
        "proftpd-core and proftpd-mod-crypto in /opt/cbpipe-test-proftpd)");
  }
  CBPIPE_ASSIGN_OR_RETURN(std::string password, EnsureTestUser());
  std::string dir = fs::absolute(dir_arg).string();
  CBPIPE_RETURN_IF_ERROR(PrepareDir(dir));
  ProFtpdServer s;
  s.mode_ = mode;
  s.user_ = kTestUser;
  s.password_ = password;
  const std::string conf = dir + "/proftpd";
  s.root_dir_ = dir + "/root";
  fs::create_directories(conf);
  fs::create_directories(s.root_dir_);
  ::chmod(s.root_dir_.c_str(), 0755);
  for (const char* key : {"host_ecdsa", "host_rsa", "client_key"}) {
    fs::remove(conf + "/" + key);
    fs::remove(conf + "/" + key + ".pub");
  }
  CBPIPE_RETURN_IF_ERROR(
      RunOk({"ssh-keygen", "-q", "-t", "ecdsa", "-b", "256", "-m", "PEM", "-N",
             "", "-f", conf + "/host_ecdsa"}));
  CBPIPE_RETURN_IF_ERROR(
      RunOk({"ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N",
             "", "-f", conf + "/host_rsa"}));
  CBPIPE_RETURN_IF_ERROR(RunOk({"ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                                "-f", conf + "/client_key"}));
  s.client_key_path_ = conf + "/client_key";
  // mod_sftp reads authorized keys in RFC 4716 form.
  CBPIPE_ASSIGN_OR_RETURN(std::string rfc4716, Run({"ssh-keygen", "-e", "-f",
                                                    conf + "/client_key.pub"}));
  CBPIPE_RETURN_IF_ERROR(
      WriteFile(conf + "/keys_" + std::string(kTestUser), rfc4716, 0644));
  CBPIPE_ASSIGN_OR_RETURN(std::string fp,
                          Run({"ssh-keygen", "-l", "-E", "sha256", "-f",
                               conf + "/host_ecdsa.pub"}));
  size_t at = fp.find("SHA256:");
  if (at == std::string::npos) return InternalError("no fingerprint: " + fp);
  s.host_key_sha256_ = fp.substr(at + 7, fp.find(' ', at) - at - 7);

  passwd* pw = ::getpwnam(kTestUser);
  if (pw == nullptr) return FailedPreconditionError("no user cbpipe-ftp");
  // SFTP: no password login ("*" never matches).
  std::string hash = "*";
  if (mode != ProFtpdMode::kSftp) {
    CBPIPE_ASSIGN_OR_RETURN(
        hash, Run({"openssl", "passwd", "-6", "-stdin"}, password + "\n"));
    while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r')) {
      hash.pop_back();
    }
    s.ca_cert_path_ = conf + "/cert.pem";
    CBPIPE_RETURN_IF_ERROR(RunOk(
        {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", conf + "/key.pem",
         "-out", s.ca_cert_path_, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost"}));
    ::chmod((conf + "/key.pem").c_str(), 0600);
  }
  CBPIPE_RETURN_IF_ERROR(WriteFile(conf + "/passwd",
                                   std::string(kTestUser) + ":" + hash + ":" +
                                       std::to_string(pw->pw_uid) + ":" +
                                       std::to_string(pw->pw_gid) +
                                       "::" + s.root_dir_ + ":/bin/false\n",
                                   0600));
  CBPIPE_RETURN_IF_ERROR(WriteFile(
      conf + "/group",
      std::string(kTestUser) + ":x:" + std::to_string(pw->pw_gid) + ":\n",
      0600));
  std::string host_pub;
  {
    std::istringstream in(ReadFileOrEmpty(conf + "/host_ecdsa.pub"));
    std::string type, blob;
    in >> type >> blob;
    host_pub = type + " " + blob;
  }
  s.log_path_ = conf + "/proftpd.log";
  Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    CBPIPE_ASSIGN_OR_RETURN(s.port_, FindFreePort());
    s.known_hosts_path_ = conf + "/known_hosts";
    CBPIPE_RETURN_IF_ERROR(WriteFile(
        s.known_hosts_path_,
        "[127.0.0.1]:" + std::to_string(s.port_) + " " + host_pub + "\n",
        0644));
    std::ostringstream c;
    c << "ServerName \"cbpipe-test\"\n"
      << "ServerType standalone\nDefaultServer off\nPort 0\n"
      << "SocketBindTight on\nUser nobody\nGroup nogroup\n"
      << "PidFile " << conf << "/proftpd.pid\n"
      << "ScoreboardFile " << conf << "/proftpd.scoreboard\n"
      << "DelayTable " << conf << "/proftpd.delay\n"
      << "WtmpLog off\nUseReverseDNS off\n"
      << "SystemLog " << s.log_path_ << "\n"
      << "ModulePath " << modules << "\n"
      << "LoadModule "
      << (mode == ProFtpdMode::kSftp ? "mod_sftp.c" : "mod_tls.c") << "\n"
      << "<VirtualHost 127.0.0.1>\n"
      << "  Port " << s.port_ << "\n";
    if (mode == ProFtpdMode::kSftp) {
      c << "  SFTPEngine on\n"
        << "  SFTPHostKey " << conf << "/host_ecdsa\n"
        << "  SFTPHostKey " << conf << "/host_rsa\n"
        << "  SFTPAuthorizedUserKeys file:" << conf << "/keys_%u\n"
        << "  SFTPAuthMethods publickey\n"
        << "  SFTPLog " << conf << "/sftp.log\n";
    } else {
      // Explicit FTPS; session reuse on data connections is required (the
      // default: no TLSOptions NoSessionReuseRequired).
      std::random_device rd;
      const int pasv = 30000 + static_cast<int>(rd() % 2000) * kDataPorts;
      s.data_port_ = pasv;
      c << "  TLSEngine on\n  TLSRequired on\n"
        << "  TLSProtocol "
        << (mode == ProFtpdMode::kFtpsTls12 ? "TLSv1.2" : "TLSv1.3") << "\n"
        << "  TLSECCertificateFile " << s.ca_cert_path_ << "\n"
        << "  TLSECCertificateKeyFile " << conf << "/key.pem\n"
        << "  TLSVerifyClient off\n"
        << "  TLSLog " << conf << "/tls.log\n"
        << "  PassivePorts " << pasv << " " << pasv + kDataPorts - 1 << "\n";
    }
    c << "  AuthOrder mod_auth_file.c\n"
      << "  AuthUserFile " << conf << "/passwd\n"
      << "  AuthGroupFile " << conf << "/group\n"
      // The transfer log in the fixture's folder, not the compiled-in
      // /var/log/xferlog shared by every run on the machine; one line per
      // file, unsynced, as on a production server.
      << "  TransferLog " << conf << "/xferlog\n"
      << "  RequireValidShell off\n  DefaultRoot ~\n  Umask 022\n"
      << "  AllowOverwrite on\n  TimeoutIdle 60\n"
      << "</VirtualHost>\n";
    const std::string config = c.str();
    CBPIPE_RETURN_IF_ERROR(WriteFile(conf + "/proftpd.conf", config, 0644));
    CBPIPE_ASSIGN_OR_RETURN(
        s.process_,
        ChildProcess::Spawn({binary, "-n", "-c", conf + "/proftpd.conf"},
                            s.log_path_));
    last = WaitForPort(s.process_, s.port_, s.log_path_, "proftpd");
    if (last.ok()) return s;
    s.process_.Kill();
  }
  return last;
}

// ---- PureFtpdServer ----

std::string PureFtpdServer::url(const std::string& subdir) const {
  return "ftps://127.0.0.1:" + std::to_string(port_) + "/" + subdir;
}

StatusOr<PureFtpdServer> PureFtpdServer::Start(const std::string& dir_arg) {
  const std::string base = "/opt/cbpipe-test-pureftpd/usr";
  if (::access((base + "/sbin/pure-ftpd").c_str(), X_OK) != 0) {
    return FailedPreconditionError(
        "pure-ftpd is missing: run scripts/bootstrap (it unpacks pure-ftpd "
        "and pure-ftpd-common in /opt/cbpipe-test-pureftpd)");
  }
  CBPIPE_ASSIGN_OR_RETURN(std::string password, EnsureTestUser());
  std::string dir = fs::absolute(dir_arg).string();
  CBPIPE_RETURN_IF_ERROR(PrepareDir(dir));
  PureFtpdServer s;
  s.user_ = kTestUser;
  s.password_ = password;
  const std::string conf = dir + "/pure-ftpd";
  s.root_dir_ = dir + "/root";
  fs::create_directories(conf);
  fs::create_directories(s.root_dir_);
  ::chmod(s.root_dir_.c_str(), 0755);
  CBPIPE_RETURN_IF_ERROR(ChownToTestUser(s.root_dir_));
  s.ca_cert_path_ = conf + "/cert.pem";
  CBPIPE_RETURN_IF_ERROR(RunOk(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", conf + "/key.pem",
       "-out", s.ca_cert_path_, "-days", "2", "-subj", "/CN=localhost",
       "-addext", "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost"}));
  CBPIPE_RETURN_IF_ERROR(WriteFile(
      conf + "/both.pem",
      ReadFileOrEmpty(conf + "/key.pem") + ReadFileOrEmpty(s.ca_cert_path_),
      0600));
  passwd* pw = ::getpwnam(kTestUser);
  if (pw == nullptr) return FailedPreconditionError("no user cbpipe-ftp");
  fs::remove(conf + "/passwd");
  CBPIPE_RETURN_IF_ERROR(
      Run({base + "/bin/pure-pw", "useradd", kTestUser, "-u",
           std::to_string(pw->pw_uid), "-g", std::to_string(pw->pw_gid), "-d",
           s.root_dir_, "-f", conf + "/passwd", "-F", conf + "/passwd.pdb",
           "-m"},
          password + "\n" + password + "\n")
          .status());
  const std::string log = conf + "/pure-ftpd.log";
  Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    CBPIPE_ASSIGN_OR_RETURN(s.port_, FindFreePort());
    std::random_device rd;
    const int pasv = 32100 + static_cast<int>(rd() % 80) * kDataPorts;
    s.data_port_ = pasv;
    CBPIPE_ASSIGN_OR_RETURN(
        s.process_,
        ChildProcess::Spawn(
            {base + "/sbin/pure-ftpd", "-S",
             "127.0.0.1," + std::to_string(s.port_), "-l",
             "puredb:" + conf + "/passwd.pdb", "-u", "1", "-Y", "2", "-2",
             conf + "/both.pem", "-p",
             std::to_string(pasv) + ":" + std::to_string(pasv + kDataPorts - 1),
             "-E", "-H"},
            log));
    last = WaitForPort(s.process_, s.port_, log, "pure-ftpd");
    if (last.ok()) return s;
    s.process_.Kill();
  }
  return last;
}

Status MakeRemoteDir(const std::string& root, const std::string& relative,
                     bool writable) {
  std::string path = root + "/" + relative;
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return InternalError("cannot create " + path + ": " + ec.message());
  ::chmod(path.c_str(), 0755);
  if (writable) return ChownToTestUser(path);
  if (::chown(path.c_str(), 0, 0) != 0) return InternalError("chown " + path);
  return OkStatus();
}

// ---- CuttingProxy ----

namespace {

int ListenOn(const std::string& host, int port, int* bound_port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 64) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *bound_port = ntohs(addr.sin_port);
  return fd;
}

int ConnectTo(const std::string& host, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void ResetAndClose(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

StatusOr<std::unique_ptr<CuttingProxy>> CuttingProxy::Start(
    const Options& options) {
  std::unique_ptr<CuttingProxy> p(new CuttingProxy());
  p->options_ = options;
  p->listen_fd_ = ListenOn(options.listen_host, options.listen_port, &p->port_);
  if (p->listen_fd_ < 0) {
    return UnavailableError("proxy cannot listen on " + options.listen_host +
                            ":" + std::to_string(options.listen_port) + ": " +
                            strerror(errno));
  }
  if (::pipe2(p->wake_pipe_, O_CLOEXEC) != 0) {
    return InternalError("pipe failed");
  }
  p->thread_ = std::thread([raw = p.get()] { raw->Run(); });
  return p;
}

CuttingProxy::~CuttingProxy() {
  if (thread_.joinable()) {
    (void)!::write(wake_pipe_[1], "x", 1);
    thread_.join();
  }
  for (int fd : {listen_fd_, wake_pipe_[0], wake_pipe_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

void CuttingProxy::Run() {
  struct Pair {
    int client, server;
    uint64_t upstream = 0;
  };
  std::vector<Pair> pairs;
  std::vector<char> buf(256 * 1024);
  for (;;) {
    std::vector<pollfd> fds = {{wake_pipe_[0], POLLIN, 0},
                               {listen_fd_, POLLIN, 0}};
    for (const Pair& p : pairs) {
      fds.push_back({p.client, POLLIN, 0});
      fds.push_back({p.server, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    if (fds[1].revents & POLLIN) {
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        ++connections_;
        int server = ConnectTo(options_.target_host, options_.target_port);
        if (server < 0) {
          ResetAndClose(client);
        } else {
          pairs.push_back({client, server});
        }
      }
    }
    std::vector<bool> dead(pairs.size(), false);
    for (size_t i = 0; i < pairs.size() && 2 + 2 * i + 1 < fds.size(); ++i) {
      Pair& p = pairs[i];
      for (int side = 0; side < 2 && !dead[i]; ++side) {
        const pollfd& pfd = fds[2 + 2 * i + side];
        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        int from = side == 0 ? p.client : p.server;
        int to = side == 0 ? p.server : p.client;
        ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
        if (n <= 0) {
          dead[i] = true;
          break;
        }
        if (side == 0 && options_.cut_after_bytes > 0 &&
            p.upstream + static_cast<uint64_t>(n) > options_.cut_after_bytes) {
          // Forward up to the limit, then reset both sides.
          size_t allowed =
              static_cast<size_t>(options_.cut_after_bytes - p.upstream);
          WriteAll(to, buf.data(), allowed);
          // Counted before the reset: a client that sees the reset must
          // find the cut counted, or a test retries as if none happened.
          ++cuts_;
          ResetAndClose(p.client);
          ResetAndClose(p.server);
          p.client = p.server = -1;
          dead[i] = true;
          break;
        }
        if (side == 0) p.upstream += static_cast<uint64_t>(n);
        if (!WriteAll(to, buf.data(), static_cast<size_t>(n))) dead[i] = true;
      }
    }
    std::vector<Pair> alive;
    for (size_t i = 0; i < pairs.size(); ++i) {
      if (!dead[i]) {
        alive.push_back(pairs[i]);
      } else if (pairs[i].client >= 0) {
        ::close(pairs[i].client);
        ::close(pairs[i].server);
      }
    }
    pairs.swap(alive);
  }
  for (const Pair& p : pairs) {
    ::close(p.client);
    ::close(p.server);
  }
}

}  // namespace cbpipe::testing
