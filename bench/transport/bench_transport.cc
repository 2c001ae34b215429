// Upload throughput of cbpipe's network transports against the curl CLI,
// both talking to the same local servers (tests/servers): for each protocol,
// a few large files and many small ones, each over one connection.
//
//   bench_transport [--runs 5] [--protocols
//   sftp,sftp-nofsync,sftp-proftpd,ftps,ftp]
//                   [--workloads big,small]
//                   [--big-count 4] [--big-mb 100]
//                   [--small-count 1000] [--small-kb 10] [--dir /tmp/x]
//
// sftp is OpenSSH with fsync@openssh.com before each CLOSE (cbpipe's default:
// durable bytes before the rename; the curl CLI never asks for it);
// sftp-nofsync is the same with fsync = false, like for like with curl;
// sftp-proftpd is ProFTPD's mod_sftp (with fsync). The rows with fsync are
// also run against the one client that flushes the same way: OpenSSH's sftp
// with `put -f` (peer sftp-f), so the server's disk flush, which neither
// client can avoid, is on both sides.
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
  std::vector<std::string> protocols = {"sftp", "sftp-nofsync", "sftp-proftpd",
                                        "ftps", "ftp"};
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
  std::string remote_dir;    // local path of that folder, to clear it
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
// while `count` such files pile up there, as in the small-file workload
// (median): the floor fsync@openssh.com puts under each small file on a
// server whose folder is on this disk. It moves with what else the machine
// writes: the journal commit behind each fsync on ext4 (data=ordered) also
// writes out other programs' pending data.
double FlushMillis(const std::string& dir, size_t bytes, int count) {
  std::vector<double> ms;
  const std::string data(bytes, 'x');
  bool ok = true;
  for (int i = 0; i < count && ok; ++i) {
    const std::string path = dir + "/.flush-probe-" + std::to_string(i);
    int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
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
  if (!ok) return -1;
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
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

// Seconds for one curl process to upload every file of `w` (one connection,
// reused from URL to URL), from a config file so no secret is on argv.
std::optional<Timing> RunCurl(const Target& t, const Workload& w,
                              const std::string& config_path) {
  {
    std::ofstream config(config_path, std::ios::trunc);
    config << t.curl_options << "silent\nshow-error\n";
    for (const std::string& file : w.files) {
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
  Timing timing;
  timing.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  timing.cpu_seconds = CpuSeconds(usage);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    std::cerr << "curl failed (status " << wstatus << ")\n";
    return std::nullopt;
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
    ::execlp("sftp", "sftp", "-q", "-b", batch_path.c_str(), "-P",
             port.c_str(), "-i", t.key_path.c_str(), "-o", known.c_str(),
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
             target.c_str(), static_cast<char*>(nullptr));
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
    char tmpl[] = "/tmp/cbpipe-bench-XXXXXX";
    o.dir = ::mkdtemp(tmpl);
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

  std::vector<testing::SshServer> ssh_servers;
  std::optional<testing::ProFtpdServer> proftpd;
  std::vector<testing::FtpServer> ftp_servers;
  std::vector<Target> targets;
  for (const std::string& protocol : o.protocols) {
    Target t;
    t.protocol = protocol;
    t.dest.name = "bench-" + protocol;
    t.dest.transfer_timeout_seconds = 600;
    std::string server_dir = o.dir + "/server-" + protocol;
    if (protocol == "sftp-proftpd") {
      auto s = testing::ProFtpdServer::Start(server_dir);
      if (!s.ok()) {
        std::cerr << s.status().ToString() << "\n";
        return 1;
      }
      proftpd.emplace(std::move(*s));
      t.dest.url = proftpd->url("bench");
      t.dest.username = proftpd->user();
      t.dest.private_key_ref = "file:" + proftpd->client_key_path();
      t.dest.host_key_sha256 = proftpd->host_key_sha256();
      t.curl_url = t.dest.url + "/";
      t.curl_options = "user = \"" + proftpd->user() + ":\"\nkey = \"" +
                       proftpd->client_key_path() + "\"\nhostpubsha256 = \"" +
                       proftpd->host_key_sha256() + "\"\n";
      t.remote_dir = proftpd->root_dir() + "/bench";
      t.sftp_peer = true;
      t.port = proftpd->port();
      t.user = proftpd->user();
      t.key_path = proftpd->client_key_path();
      t.known_hosts_path = proftpd->known_hosts_path();
      t.remote_path = UrlPath(t.dest.url);
      if (!testing::MakeRemoteDir(proftpd->root_dir(), "bench", true).ok()) {
        return 1;
      }
    } else if (protocol == "sftp" || protocol == "sftp-nofsync") {
      t.dest.remote_fsync = protocol == "sftp";
      auto s = testing::SshServer::Start(server_dir);
      if (!s.ok()) {
        std::cerr << s.status().ToString() << "\n";
        return 1;
      }
      ssh_servers.push_back(std::move(*s));
      const testing::SshServer& sftp = ssh_servers.back();
      t.dest.url = sftp.url("bench");
      t.dest.username = sftp.user();
      t.dest.private_key_ref = "file:" + sftp.client_key_path();
      t.dest.host_key_sha256 = sftp.host_key_sha256();
      t.curl_url = t.dest.url + "/";
      t.curl_options = "user = \"" + sftp.user() + ":\"\nkey = \"" +
                       sftp.client_key_path() + "\"\nhostpubsha256 = \"" +
                       sftp.host_key_sha256() + "\"\n";
      t.remote_dir = sftp.root_dir() + "/bench";
      t.sftp_peer = t.dest.remote_fsync;
      t.port = sftp.port();
      t.user = sftp.user();
      t.key_path = sftp.client_key_path();
      t.known_hosts_path = sftp.known_hosts_path();
      t.remote_path = UrlPath(t.dest.url);
      if (!testing::MakeRemoteDir(sftp.root_dir(), "bench", true).ok()) {
        return 1;
      }
    } else if (protocol == "ftps" || protocol == "ftp") {
      testing::FtpServerOptions fo;
      fo.tls = protocol == "ftps" ? testing::FtpTls::kExplicit
                                  : testing::FtpTls::kNone;
      auto s = testing::FtpServer::Start(server_dir, fo);
      if (!s.ok()) {
        std::cerr << s.status().ToString() << "\n";
        return 1;
      }
      ftp_servers.push_back(std::move(*s));
      const testing::FtpServer& f = ftp_servers.back();
      ::setenv("CBPIPE_BENCH_PASSWORD", f.password().c_str(), 1);
      t.dest.url = f.url("bench");
      t.dest.username = f.user();
      t.dest.password_ref = "env:CBPIPE_BENCH_PASSWORD";
      t.dest.ca_file = f.ca_cert_path();
      t.dest.allow_insecure = protocol == "ftp";
      // curl's ftps:// is implicit TLS: explicit is ftp:// + --ssl-reqd.
      t.curl_url = "ftp://127.0.0.1:" + std::to_string(f.port()) + "/bench/";
      t.curl_options = "user = \"" + f.user() + ":" + f.password() + "\"\n";
      if (protocol == "ftps") {
        // Same TLS version as cbpipe (see curl_transport.cc on TLS 1.3).
        t.curl_options += "ssl-reqd\ncacert = \"" + f.ca_cert_path() +
                          "\"\ntlsv1.2\ntls-max = 1.2\n";
      }
      t.remote_dir = f.root_dir() + "/bench";
      if (!testing::MakeRemoteDir(f.root_dir(), "bench", true).ok()) return 1;
    } else {
      std::cerr << "unknown protocol " << protocol << "\n";
      return 2;
    }
    targets.push_back(std::move(t));
  }
  // The server disk's flush cost, before and after (it moves with the load).
  auto print_flush = [&](const char* when) {
    if (targets.empty()) return;
    std::printf(
        "server disk %s: fsync of each of %d fresh %d KB files in one folder "
        "takes %.2f ms (median); with fsync on, each small file costs that "
        "on top\n",
        when, o.small_count, o.small_kb,
        FlushMillis(targets[0].remote_dir,
                    static_cast<size_t>(o.small_kb) << 10, o.small_count));
    std::fflush(stdout);
  };
  print_flush("before");

  std::printf("%-12s %-14s %-7s %9s %6s %9s %6s %9s %9s %7s %6s %6s\n",
              "proto", "workload", "peer", "cbpipe s", "spread", "peer s",
              "spread", "cbpipe/s", "peer/s", "ratio", "cpu-cb", "cpu-pe");
  bool all_ok = true;
  for (const Target& t : targets) {
    std::vector<std::string> peers = {"curl"};
    if (t.sftp_peer) peers.push_back("sftp-f");
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
          std::printf("%-12s %-14s %-7s failed\n", t.protocol.c_str(),
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
            "%-12s %-14s %-7s %9.3f %5.2fx %9.3f %5.2fx %8.1fM %8.1fM "
            "%6.2fx %6.3f %6.3f\n",
            t.protocol.c_str(), w.name.c_str(), peer.c_str(), a,
            spread(ours), b, spread(theirs), mb / a, mb / b, b / a,
            Median(ours_cpu), Median(theirs_cpu));
        std::fflush(stdout);
      }
    }
    ClearDir(t.remote_dir);
  }
  print_flush("after");
  std::printf(
      "ratio = peer time / cbpipe time (>= 1.00: cbpipe as fast or "
      "faster); peer curl = the curl CLI (never flushes), sftp-f = "
      "OpenSSH's sftp with put -f (fsync@openssh.com per file, as cbpipe); "
      "medians of %d runs after a warm-up; spread = slowest / "
      "fastest run; cpu-cb / cpu-pe = median client CPU s (user + system) of "
      "cbpipe / the peer; every run verified byte for byte\n",
      o.runs);
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace cbpipe

int main(int argc, char** argv) { return cbpipe::Main(argc, argv); }
