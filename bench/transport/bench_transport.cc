// Upload throughput of cbpipe's network transports against the curl CLI,
// both talking to the same local servers (tests/servers): for each protocol,
// a few large files and many small ones, each over one connection.
//
//   bench_transport [--runs 5] [--protocols sftp,ftps,...]
//                   [--workloads big,small]
//                   [--big-count 4] [--big-mb 100]
//                   [--small-count 1000] [--small-kb 10] [--dir /tmp/x]
//
// The servers of the interop matrix (src/deliver/interop_test.cc):
//   sftp                  OpenSSH, with fsync@openssh.com before each CLOSE
//                         (cbpipe's default: durable bytes before the
//                         rename; the curl CLI never asks for it)
//   sftp-nofsync          the same with fsync = false, like for like
//   sftp-dropbox          OpenSSH as a chrooted write-only drop box
//                         (internal-sftp -P opendir,readdir,read,stat,lstat,
//                         fstat), write_only = true, fsync
//   sftp-proftpd          ProFTPD mod_sftp (fsync), and -nofsync
//   ftps, ftp             vsftpd, explicit FTPS (TLS 1.2) and plain FTP
//   ftps-dropbox          vsftpd download_enable=NO, dirlist_enable=NO,
//                         write_only = true
//   ftps-proftpd          ProFTPD mod_tls, TLS 1.2, session reuse required
//                         on data connections
//   ftps-proftpd-tls13    the same, TLS 1.3 only
//   ftps-pureftpd         pure-ftpd, TLS required
// The SFTP rows with fsync are also run against the one client that
// flushes the same way: OpenSSH's sftp with `put -f` (peer sftp-f), so the
// server's disk flush, which neither client can avoid, is on both sides;
// and against cbpipe with fsync = false (peer cb-nofs), which prints what
// the flush costs a file on that server, next to the disk's own fsync.
// curl gets the options that match cbpipe's: --ssl-reqd, --cacert, the same
// TLS version, one connection (and TLS session) reused for every file.
// Fairness: both clients send the same files to the same server folder,
// from a warm page cache (one untimed run of each first), in alternating
// order; after every run, untimed, each file on the server is compared
// byte for byte with its source (a run that lost or changed a byte fails).
// Prints, per protocol, workload and peer, the median time of each, the
// spread (slowest / fastest run) and the ratio peer time / cbpipe time
// (1.00 = as fast as the peer). Needs root (servers).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "deliver/curl_transport.h"
#include "servers/test_servers.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Options {
  int runs = 5;
  std::vector<std::string> protocols = {"sftp",
                                        "sftp-nofsync",
                                        "sftp-dropbox",
                                        "sftp-proftpd",
                                        "sftp-proftpd-nofsync",
                                        "ftps",
                                        "ftps-dropbox",
                                        "ftps-proftpd",
                                        "ftps-proftpd-tls13",
                                        "ftps-pureftpd",
                                        "ftp"};
  std::vector<std::string> workloads = {"big", "small"};
  int big_count = 4;
  int big_mb = 100;
  int small_count = 1000;
  int small_kb = 10;
  std::string dir;
};

struct Workload {
  std::string name;
  std::vector<std::string> files;
  uint64_t bytes = 0;
};

// Where one protocol's server is, for both clients.
struct Target {
  std::string protocol;
  DestinationConfig dest;    // for cbpipe
  std::string curl_url;      // folder URL for the curl CLI, ends in '/'
  std::string curl_options;  // curl config lines (credentials, TLS, key)
  // One curl process per file (a fresh connection and TLS session each,
  // as cbpipe's TLS 1.3 uploads): the curl CLI reusing one connection
  // fails where a TLS 1.3 session resumes only once.
  bool curl_per_file = false;
  std::string remote_dir;  // local path of that folder, to clear it
  // For SFTP with fsync: OpenSSH's sftp client, `put -f` (fsync@openssh.com
  // after each file, as cbpipe does), the like-for-like peer curl is not.
  bool sftp_peer = false;
  int port = 0;
  std::string user, key_path, known_hosts_path, remote_path;
};

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Workload MakeFiles(const std::string& dir, const std::string& name, int count,
                   size_t size) {
  Workload w;
  w.name = name;
  fs::create_directories(dir);
  std::mt19937_64 rng(42);
  std::vector<uint64_t> block((size + 7) / 8);
  for (int i = 0; i < count; ++i) {
    std::string path = dir + "/" + name + "_" + std::to_string(i) + ".csv";
    if (!fs::exists(path) || fs::file_size(path) != size) {
      for (auto& word : block) word = rng();
      std::ofstream(path, std::ios::binary)
          .write(reinterpret_cast<const char*>(block.data()),
                 static_cast<std::streamsize>(size));
    }
    w.files.push_back(path);
    w.bytes += size;
  }
  return w;
}

// "/a/b" of "sftp://host:port/a/b".
std::string UrlPath(const std::string& url) {
  size_t scheme = url.find("://");
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

void ClearDir(const std::string& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) fs::remove(entry);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Milliseconds one fsync(2) of a fresh `bytes`-byte file takes in `dir`
// while `count` such files pile up there, as in the small-file workload:
// the floor fsync@openssh.com puts under each small file on a server whose
// folder is on this disk. The mean is what `count` files add up to; on a
// shared disk it sits well above the median (a flush that lands behind a
// large journal commit waits for all of it). It moves with what else the machine
// writes: the journal commit behind each fsync on ext4 (data=ordered) also
// writes out other programs' pending data.
struct FlushCost {
  double median_ms = -1, mean_ms = -1;
};

FlushCost FlushMillis(const std::string& dir, size_t bytes, int count) {
  std::vector<double> ms;
  const std::string data(bytes, 'x');
  bool ok = true;
  for (int i = 0; i < count && ok; ++i) {
    const std::string path = dir + "/.flush-probe-" + std::to_string(i);
    int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return {};
    ok = ::write(fd, data.data(), data.size()) ==
         static_cast<ssize_t>(data.size());
    auto start = Clock::now();
    ok = ::fsync(fd) == 0 && ok;
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start)
                     .count());
    ::close(fd);
  }
  for (int i = 0; i < count; ++i) {
    ::unlink((dir + "/.flush-probe-" + std::to_string(i)).c_str());
  }
  if (!ok || ms.empty()) return {};
  std::sort(ms.begin(), ms.end());
  double sum = 0;
  for (double m : ms) sum += m;
  return {ms[ms.size() / 2], sum / static_cast<double>(ms.size())};
}

// Reads every file once, so both clients start from the page cache.
void WarmCache(const Workload& w) {
  for (const std::string& file : w.files) ReadAll(file);
}

// True when `remote_dir` holds exactly the files of `w`, byte for byte.
bool Delivered(const Workload& w, const std::string& remote_dir,
               const char* who) {
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(remote_dir)) {
    ++entries;
  }
  if (entries != w.files.size()) {
    std::cerr << who << ": " << entries << " files on the server, not "
              << w.files.size() << "\n";
    return false;
  }
  for (const std::string& file : w.files) {
    const std::string remote =
        remote_dir + "/" + fs::path(file).filename().string();
    if (!fs::exists(remote) || ReadAll(remote) != ReadAll(file)) {
      std::cerr << who << ": " << remote << " differs from " << file << "\n";
      return false;
    }
  }
  return true;
}

// One run of one client: wall time, and the client's CPU time (user +
// system), which the other programs on a shared machine disturb less.
struct Timing {
  double seconds = 0;
  double cpu_seconds = 0;
};

double CpuSeconds(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Time for cbpipe to upload every file of `w` with one Transport (this
// process does nothing else meanwhile; the servers are other processes).
std::optional<Timing> RunCbpipe(const Target& t, const Workload& w) {
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  auto start = Clock::now();
  auto transport = MakeNetworkTransport(t.dest);
  if (!transport.ok()) {
    std::cerr << transport.status().ToString() << "\n";
    return std::nullopt;
  }
  for (const std::string& file : w.files) {
    Status s = (*transport)->Upload(file, fs::path(file).filename().string());
    if (!s.ok()) {
      std::cerr << "cbpipe: " << s.ToString() << "\n";
      return std::nullopt;
    }
  }
  transport->reset();
  Timing timing;
  timing.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ::getrusage(RUSAGE_SELF, &after);
  timing.cpu_seconds = CpuSeconds(after) - CpuSeconds(before);
  return timing;
}

// One curl process uploading `files` over one connection (reused from URL
// to URL), from a config file so no secret is on argv; its time is added
// to `timing`.
bool RunCurlProcess(const Target& t, const std::vector<std::string>& files,
                    const std::string& config_path, Timing* timing) {
  {
    std::ofstream config(config_path, std::ios::trunc);
    config << t.curl_options << "silent\nshow-error\n";
    for (const std::string& file : files) {
      config << "upload-file = \"" << file << "\"\nurl = \"" << t.curl_url
             << fs::path(file).filename().string() << "\"\n";
    }
  }
  ::chmod(config_path.c_str(), 0600);
  auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execlp("curl", "curl", "--config", config_path.c_str(),
             static_cast<char*>(nullptr));
    _exit(127);
  }
  int wstatus = 0;
  rusage usage{};
  ::wait4(pid, &wstatus, 0, &usage);
  timing->seconds +=
      std::chrono::duration<double>(Clock::now() - start).count();
  timing->cpu_seconds += CpuSeconds(usage);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    std::cerr << "curl failed (status " << wstatus << ")\n";
    return false;
  }
  return true;
}

// Seconds for the curl CLI to upload every file of `w`: one process, one
// connection for all; with `curl_per_file`, one process per file.
std::optional<Timing> RunCurl(const Target& t, const Workload& w,
                              const std::string& config_path) {
  Timing timing;
  if (!t.curl_per_file) {
    if (!RunCurlProcess(t, w.files, config_path, &timing)) return std::nullopt;
    return timing;
  }
  for (const std::string& file : w.files) {
    if (!RunCurlProcess(t, {file}, config_path, &timing)) return std::nullopt;
  }
  return timing;
}

// Seconds for one OpenSSH sftp process to upload every file of `w` with
// `put -f` (the file flushed with fsync@openssh.com before it is closed),
// over one connection, host key checked against the server's known_hosts.
std::optional<Timing> RunOpensshSftp(const Target& t, const Workload& w,
                                     const std::string& batch_path) {
  {
    std::ofstream batch(batch_path, std::ios::trunc);
    for (const std::string& file : w.files) {
      batch << "put -f \"" << file << "\" \"" << t.remote_path << "/"
            << fs::path(file).filename().string() << "\"\n";
    }
  }
  const std::string port = std::to_string(t.port);
  const std::string known = "UserKnownHostsFile=" + t.known_hosts_path;
  const std::string target = t.user + "@127.0.0.1";
  auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_WRONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDOUT_FILENO);
    ::execlp("sftp", "sftp", "-q", "-b", batch_path.c_str(), "-P", port.c_str(),
             "-i", t.key_path.c_str(), "-o", known.c_str(), "-o",
             "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", target.c_str(),
             static_cast<char*>(nullptr));
    _exit(127);
  }
  int wstatus = 0;
  rusage usage{};
  ::wait4(pid, &wstatus, 0, &usage);
  Timing timing;
  timing.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  timing.cpu_seconds = CpuSeconds(usage);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    std::cerr << "sftp failed (status " << wstatus << ")\n";
    return std::nullopt;
  }
  return timing;
}

// The servers the targets point at, stopped when the bench ends.
struct Servers {
  std::vector<testing::SshServer> ssh;
  std::vector<testing::ProFtpdServer> proftpd;
  std::vector<testing::FtpServer> vsftpd;
  std::vector<testing::PureFtpdServer> pureftpd;
  ~Servers() {
    for (testing::SshServer& s : ssh) s.RemoveChroot();
  }
};

// An SFTP target: cbpipe with the key, curl and OpenSSH's sftp with the
// same key and host key.
Target SftpTarget(const std::string& url, const std::string& user,
                  const std::string& key, const std::string& host_sha256,
                  const std::string& known_hosts, int port) {
  Target t;
  t.dest.url = url;
  t.dest.username = user;
  t.dest.private_key_ref = "file:" + key;
  t.dest.host_key_sha256 = host_sha256;
  t.curl_url = url + "/";
  t.curl_options = "user = \"" + user + ":\"\nkey = \"" + key +
                   "\"\nhostpubsha256 = \"" + host_sha256 + "\"\n";
  t.port = port;
  t.user = user;
  t.key_path = key;
  t.known_hosts_path = known_hosts;
  t.remote_path = UrlPath(url);
  return t;
}

// An FTP or explicit FTPS target. cbpipe starts with TLS 1.2 (TLS 1.3 only
// for a server that refuses 1.2), so curl gets the same version: `tls`
// "1.2", "1.3" or "" (plain FTP). curl's ftps:// is implicit TLS: explicit
// is ftp:// + --ssl-reqd; curl reuses the TLS session on data connections
// as cbpipe (libcurl) does.
Target FtpTarget(const std::string& url, int port, const std::string& user,
                 const std::string& password, const std::string& ca_file,
                 const std::string& tls, int index) {
  Target t;
  const std::string env = "CBPIPE_BENCH_PASSWORD_" + std::to_string(index);
  ::setenv(env.c_str(), password.c_str(), 1);
  t.dest.url = url;
  t.dest.username = user;
  t.dest.password_ref = "env:" + env;
  t.dest.ca_file = ca_file;
  t.dest.allow_insecure = tls.empty();
  t.curl_url = "ftp://127.0.0.1:" + std::to_string(port) + UrlPath(url) + "/";
  t.curl_options = "user = \"" + user + ":" + password + "\"\n";
  if (tls == "1.2") {
    t.curl_options +=
        "ssl-reqd\ncacert = \"" + ca_file + "\"\ntlsv1.2\ntls-max = 1.2\n";
  } else if (tls == "1.3") {
    t.curl_options += "ssl-reqd\ncacert = \"" + ca_file + "\"\ntlsv1.3\n";
  }
  return t;
}

// Starts the server of `protocol` under `dir` (kept in `servers`) with a
// writable folder "bench", and says how both clients reach it.
// kInvalidArgument for an unknown protocol.
StatusOr<Target> StartTarget(const std::string& protocol,
                             const std::string& dir, int index,
                             Servers* servers) {
  Target t;
  std::string root;
  if (protocol == "sftp" || protocol == "sftp-nofsync" ||
      protocol == "sftp-dropbox") {
    // The drop box: chrooted, internal-sftp -P opendir,readdir,read,stat,
    // lstat,fstat, declared write_only (Upload sends no STAT anyway).
    const bool drop_box = protocol == "sftp-dropbox";
    CBPIPE_ASSIGN_OR_RETURN(
        testing::SshServer s,
        testing::SshServer::Start(
            dir, {.write_only = drop_box, .chroot = drop_box}));
    servers->ssh.push_back(std::move(s));
    const testing::SshServer& sftp = servers->ssh.back();
    t = SftpTarget(sftp.url("bench"), sftp.user(), sftp.client_key_path(),
                   sftp.host_key_sha256(), sftp.known_hosts_path(),
                   sftp.port());
    t.dest.write_only = drop_box;
    root = sftp.root_dir();
  } else if (protocol == "sftp-proftpd" || protocol == "sftp-proftpd-nofsync") {
    CBPIPE_ASSIGN_OR_RETURN(testing::ProFtpdServer s,
                            testing::ProFtpdServer::Start(dir));
    servers->proftpd.push_back(std::move(s));
    const testing::ProFtpdServer& p = servers->proftpd.back();
    t = SftpTarget(p.url("bench"), p.user(), p.client_key_path(),
                   p.host_key_sha256(), p.known_hosts_path(), p.port());
    root = p.root_dir();
  } else if (protocol == "ftps-proftpd" || protocol == "ftps-proftpd-tls13") {
    const bool tls13 = protocol == "ftps-proftpd-tls13";
    CBPIPE_ASSIGN_OR_RETURN(
        testing::ProFtpdServer s,
        testing::ProFtpdServer::Start(
            dir, tls13 ? testing::ProFtpdMode::kFtpsTls13Only
                       : testing::ProFtpdMode::kFtpsTls12));
    servers->proftpd.push_back(std::move(s));
    const testing::ProFtpdServer& p = servers->proftpd.back();
    t = FtpTarget(p.url("bench"), p.port(), p.user(), p.password(),
                  p.ca_cert_path(), tls13 ? "1.3" : "1.2", index);
    // ProFTPD refuses (425) a data connection whose TLS session does not
    // resume the control connection's; a TLS 1.3 session resumes once, so
    // curl's second file over one connection fails. cbpipe opens a fresh
    // connection per upload (curl_transport.cc); curl gets one process
    // per file, the only way its CLI does the same.
    t.curl_per_file = tls13;
    root = p.root_dir();
  } else if (protocol == "ftps-pureftpd") {
    CBPIPE_ASSIGN_OR_RETURN(testing::PureFtpdServer s,
                            testing::PureFtpdServer::Start(dir));
    servers->pureftpd.push_back(std::move(s));
    const testing::PureFtpdServer& p = servers->pureftpd.back();
    t = FtpTarget(p.url("bench"), p.port(), p.user(), p.password(),
                  p.ca_cert_path(), "1.2", index);
    // pure-pw hashes with a memory-hard function: a login takes seconds
    // on a busy machine.
    t.dest.connect_timeout_seconds = t.dest.stall_timeout_seconds = 60;
    root = p.root_dir();
  } else if (protocol == "ftps" || protocol == "ftp" ||
             protocol == "ftps-dropbox") {
    testing::FtpServerOptions fo;
    fo.tls =
        protocol == "ftp" ? testing::FtpTls::kNone : testing::FtpTls::kExplicit;
    // download_enable=NO, dirlist_enable=NO; declared write_only.
    fo.write_only = protocol == "ftps-dropbox";
    CBPIPE_ASSIGN_OR_RETURN(testing::FtpServer s,
                            testing::FtpServer::Start(dir, fo));
    servers->vsftpd.push_back(std::move(s));
    const testing::FtpServer& f = servers->vsftpd.back();
    t = FtpTarget(f.url("bench"), f.port(), f.user(), f.password(),
                  f.ca_cert_path(), protocol == "ftp" ? "" : "1.2", index);
    t.dest.write_only = fo.write_only;
    root = f.root_dir();
  } else {
    return InvalidArgumentError("unknown protocol " + protocol);
  }
  t.protocol = protocol;
  t.dest.name = "bench-" + protocol;
  t.dest.transfer_timeout_seconds = 600;
  t.dest.remote_fsync = !protocol.ends_with("-nofsync");
  // With fsync (every SFTP server here offers fsync@openssh.com), also
  // against OpenSSH's sftp with put -f.
  t.sftp_peer = protocol.starts_with("sftp") && t.dest.remote_fsync;
  t.remote_dir = root + "/bench";
  CBPIPE_RETURN_IF_ERROR(testing::MakeRemoteDir(root, "bench", true));
  return t;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--runs")
      o.runs = std::stoi(value);
    else if (flag == "--protocols")
      o.protocols = Split(value, ',');
    else if (flag == "--workloads")
      o.workloads = Split(value, ',');
    else if (flag == "--big-count")
      o.big_count = std::stoi(value);
    else if (flag == "--big-mb")
      o.big_mb = std::stoi(value);
    else if (flag == "--small-count")
      o.small_count = std::stoi(value);
    else if (flag == "--small-kb")
      o.small_kb = std::stoi(value);
    else if (flag == "--dir")
      o.dir = value;
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  Status root = testing::RequireRoot();
  if (!root.ok()) {
    std::cerr << root.message() << "\n";
    return 2;
  }
  if (o.dir.empty()) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cbpipe-bench-XXXXXX")
            .string();
    o.dir = ::mkdtemp(tmpl.data());
  }
  std::cerr << "bench folder " << o.dir << "; making files...\n";
  std::vector<Workload> workloads;
  for (const std::string& kind : o.workloads) {
    if (kind == "big") {
      workloads.push_back(MakeFiles(o.dir + "/data", "big", o.big_count,
                                    static_cast<size_t>(o.big_mb) << 20));
      workloads.back().name = std::to_string(o.big_count) + " x " +
                              std::to_string(o.big_mb) + " MB";
    } else if (kind == "small") {
      workloads.push_back(MakeFiles(o.dir + "/data", "small", o.small_count,
                                    static_cast<size_t>(o.small_kb) << 10));
      workloads.back().name = std::to_string(o.small_count) + " x " +
                              std::to_string(o.small_kb) + " KB";
    } else {
      std::cerr << "unknown workload " << kind << " (big, small)\n";
      return 2;
    }
  }

  Servers servers;
  std::vector<Target> targets;
  for (const std::string& protocol : o.protocols) {
    StatusOr<Target> t =
        StartTarget(protocol, o.dir + "/server-" + protocol,
                    static_cast<int>(targets.size()), &servers);
    if (!t.ok()) {
      std::cerr << protocol << ": " << t.status().ToString() << "\n";
      return t.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
    }
    targets.push_back(std::move(*t));
  }
  // The server disk's flush cost, before and after (it moves with the load).
  auto print_flush = [&](const char* when) {
    if (targets.empty()) return;
    const FlushCost cost =
        FlushMillis(targets[0].remote_dir,
                    static_cast<size_t>(o.small_kb) << 10, o.small_count);
    std::printf(
        "server disk %s: fsync of each of %d fresh %d KB files in one folder "
        "takes %.2f ms (median), %.2f ms (mean); with fsync on, each small "
        "file costs the mean on top\n",
        when, o.small_count, o.small_kb, cost.median_ms, cost.mean_ms);
    std::fflush(stdout);
  };
  print_flush("before");

  std::printf("%-20s %-14s %-7s %9s %6s %9s %6s %9s %9s %7s %6s %6s\n", "proto",
              "workload", "peer", "cbpipe s", "spread", "peer s", "spread",
              "cbpipe/s", "peer/s", "ratio", "cpu-cb", "cpu-pe");
  bool all_ok = true;
  for (const Target& t : targets) {
    std::vector<std::string> peers = {"curl"};
    // cbpipe itself without the flush, on the same server in alternation:
    // the difference is what the flush costs a file there.
    if (t.sftp_peer) {
      peers.push_back("sftp-f");
      peers.push_back("cb-nofs");
    }
    for (const Workload& w : workloads) {
      WarmCache(w);
      for (const std::string& peer : peers) {
        std::vector<double> ours, theirs, ours_cpu, theirs_cpu;
        // Run 0 is the untimed warm-up of each side (server, cache, keys).
        for (int run = 0; run <= o.runs; ++run) {
          // Alternate which goes first so neither always gets a warm server.
          for (int turn = 0; turn < 2; ++turn) {
            ClearDir(t.remote_dir);
            bool cbpipe_turn = (run + turn) % 2 == 0;
            std::optional<Timing> timing;
            if (cbpipe_turn) {
              timing = RunCbpipe(t, w);
            } else if (peer == "curl") {
              timing = RunCurl(t, w, o.dir + "/curl.config");
            } else if (peer == "cb-nofs") {
              Target nofsync = t;
              nofsync.dest.remote_fsync = false;
              timing = RunCbpipe(nofsync, w);
            } else {
              timing = RunOpensshSftp(t, w, o.dir + "/sftp.batch");
            }
            if (!timing || !Delivered(w, t.remote_dir,
                                      cbpipe_turn ? "cbpipe" : peer.c_str())) {
              all_ok = false;
              continue;
            }
            if (run > 0) {
              (cbpipe_turn ? ours : theirs).push_back(timing->seconds);
              (cbpipe_turn ? ours_cpu : theirs_cpu)
                  .push_back(timing->cpu_seconds);
            }
          }
        }
        if (ours.empty() || theirs.empty()) {
          std::printf("%-20s %-14s %-7s failed\n", t.protocol.c_str(),
                      w.name.c_str(), peer.c_str());
          continue;
        }
        auto spread = [](const std::vector<double>& v) {
          return *std::max_element(v.begin(), v.end()) /
                 *std::min_element(v.begin(), v.end());
        };
        double a = Median(ours), b = Median(theirs);
        double mb = static_cast<double>(w.bytes) / (1 << 20);
        std::printf(
            "%-20s %-14s %-7s %9.3f %5.2fx %9.3f %5.2fx %8.1fM %8.1fM "
            "%6.2fx %6.3f %6.3f\n",
            t.protocol.c_str(), w.name.c_str(), peer.c_str(), a, spread(ours),
            b, spread(theirs), mb / a, mb / b, b / a, Median(ours_cpu),
            Median(theirs_cpu));
        if (peer == "cb-nofs") {
          std::printf("%-20s %-14s the flush costs cbpipe %.2f ms a file here "
                      "(median with - median without, / files)\n",
                      t.protocol.c_str(), w.name.c_str(),
                      1000 * (a - b) / static_cast<double>(w.files.size()));
        }
        std::fflush(stdout);
      }
    }
    ClearDir(t.remote_dir);
  }
  print_flush("after");
  std::printf(
      "ratio = peer time / cbpipe time (>= 1.00: cbpipe as fast or "
      "faster); peer curl = the curl CLI (never flushes), sftp-f = "
      "OpenSSH's sftp with put -f (fsync@openssh.com per file, as cbpipe), "
      "cb-nofs = cbpipe with fsync = false; "
      "medians of %d runs after a warm-up; spread = slowest / "
      "fastest run; cpu-cb / cpu-pe = median client CPU s (user + system) of "
      "cbpipe / the peer; every run verified byte for byte\n",
      o.runs);
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace cbpipe

int main(int argc, char** argv) { return cbpipe::Main(argc, argv); }
