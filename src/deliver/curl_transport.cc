#include "deliver/curl_transport.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/curl_global.h"
#include "deliver/sftp_transport.h"
#include "secrets/secret_store.h"

namespace cbpipe {
namespace {

// libcurl's maximum. Measured on loopback (bench/transport): FTP and FTPS
// are the same from 256 KiB up.
constexpr long kUploadBufferBytes = 2 * 1024 * 1024;
constexpr long kMinUploadBufferBytes = 16 * 1024;  // libcurl's minimum

// Longest wait in curl_multi_poll when libcurl sets no timer of its own.
constexpr long kMaxPollWaitMs = 2;

enum class Protocol { kFtps, kFtp };

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Turns a failed libcurl call into a Status (see transport.h for the
// classes). `what` says which call and which remote file, no secret.
Status Classify(CURLcode code, long response, std::string_view detail,
                const std::string& what) {
  std::string msg = what + ": " + curl_easy_strerror(code);
  if (!detail.empty()) {
    msg += " (";
    msg += detail;
    msg += ")";
  }
  if (response > 0) msg += " [server reply " + std::to_string(response) + "]";

  // FTP replies first: they are the most precise.
  switch (response) {
    case 421:
    case 425:
    case 426:
    case 450:
    case 451:
    case 452: return UnavailableError(msg);
    case 530:
    case 532: return UnauthenticatedError(msg);
    case 552: return ResourceExhaustedError(msg);
    default: break;
  }
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_FTP_ACCEPT_FAILED:
    case CURLE_FTP_CANT_GET_HOST:
    case CURLE_FTP_WEIRD_PASV_REPLY:
    case CURLE_FTP_WEIRD_227_FORMAT:
    case CURLE_FTP_WEIRD_SERVER_REPLY:
    case CURLE_FTP_PORT_FAILED:
    case CURLE_AGAIN:
    case CURLE_SSH:  // session died mid-way (disconnect, socket error)
      return UnavailableError(msg);
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_FTP_ACCEPT_TIMEOUT: return DeadlineExceededError(msg);
    case CURLE_SSL_CONNECT_ERROR:
      // A reset or EOF during the handshake is transient; a handshake the
      // peer refuses (protocol version, ciphers, alert) will not improve.
      if (Contains(detail, "protocol version") ||
          Contains(detail, "unsupported protocol")) {
        return FailedPreconditionError(
            msg +
            ": the server accepts neither TLS 1.2 nor TLS 1.3; ask its "
            "operator which version it requires");
      }
      if (Contains(detail, "alert") || Contains(detail, "version") ||
          Contains(detail, "no protocols") || Contains(detail, "cipher")) {
        return FailedPreconditionError(msg);
      }
      return UnavailableError(msg);
    case CURLE_LOGIN_DENIED: return UnauthenticatedError(msg);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND: return FailedPreconditionError(msg);
    case CURLE_REMOTE_ACCESS_DENIED:
      // FTP: "Server denied you to change to the given directory" is CWD
      // to a missing (or unreadable) folder.
      if (Contains(detail, "change to the given directory")) {
        return NotFoundError(msg);
      }
      return PermissionDeniedError(msg);
    case CURLE_REMOTE_FILE_NOT_FOUND:
    case CURLE_FTP_COULDNT_RETR_FILE: return NotFoundError(msg);
    case CURLE_REMOTE_DISK_FULL:
    case CURLE_FILESIZE_EXCEEDED: return ResourceExhaustedError(msg);
    case CURLE_UPLOAD_FAILED:
    case CURLE_QUOTE_ERROR:
      if (response >= 400 && response < 500) return UnavailableError(msg);
      return PermissionDeniedError(msg);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return InvalidArgumentError(msg);
    default: return InternalError(msg);
  }
}

size_t Discard(char*, size_t size, size_t nitems, void*) {
  return size * nitems;
}

struct UploadSource {
  int fd = -1;
  uint64_t read = 0;
  int error = 0;
};

size_t ReadFromFile(char* buffer, size_t size, size_t nitems, void* user) {
  auto* source = static_cast<UploadSource*>(user);
  size_t want = size * nitems;
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::read(source->fd, buffer + got, want - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      source->error = errno;
      return CURL_READFUNC_ABORT;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  source->read += got;
  return got;
}

// Closes a connection without a TCP reset: what the peer sent and nobody
// read (TLS 1.3 session tickets on an upload's data connection) would make
// close(2) send RST, which discards data the server has not read yet.
// Half-close, read to EOF (bounded), then close.
int DrainAndClose(void*, curl_socket_t fd) {
  ::shutdown(fd, SHUT_WR);
  char buf[16384];
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) break;
    if (n < 0 && errno != EAGAIN && errno != EINTR) break;
  }
  return ::close(fd);
}

long Millis(double seconds) {
  return seconds <= 0 ? 0 : static_cast<long>(std::ceil(seconds * 1000));
}

class CurlTransport : public Transport {
 public:
  struct Settings {
    Protocol protocol;
    std::string curl_base;    // "ftp://host:port/dir/" (what curl gets)
    std::string description;  // "ftps://user@host:port/dir"
    std::string username;
    SecretString password;
    std::string ca_file;
    bool implicit_tls = false;
    bool active_mode = false;
    bool write_only = false;  // no SIZE: the server refuses it
    long connect_timeout_ms = 0;
    long transfer_timeout_ms = 0;
    long stall_seconds = 0;
  };

  CurlTransport(Settings settings, CURL* handle, CURLM* multi)
      : s_(std::move(settings)), curl_(handle), multi_(multi) {}
  ~CurlTransport() override {
    curl_easy_cleanup(curl_);
    curl_multi_cleanup(multi_);  // closes the cached connection
  }

  Status Upload(const std::string& local_path,
                const std::string& remote_name) override;
  Status Rename(const std::string& from, const std::string& to,
                bool replace) override;
  StatusOr<std::optional<uint64_t>> RemoteSize(
      const std::string& remote_name) override;
  Status Remove(const std::string& remote_name) override;
  std::string Describe() const override { return s_.description; }

 private:
  // Resets the handle (the connection stays open) and sets what every
  // call shares: credentials, verification, timeouts.
  void Prepare(const std::string& url);
  // curl_easy_perform through multi_.
  CURLcode RunToCompletion();
  // Runs the prepared request; Status from Classify.
  // A server that refuses TLS 1.2 (a TLS 1.3-only server) switches this
  // transport to TLS 1.3 and the request is run again, after `rewind`.
  Status Perform(const std::string& what,
                 const std::function<void()>& rewind = {});
  // Runs quote commands after CWD to the directory.
  Status RunCommands(const std::vector<std::string>& commands,
                     const std::string& what);
  // OK when the remote directory exists (kNotFound otherwise).
  Status CheckDirectory();
  std::string FileUrl(const std::string& name) const {
    return s_.curl_base + name;
  }
  std::string Where(const std::string& name) const {
    return s_.description + "/" + name;
  }

  Settings s_;
  CURL* curl_;
  // Drives curl_ (and caches its connection) with a bounded poll wait:
  // libcurl 7.88's curl_easy_perform sometimes idles a full second before
  // opening an FTP data connection, once per file.
  CURLM* multi_;
  char error_[CURL_ERROR_SIZE] = {};
  // TLS 1.3 only: each upload gets a fresh control connection, since a
  // TLS 1.3 session resumes once and servers that require the data
  // connection to resume the control one (ProFTPD) need a new ticket.
  bool tls13_ = false;
};

void CurlTransport::Prepare(const std::string& url) {
  CURL* h = curl_;
  curl_easy_reset(h);
  error_[0] = '\0';
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
  // Nothing is downloaded; NOBODY requests still "write" header lines.
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, Discard);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, DrainAndClose);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s_.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s_.transfer_timeout_ms);
  if (s_.stall_seconds > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s_.stall_seconds);
    curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, s_.stall_seconds);
  }
  curl_easy_setopt(h, CURLOPT_USERNAME, s_.username.c_str());
  if (!s_.password.empty()) {
    curl_easy_setopt(h, CURLOPT_PASSWORD, s_.password.c_str());
  }
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "ftp,ftps");
  curl_easy_setopt(h, CURLOPT_FTP_CREATE_MISSING_DIRS,
                   static_cast<long>(CURLFTP_CREATE_DIR_NONE));
  if (s_.active_mode) {
    curl_easy_setopt(h, CURLOPT_FTPPORT, "-");
  } else {
    curl_easy_setopt(h, CURLOPT_FTP_USE_EPSV, 1L);
  }
  if (s_.protocol == Protocol::kFtps) {
    curl_easy_setopt(h, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    // TLS 1.2 first: session reuse on data connections (which servers
    // like ProFTPD require) works for every transfer of one connection.
    // TLS 1.3 only for a server that refuses 1.2: its sessions resume once,
    // so each upload gets a fresh connection (see Upload). With TLS 1.3 the
    // server also sends session tickets that libcurl 7.88 never reads on an
    // upload's data connection; a plain close(2) would send a TCP RST that
    // discards the tail of the file at the server (2 to 4 uploads in 30 of
    // 3 MB failed in tests): DrainAndClose reads them first.
    curl_easy_setopt(h, CURLOPT_SSLVERSION,
                     tls13_
                         ? static_cast<long>(CURL_SSLVERSION_TLSv1_3)
                         : static_cast<long>(CURL_SSLVERSION_TLSv1_2) |
                               static_cast<long>(CURL_SSLVERSION_MAX_TLSv1_2));
    if (!s_.ca_file.empty()) {
      curl_easy_setopt(h, CURLOPT_CAINFO, s_.ca_file.c_str());
    }
  }
}

CURLcode CurlTransport::RunToCompletion() {
  CURLMcode mc = curl_multi_add_handle(multi_, curl_);
  if (mc != CURLM_OK) return CURLE_FAILED_INIT;
  CURLcode result = CURLE_OK;
  bool done = false;
  while (!done) {
    int running = 0;
    mc = curl_multi_perform(multi_, &running);
    if (mc != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl_) {
        result = msg->data.result;
        done = true;
      }
    }
    if (done || running == 0) break;
    // Sockets wake the poll at once; the cap only bounds the idle case.
    long timeout_ms = -1;
    curl_multi_timeout(multi_, &timeout_ms);
    if (timeout_ms < 0 || timeout_ms > kMaxPollWaitMs) {
      timeout_ms = kMaxPollWaitMs;
    }
    curl_multi_poll(multi_, nullptr, 0, static_cast<int>(timeout_ms), nullptr);
  }
  curl_multi_remove_handle(multi_, curl_);
  return result;
}

Status CurlTransport::Perform(const std::string& what,
                              const std::function<void()>& rewind) {
  CURLcode rc = RunToCompletion();
  if (rc == CURLE_SSL_CONNECT_ERROR && s_.protocol == Protocol::kFtps &&
      !tls13_ && Contains(error_, "protocol version")) {
    tls13_ = true;
    if (rewind) rewind();
    error_[0] = '\0';
    curl_easy_setopt(curl_, CURLOPT_SSLVERSION,
                     static_cast<long>(CURL_SSLVERSION_TLSv1_3));
    curl_easy_setopt(curl_, CURLOPT_FRESH_CONNECT, 1L);
    rc = RunToCompletion();
  }
  if (rc == CURLE_OK) return OkStatus();
  long response = 0;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &response);
  return Classify(rc, response, error_, what);
}

Status CurlTransport::RunCommands(const std::vector<std::string>& commands,
                                  const std::string& what) {
  curl_slist* list = nullptr;
  for (const std::string& c : commands)
    list = curl_slist_append(list, c.c_str());
  Prepare(s_.curl_base);
  curl_easy_setopt(curl_, CURLOPT_NOBODY, 1L);
  // After CWD, so names are relative to the directory.
  curl_easy_setopt(curl_, CURLOPT_POSTQUOTE, list);
  Status status = Perform(what);
  curl_easy_setopt(curl_, CURLOPT_POSTQUOTE, nullptr);
  curl_slist_free_all(list);
  return status;
}

Status CurlTransport::CheckDirectory() {
  return RunCommands({}, "open directory " + s_.description);
}

Status CurlTransport::Upload(const std::string& local_path,
                             const std::string& remote_name) {
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(remote_name));
  UploadSource source;
  source.fd = ::open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (source.fd < 0) {
    int err = errno;
    std::string msg = "cannot open " + local_path + ": " + strerror(err);
    return err == ENOENT ? NotFoundError(msg) : FailedPreconditionError(msg);
  }
  struct stat st;
  ::fstat(source.fd, &st);
  ::posix_fadvise(source.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  Prepare(FileUrl(remote_name));
  // libcurl allocates this buffer per transfer: no bigger than the file.
  curl_easy_setopt(curl_, CURLOPT_UPLOAD_BUFFERSIZE,
                   static_cast<long>(std::clamp<uint64_t>(
                       size, kMinUploadBufferBytes, kUploadBufferBytes)));
  curl_easy_setopt(curl_, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl_, CURLOPT_READFUNCTION, ReadFromFile);
  curl_easy_setopt(curl_, CURLOPT_READDATA, &source);
  curl_easy_setopt(curl_, CURLOPT_INFILESIZE_LARGE,
                   static_cast<curl_off_t>(size));
  if (tls13_) curl_easy_setopt(curl_, CURLOPT_FRESH_CONNECT, 1L);
  Status status =
      Perform("upload " + local_path + " to " + Where(remote_name), [&] {
        ::lseek(source.fd, 0, SEEK_SET);
        source.read = 0;
      });
  ::close(source.fd);
  if (source.error != 0) {
    return FailedPreconditionError("cannot read " + local_path + ": " +
                                   strerror(source.error));
  }
  CBPIPE_RETURN_IF_ERROR(status);
  if (source.read != size) {
    return FailedPreconditionError(
        local_path + " changed size during the upload (" +
        std::to_string(size) + " bytes at the start, " +
        std::to_string(source.read) + " read)");
  }
  return OkStatus();
}

StatusOr<std::optional<uint64_t>> CurlTransport::RemoteSize(
    const std::string& remote_name) {
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(remote_name));
  Prepare(FileUrl(remote_name));
  curl_easy_setopt(curl_, CURLOPT_NOBODY, 1L);
  Status status = Perform("size of " + Where(remote_name));
  if (!status.ok()) {
    if (status.code() == StatusCode::kNotFound) {
      // A missing file, unless it was the directory that is missing.
      CBPIPE_RETURN_IF_ERROR(CheckDirectory());
      return std::optional<uint64_t>();
    }
    return status;
  }
  curl_off_t length = -1;
  curl_easy_getinfo(curl_, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  if (length < 0) {
    return InternalError("size of " + Where(remote_name) +
                         ": the server did not report a size");
  }
  return std::optional<uint64_t>(static_cast<uint64_t>(length));
}

Status CurlTransport::Rename(const std::string& from, const std::string& to,
                             bool replace) {
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(from));
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(to));
  auto exists = [&](const std::string& name) -> StatusOr<bool> {
    CBPIPE_ASSIGN_OR_RETURN(std::optional<uint64_t> size, RemoteSize(name));
    return size.has_value();
  };
  // A write-only server cannot be asked: RNTO then replaces an existing
  // target (FTP has no rename that refuses to), as docs/interop.md says.
  if (!replace && !s_.write_only) {
    CBPIPE_ASSIGN_OR_RETURN(bool target_exists, exists(to));
    if (target_exists) {
      return AlreadyExistsError("rename " + Where(from) + ": " + to +
                                " exists already");
    }
  }
  std::vector<std::string> commands = {"RNFR " + from, "RNTO " + to};
  const std::string what = "rename " + Where(from) + " to " + to;
  Status status = RunCommands(commands, what);
  if (status.ok() || status.IsTransient() ||
      status.code() == StatusCode::kUnauthenticated ||
      status.code() == StatusCode::kFailedPrecondition || s_.write_only) {
    return status;
  }
  // Say which side was the problem.
  CBPIPE_ASSIGN_OR_RETURN(bool from_exists, exists(from));
  if (!from_exists)
    return NotFoundError(what + ": " + from + " does not exist");
  if (!replace) {
    CBPIPE_ASSIGN_OR_RETURN(bool target_exists, exists(to));
    if (target_exists) {
      return AlreadyExistsError(what + ": " + to + " exists already");
    }
  }
  return status;
}

Status CurlTransport::Remove(const std::string& remote_name) {
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(remote_name));
  std::string command = "DELE " + remote_name;
  Status status = RunCommands({command}, "remove " + Where(remote_name));
  if (status.ok() || status.IsTransient() || s_.write_only) return status;
  if (status.code() == StatusCode::kPermissionDenied ||
      status.code() == StatusCode::kNotFound) {
    auto size = RemoteSize(remote_name);
    if (size.ok() && !size->has_value()) return OkStatus();
  }
  return status;
}

}  // namespace

// ---- Construction ----

StatusOr<DestinationUrl> ParseDestinationUrl(const std::string& url) {
  CURLU* u = curl_url();
  CURLUcode rc =
      curl_url_set(u, CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    curl_url_cleanup(u);
    return InvalidArgumentError("destination url is not a valid URL: " +
                                std::string(curl_url_strerror(rc)));
  }
  DestinationUrl out;
  auto get = [&](CURLUPart part, std::string* to, unsigned flags) {
    char* value = nullptr;
    if (curl_url_get(u, part, &value, flags) == CURLUE_OK && value) {
      *to = value;
    }
    curl_free(value);
  };
  std::string password, query, fragment, options;
  get(CURLUPART_SCHEME, &out.scheme, 0);
  get(CURLUPART_USER, &out.user, CURLU_URLDECODE);
  get(CURLUPART_PASSWORD, &password, 0);
  get(CURLUPART_OPTIONS, &options, 0);
  get(CURLUPART_HOST, &out.host, 0);
  get(CURLUPART_PORT, &out.port, 0);
  get(CURLUPART_PATH, &out.path, 0);
  get(CURLUPART_QUERY, &query, 0);
  get(CURLUPART_FRAGMENT, &fragment, 0);
  curl_url_cleanup(u);
  if (!password.empty() || !options.empty()) {
    WipeString(password);
    return InvalidArgumentError(
        "destination url contains a password: remove it and set "
        "password_ref to a secret reference (env:NAME or file:/path)");
  }
  if (!query.empty() || !fragment.empty()) {
    return InvalidArgumentError("destination url " + out.scheme + "://" +
                                out.host +
                                ": a query or fragment is not allowed");
  }
  if (out.host.empty()) {
    return InvalidArgumentError("destination url has no host");
  }
  return out;
}

std::string UrlDecode(const std::string& text) {
  int length = 0;
  char* decoded = curl_easy_unescape(nullptr, text.c_str(),
                                     static_cast<int>(text.size()), &length);
  std::string out(decoded, static_cast<size_t>(length));
  curl_free(decoded);
  return out;
}

StatusOr<std::unique_ptr<Transport>> MakeNetworkTransport(
    const DestinationConfig& d, SecretStore* secrets) {
  CBPIPE_RETURN_IF_ERROR(CurlGlobalInitOnce());
  const std::string where = "destination " + d.name;
  CBPIPE_ASSIGN_OR_RETURN(DestinationUrl url, ParseDestinationUrl(d.url));
  // SFTP is spoken directly on libssh2 (sftp_transport.h).
  if (url.scheme == "sftp") return MakeSftpTransport(d, secrets);

  CurlTransport::Settings s;
  std::string curl_scheme = url.scheme;
  std::string default_port;
  if (url.scheme == "ftps") {
    s.protocol = Protocol::kFtps;
    s.implicit_tls = d.ftps_mode == FtpsMode::kImplicit;
    // curl's ftps:// is implicit TLS; explicit TLS is ftp:// + AUTH TLS.
    curl_scheme = s.implicit_tls ? "ftps" : "ftp";
    default_port = s.implicit_tls ? "990" : "21";
  } else if (url.scheme == "ftp") {
    if (!d.allow_insecure) {
      return InvalidArgumentError(
          where +
          ": ftp:// sends the password and the files in clear text "
          "(PCI DSS 2.2.5 lists FTP as insecure); use sftp:// or "
          "ftps://, or set allow_insecure = true");
    }
    s.protocol = Protocol::kFtp;
    default_port = "21";
  } else {
    return InvalidArgumentError(where + ": unsupported url scheme \"" +
                                url.scheme + "\" (sftp://, ftps:// or ftp://)");
  }
  const std::string port = url.port.empty() ? default_port : url.port;

  CBPIPE_ASSIGN_OR_RETURN(s.username, DestinationUser(d, url, where));

  const std::string path = DestinationFolder(url);
  if (Contains(UrlDecode(path), "\r") || Contains(UrlDecode(path), "\n")) {
    return InvalidArgumentError(where + ": the url path has a line break");
  }
  std::string host = url.host;
  s.curl_base = curl_scheme + "://" + host + ":" + port + path;
  std::string shown_path =
      path.size() > 1 ? path.substr(0, path.size() - 1) : "";
  s.description =
      url.scheme + "://" + s.username + "@" + host + ":" + port + shown_path;

  if (!d.password_ref.empty()) {
    auto password = SecretsOrDefault(secrets)->Resolve(d.password_ref);
    if (!password.ok()) {
      return Status(password.status().code(),
                    where + ": password_ref: " + password.status().message());
    }
    s.password = std::move(*password);
  }
  if (s.password.empty()) {
    return InvalidArgumentError(where + ": " + url.scheme +
                                ":// needs password_ref");
  }
  s.ca_file = d.ca_file;
  if (!s.ca_file.empty() && ::access(s.ca_file.c_str(), R_OK) != 0) {
    return InvalidArgumentError(where + ": ca_file " + s.ca_file +
                                " cannot be read");
  }
  s.active_mode = d.active_mode;
  s.write_only = d.write_only;
  s.connect_timeout_ms = Millis(d.connect_timeout_seconds);
  s.transfer_timeout_ms = Millis(d.transfer_timeout_seconds);
  s.stall_seconds =
      d.stall_timeout_seconds <= 0
          ? 0
          : std::max(1L, static_cast<long>(std::ceil(d.stall_timeout_seconds)));

  CURL* handle = curl_easy_init();
  CURLM* multi = curl_multi_init();
  if (handle == nullptr || multi == nullptr) {
    curl_easy_cleanup(handle);
    curl_multi_cleanup(multi);
    return InternalError("curl_easy_init failed");
  }
  // One connection per destination: keep just the one.
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 1L);
  return std::unique_ptr<Transport>(
      std::make_unique<CurlTransport>(std::move(s), handle, multi));
}

static bool IsSafeRemoteName(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.size() > 255) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') ||
              std::string_view("._+=@,~-").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

Status CheckRemoteName(const std::string& name) {
  if (IsSafeRemoteName(name)) return OkStatus();
  return InvalidArgumentError(
      "remote name \"" + name +
      "\" is not a plain file name of [A-Za-z0-9._+=@,~-]");
}

StatusOr<std::string> DestinationUser(const DestinationConfig& d,
                                      const DestinationUrl& url,
                                      const std::string& where) {
  if (!d.username.empty() && !url.user.empty() && d.username != url.user) {
    return InvalidArgumentError(where + ": username \"" + d.username +
                                "\" and the url's user \"" + url.user +
                                "\" differ");
  }
  std::string user = d.username.empty() ? url.user : d.username;
  if (user.empty()) {
    return InvalidArgumentError(where +
                                ": no username (set username or user@ in "
                                "the url)");
  }
  return user;
}

std::string DestinationFolder(const DestinationUrl& url) {
  std::string path = url.path.empty() ? "/" : url.path;
  if (path.back() != '/') path += '/';
  return path;
}

}  // namespace cbpipe
