#include "deliver/sftp_transport.h"

#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "deliver/curl_transport.h"
#include "secrets/secret_store.h"

namespace cbpipe {
namespace {

using Clock = std::chrono::steady_clock;

// SFTP version 3 (draft-ietf-secsh-filexfer-02): the version every server
// speaks, OpenSSH's and ProFTPD's included.
enum : uint8_t {
  kFxpInit = 1,
  kFxpVersion = 2,
  kFxpOpen = 3,
  kFxpClose = 4,
  kFxpWrite = 6,
  kFxpRemove = 13,
  kFxpStat = 17,
  kFxpRename = 18,
  kFxpStatus = 101,
  kFxpHandle = 102,
  kFxpAttrs = 105,
  kFxpExtended = 200,
  kFxpExtendedReply = 201,
};
constexpr uint32_t kFxfWrite = 0x02, kFxfCreat = 0x08, kFxfTrunc = 0x10;
constexpr uint32_t kAttrSize = 0x1, kAttrUidGid = 0x2, kAttrPermissions = 0x4,
                   kAttrAcModTime = 0x8, kAttrExtended = 0x80000000u;
enum FxStatus : uint32_t {
  kFxOk = 0,
  kFxEof = 1,
  kFxNoSuchFile = 2,
  kFxPermissionDenied = 3,
  kFxFailure = 4,
  kFxBadMessage = 5,
  kFxNoConnection = 6,
  kFxConnectionLost = 7,
  kFxOpUnsupported = 8,
};

// Bytes per WRITE request: 32 KiB is what every server must accept (and one
// SSH packet); throughput comes from keeping many in flight.
constexpr size_t kWriteChunk = 32 * 1024;
constexpr size_t kMaxWritesInFlight = 64;  // 2 MiB, OpenSSH's channel window
// Replies are small; anything bigger is a broken peer.
constexpr uint32_t kMaxReplyBytes = 1 << 20;

Status LibsshInitOnce() {
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] { rc = libssh2_init(0); });
  if (rc != 0) return InternalError("libssh2_init failed");
  return OkStatus();
}

std::string Base64NoPadding(const unsigned char* data, size_t size) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < size; i += 3) {
    uint32_t v = static_cast<uint32_t>(data[i]) << 16;
    if (i + 1 < size) v |= static_cast<uint32_t>(data[i + 1]) << 8;
    if (i + 2 < size) v |= data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    if (i + 1 < size) out += kAlphabet[(v >> 6) & 63];
    if (i + 2 < size) out += kAlphabet[v & 63];
  }
  return out;
}

// Text a server sent, safe for a log line: printable ASCII, bounded.
std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 200)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

std::string FxStatusName(uint32_t code) {
  switch (code) {
    case kFxOk: return "ok";
    case kFxEof: return "end of file";
    case kFxNoSuchFile: return "no such file";
    case kFxPermissionDenied: return "permission denied";
    case kFxFailure: return "failure";
    case kFxBadMessage: return "bad message";
    case kFxNoConnection: return "no connection";
    case kFxConnectionLost: return "connection lost";
    case kFxOpUnsupported: return "operation unsupported";
    default: return "status " + std::to_string(code);
  }
}

// An SFTP packet under construction: uint32 length, byte type, payload.
class Packet {
 public:
  explicit Packet(uint8_t type) : buf_(4, '\0') {
    buf_ += static_cast<char>(type);
  }
  Packet& U32(uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      buf_ += static_cast<char>((v >> shift) & 0xff);
    }
    return *this;
  }
  Packet& U64(uint64_t v) {
    U32(static_cast<uint32_t>(v >> 32));
    return U32(static_cast<uint32_t>(v));
  }
  Packet& Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    buf_.append(s);
    return *this;
  }
  // Appends the finished packet to `out`.
  void AppendTo(std::string* out) {
    const uint32_t len = static_cast<uint32_t>(buf_.size() - 4);
    for (int i = 0; i < 4; ++i) {
      buf_[i] = static_cast<char>((len >> (24 - 8 * i)) & 0xff);
    }
    out->append(buf_);
  }

 private:
  std::string buf_;
};

// Reads the fields of a reply; `ok` turns false past the end.
struct Reader {
  std::string_view data;
  bool ok = true;
  uint32_t U32() {
    if (data.size() < 4) return ok = false, 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(data[i]);
    data.remove_prefix(4);
    return v;
  }
  uint64_t U64() {
    uint64_t hi = U32();
    return (hi << 32) | U32();
  }
  std::string_view Str() {
    uint32_t n = U32();
    if (!ok || data.size() < n) return ok = false, std::string_view();
    std::string_view s = data.substr(0, n);
    data.remove_prefix(n);
    return s;
  }
};

struct Reply {
  uint8_t type = 0;
  uint32_t id = 0;
  std::string body;  // after the id
};

struct Attrs {
  std::optional<uint64_t> size;
  std::optional<uint32_t> permissions;
};

bool ParseAttrs(Reader& r, Attrs* attrs) {
  uint32_t flags = r.U32();
  if (flags & kAttrSize) attrs->size = r.U64();
  if (flags & kAttrUidGid) r.U64();
  if (flags & kAttrPermissions) attrs->permissions = r.U32();
  if (flags & kAttrAcModTime) r.U64();
  if (flags & kAttrExtended) {
    uint32_t count = r.U32();
    for (uint32_t i = 0; i < count && r.ok; ++i) {
      r.Str();
      r.Str();
    }
  }
  return r.ok;
}

// Key types libssh2 1.10 can verify, as known_hosts and the SSH protocol
// name them.
constexpr std::string_view kHostKeyTypes[] = {"ecdsa-sha2-nistp256",
                                              "ecdsa-sha2-nistp384",
                                              "ecdsa-sha2-nistp521",
                                              "ssh-ed25519",
                                              "ssh-rsa",
                                              "ssh-dss"};

int KnownHostKeyBit(int hostkey_type) {
  switch (hostkey_type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
  }
}

long Millis(double seconds) {
  return seconds <= 0 ? 0 : static_cast<long>(std::ceil(seconds * 1000));
}

class SftpTransport : public Transport {
 public:
  struct Settings {
    std::string destination;  // its name, for hints
    std::string host;
    int port = 22;
    std::string dir;          // absolute, ends with '/'
    std::string description;  // "sftp://user@host:port/dir"
    std::string username;
    SecretString password;
    std::string private_key_path;
    SecretString private_key_data;
    std::string public_key_path;
    std::string known_hosts;
    std::string host_key_sha256;
    bool write_only = false;
    bool fsync = true;
    long connect_timeout_ms = 15000;
    long transfer_timeout_ms = 600000;
    long stall_ms = 30000;
  };

  explicit SftpTransport(Settings s) : s_(std::move(s)) {}
  ~SftpTransport() override { Disconnect(); }

  Status Upload(const std::string& local_path,
                const std::string& remote_name) override;
  Status Rename(const std::string& from, const std::string& to,
                bool replace) override;
  StatusOr<std::optional<uint64_t>> RemoteSize(
      const std::string& remote_name) override;
  Status Remove(const std::string& remote_name) override;
  std::string Describe() const override { return s_.description; }
  StatusOr<SftpServerOffers> Offers() {
    CBPIPE_RETURN_IF_ERROR(BeginCall());
    return SftpServerOffers{has_fsync_, has_posix_rename_};
  }

 private:
  std::string Path(const std::string& name) const { return s_.dir + name; }
  std::string Folder() const {
    return s_.dir.size() > 1 ? s_.dir.substr(0, s_.dir.size() - 1) : s_.dir;
  }
  // Starts a call: its deadline, and a connection (a new one when the old
  // one was closed by the server while idle).
  Status BeginCall();
  Status Connect();
  Status ConnectSocket();
  Status VerifyHostKey();
  Status Authenticate();
  void Disconnect();
  // Waits until the socket is ready in the direction libssh2 is blocked on
  // (or `want_write` and writable): kDeadlineExceeded when the server says
  // nothing for stall_timeout or the call's deadline passes.
  Status Wait(const std::string& what, bool want_write = false);
  // A libssh2 error code as a Status (and the connection dropped).
  Status SessionError(int rc, const std::string& what);
  // Sends out_ without waiting; *progress when bytes went out,
  // *blocked_out when the socket could take no more.
  Status TrySend(const std::string& what, bool* progress, bool* blocked_out);
  // Parses one reply from in_, reading what is available; *got when done.
  Status TryReceive(const std::string& what, Reply* reply, bool* got);
  // Sends all of out_.
  Status SendAll(const std::string& what);
  // Sends `packet` and waits for its reply (ids must match).
  StatusOr<Reply> Call(Packet packet, uint32_t id, const std::string& what);
  // Waits for the next reply, which must be for request `id`.
  StatusOr<Reply> Await(uint32_t id, const std::string& what);
  // A STATUS reply as a Status: OK, or the error with the request named.
  Status FromStatus(const Reply& reply, const std::string& request,
                    const std::string& path, bool data_path = false);
  // A refusal's message: "server refused REQ on PATH (why): hint".
  std::string Refusal(const std::string& request, const std::string& path,
                      uint32_t code, std::string_view server_text) const;
  StatusOr<Attrs> Stat(const std::string& path, uint32_t* fx_code);
  Status CheckFolder();
  Status SimpleRequest(uint8_t type, const std::string& request,
                       const std::string& path, const std::string& arg2,
                       bool data_path = false);
  Status Extended(const std::string& name, const std::string& request_path,
                  const std::vector<std::string>& args,
                  const std::string& what_path);
  uint32_t NextId() { return next_id_++; }

  Settings s_;
  int fd_ = -1;
  LIBSSH2_SESSION* session_ = nullptr;
  LIBSSH2_CHANNEL* channel_ = nullptr;
  std::string out_;
  size_t out_pos_ = 0;
  std::string in_;
  uint32_t next_id_ = 1;
  bool has_fsync_ = false;
  bool has_posix_rename_ = false;
  bool folder_checked_ = false;
  Clock::time_point deadline_;
};

// ---- Connection ----

Status SftpTransport::BeginCall() {
  deadline_ =
      Clock::now() + std::chrono::milliseconds(s_.transfer_timeout_ms > 0
                                                   ? s_.transfer_timeout_ms
                                                   : 24L * 3600 * 1000);
  if (session_ != nullptr) {
    // Idle, no SFTP reply is expected. Something to read is SSH traffic
    // libssh2 handles (a window adjustment, a keepalive) or the server
    // closing the connection: let libssh2 read it, start afresh unless the
    // session is still good.
    pollfd p{fd_, POLLIN, 0};
    bool broken = !in_.empty() || out_pos_ < out_.size();
    if (!broken && ::poll(&p, 1, 0) > 0) {
      if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
        broken = true;
      } else {
        char buf[4096];
        ssize_t n = libssh2_channel_read(channel_, buf, sizeof buf);
        broken = n != LIBSSH2_ERROR_EAGAIN || libssh2_channel_eof(channel_);
      }
    }
    if (broken) Disconnect();
  }
  if (session_ == nullptr) return Connect();
  return OkStatus();
}

void SftpTransport::Disconnect() {
  if (session_ != nullptr) {
    // Best effort, without waiting: the socket may be dead already.
    if (channel_ != nullptr) libssh2_channel_free(channel_);
    libssh2_session_disconnect(session_, "bye");
    // A non-blocking free may stop half-way (EAGAIN) and leak the session.
    // With the socket shut first, nothing can wait: in blocking mode every
    // send then fails at once and the free runs to its end.
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    libssh2_session_set_blocking(session_, 1);
    libssh2_session_free(session_);
  }
  channel_ = nullptr;
  session_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  out_.clear();
  out_pos_ = 0;
  in_.clear();
  folder_checked_ = false;
}

Status SftpTransport::ConnectSocket() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(s_.port);
  int rc = ::getaddrinfo(s_.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return UnavailableError("cannot resolve " + s_.host + ": " +
                            gai_strerror(rc));
  }
  std::string last = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                 a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    // Requests are small and each waits for its reply: no Nagle delay.
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = strerror(errno);
      ::close(fd);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline_ - Clock::now())
                    .count();
    int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left)));
    int err = 0;
    socklen_t len = sizeof err;
    if (ready == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (ready == 1 && err == 0) {
      fd_ = fd;
      break;
    }
    last = ready == 0 ? "timed out" : strerror(err);
    ::close(fd);
    if (ready == 0) {
      ::freeaddrinfo(found);
      return DeadlineExceededError(
          "connect to " + s_.host + ":" + port + ": timed out after " +
          std::to_string(s_.connect_timeout_ms) + " ms");
    }
  }
  ::freeaddrinfo(found);
  if (fd_ < 0) {
    return UnavailableError("connect to " + s_.host + ":" + port + ": " + last);
  }
  return OkStatus();
}

Status SftpTransport::Connect() {
  CBPIPE_RETURN_IF_ERROR(LibsshInitOnce());
  const Clock::time_point call_deadline = deadline_;
  deadline_ =
      std::min(call_deadline,
               Clock::now() + std::chrono::milliseconds(s_.connect_timeout_ms));
  Status st = ConnectSocket();
  if (!st.ok()) return st;
  session_ = libssh2_session_init();
  if (session_ == nullptr) {
    Disconnect();
    return InternalError("libssh2_session_init failed");
  }
  libssh2_session_set_blocking(session_, 0);

  // Ask for the key type known_hosts holds, or libssh2 may settle on
  // another key of the server and find it "unknown".
  if (!s_.known_hosts.empty()) {
    std::ifstream in(s_.known_hosts);
    const std::string name =
        s_.port == 22 ? s_.host
                      : "[" + s_.host + "]:" + std::to_string(s_.port);
    std::string line, types;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string hosts, type;
      fields >> hosts >> type;
      if (hosts.empty() || hosts[0] == '#' || hosts[0] == '@') continue;
      std::istringstream names(hosts);
      std::string n;
      bool match = false;
      while (std::getline(names, n, ',')) match = match || n == name;
      if (!match) continue;
      if (std::find(std::begin(kHostKeyTypes), std::end(kHostKeyTypes), type) ==
              std::end(kHostKeyTypes) ||
          types.find(type) != std::string::npos) {
        continue;
      }
      types += (types.empty() ? "" : ",") + type;
    }
    if (!types.empty()) {
      libssh2_session_method_pref(session_, LIBSSH2_METHOD_HOSTKEY,
                                  types.c_str());
    }
  }

  const std::string where = s_.host + ":" + std::to_string(s_.port);
  int rc;
  while ((rc = libssh2_session_handshake(session_, fd_)) ==
         LIBSSH2_ERROR_EAGAIN) {
    st = Wait("SSH handshake with " + where);
    if (!st.ok()) return st;
  }
  if (rc != 0) return SessionError(rc, "SSH handshake with " + where);
  st = VerifyHostKey();
  if (st.ok()) st = Authenticate();
  if (!st.ok()) {
    Disconnect();
    return st;
  }

  const std::string what = "opening the SFTP subsystem on " + where;
  while ((channel_ = libssh2_channel_open_session(session_)) == nullptr) {
    rc = libssh2_session_last_errno(session_);
    if (rc != LIBSSH2_ERROR_EAGAIN) return SessionError(rc, what);
    CBPIPE_RETURN_IF_ERROR(Wait(what));
  }
  libssh2_channel_handle_extended_data2(channel_,
                                        LIBSSH2_CHANNEL_EXTENDED_DATA_IGNORE);
  while ((rc = libssh2_channel_subsystem(channel_, "sftp")) ==
         LIBSSH2_ERROR_EAGAIN) {
    CBPIPE_RETURN_IF_ERROR(Wait(what));
  }
  if (rc != 0) {
    Status failed = SessionError(rc, what);
    return Status(failed.code() == StatusCode::kUnavailable
                      ? StatusCode::kFailedPrecondition
                      : failed.code(),
                  failed.message() +
                      ": the server refused the sftp subsystem for this "
                      "account");
  }

  // INIT / VERSION: the extensions the server offers.
  Packet init(kFxpInit);
  init.U32(3);
  init.AppendTo(&out_);
  CBPIPE_RETURN_IF_ERROR(SendAll(what));
  Reply reply;
  bool got = false;
  for (;;) {
    // VERSION has no id: TryReceive reads the id field as the version.
    CBPIPE_RETURN_IF_ERROR(TryReceive(what, &reply, &got));
    if (got) break;
    CBPIPE_RETURN_IF_ERROR(Wait(what));
  }
  if (reply.type != kFxpVersion) {
    Disconnect();
    return FailedPreconditionError(what +
                                   ": the server did not answer INIT "
                                   "with VERSION");
  }
  has_fsync_ = has_posix_rename_ = false;
  Reader r{reply.body};
  while (r.ok && !r.data.empty()) {
    std::string_view name = r.Str();
    r.Str();  // the extension's revision
    if (!r.ok) break;
    if (name == "fsync@openssh.com") has_fsync_ = true;
    if (name == "posix-rename@openssh.com") {
      has_posix_rename_ = true;
    }
  }
  deadline_ = call_deadline;
  return OkStatus();
}

Status SftpTransport::VerifyHostKey() {
  size_t len = 0;
  int type = 0;
  const char* key = libssh2_session_hostkey(session_, &len, &type);
  if (key == nullptr) {
    return FailedPreconditionError("the server at " + s_.host +
                                   " sent no host key");
  }
  if (!s_.host_key_sha256.empty()) {
    const char* hash =
        libssh2_hostkey_hash(session_, LIBSSH2_HOSTKEY_HASH_SHA256);
    std::string seen =
        hash == nullptr
            ? std::string()
            : Base64NoPadding(reinterpret_cast<const unsigned char*>(hash), 32);
    if (seen != s_.host_key_sha256) {
      return FailedPreconditionError(
          "host key of " + s_.host + ":" + std::to_string(s_.port) +
          " is SHA256:" + seen + ", not the pinned SHA256:" +
          s_.host_key_sha256 + " (host_key_sha256 of destination '" +
          s_.destination + "'): refusing to connect");
    }
  }
  if (!s_.known_hosts.empty()) {
    LIBSSH2_KNOWNHOSTS* kh = libssh2_knownhost_init(session_);
    if (kh == nullptr) return InternalError("libssh2_knownhost_init failed");
    int read = libssh2_knownhost_readfile(kh, s_.known_hosts.c_str(),
                                          LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    int check = LIBSSH2_KNOWNHOST_CHECK_FAILURE;
    if (read >= 0) {
      libssh2_knownhost* entry = nullptr;
      check = libssh2_knownhost_checkp(
          kh, s_.host.c_str(), s_.port == 22 ? -1 : s_.port, key, len,
          LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
              KnownHostKeyBit(type),
          &entry);
    }
    libssh2_knownhost_free(kh);
    const std::string who = s_.host + ":" + std::to_string(s_.port);
    switch (check) {
      case LIBSSH2_KNOWNHOST_CHECK_MATCH: break;
      case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        return FailedPreconditionError(
            "host key of " + who + " does not match the one in " +
            s_.known_hosts +
            ": refusing to connect (if the server's key really changed, "
            "update known_hosts)");
      case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        return FailedPreconditionError(
            who + " (or a key of this type for it) is not in " +
            s_.known_hosts + ": add its key (ssh-keyscan -p " +
            std::to_string(s_.port) + " " + s_.host +
            ", checked out of band) or set host_key_sha256");
      default:
        return FailedPreconditionError("cannot check the host key of " + who +
                                       " against " + s_.known_hosts);
    }
  }
  return OkStatus();
}

Status SftpTransport::Authenticate() {
  const std::string what = "login as " + s_.username + " at " + s_.host;
  const unsigned ulen = static_cast<unsigned>(s_.username.size());
  std::string methods;
  for (;;) {
    char* list = libssh2_userauth_list(session_, s_.username.c_str(), ulen);
    if (list != nullptr) {
      methods = list;
      break;
    }
    if (libssh2_userauth_authenticated(session_)) return OkStatus();
    int rc = libssh2_session_last_errno(session_);
    if (rc != LIBSSH2_ERROR_EAGAIN) return SessionError(rc, what);
    CBPIPE_RETURN_IF_ERROR(Wait(what));
  }
  std::string tried;
  const bool has_key =
      !s_.private_key_path.empty() || !s_.private_key_data.empty();
  if (has_key && methods.find("publickey") != std::string::npos) {
    int rc;
    for (;;) {
      if (!s_.private_key_data.empty()) {
        rc = libssh2_userauth_publickey_frommemory(
            session_, s_.username.c_str(), ulen, nullptr, 0,
            s_.private_key_data.c_str(), s_.private_key_data.value().size(),
            nullptr);
      } else {
        rc = libssh2_userauth_publickey_fromfile_ex(
            session_, s_.username.c_str(), ulen,
            s_.public_key_path.empty() ? nullptr : s_.public_key_path.c_str(),
            s_.private_key_path.c_str(), nullptr);
      }
      if (rc != LIBSSH2_ERROR_EAGAIN) break;
      CBPIPE_RETURN_IF_ERROR(Wait(what));
    }
    if (rc == 0) return OkStatus();
    if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) {
      return FailedPreconditionError(
          what + ": cannot use the private key (private_key of destination '" +
          s_.destination +
          "'): it must be an unencrypted OpenSSH or PEM private key");
    }
    if (rc != LIBSSH2_ERROR_AUTHENTICATION_FAILED &&
        rc != LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
      return SessionError(rc, what);
    }
    tried = "public key refused";
  }
  if (!s_.password.empty() && methods.find("password") != std::string::npos) {
    int rc;
    while ((rc = libssh2_userauth_password_ex(
                session_, s_.username.c_str(), ulen, s_.password.c_str(),
                static_cast<unsigned>(s_.password.value().size()), nullptr)) ==
           LIBSSH2_ERROR_EAGAIN) {
      CBPIPE_RETURN_IF_ERROR(Wait(what));
    }
    if (rc == 0) return OkStatus();
    if (rc != LIBSSH2_ERROR_AUTHENTICATION_FAILED &&
        rc != LIBSSH2_ERROR_PASSWORD_EXPIRED) {
      return SessionError(rc, what);
    }
    tried += std::string(tried.empty() ? "" : ", ") + "password refused";
  }
  if (tried.empty()) tried = "no configured method is offered";
  return UnauthenticatedError(what + " failed (" + tried +
                              "; the server offers: " + Printable(methods) +
                              "): check username, private_key and password "
                              "of destination '" +
                              s_.destination + "'");
}

Status SftpTransport::Wait(const std::string& what, bool want_write) {
  const int dirs = libssh2_session_block_directions(session_);
  short events = 0;
  if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND) events |= POLLIN;
  if ((dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) || want_write) events |= POLLOUT;
  if (events == 0) events = POLLIN;
  const auto now = Clock::now();
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now)
          .count();
  const bool stall_first = s_.stall_ms > 0 && s_.stall_ms < left;
  const int64_t wait_ms =
      std::max<int64_t>(0, stall_first ? s_.stall_ms : left);
  pollfd p{fd_, events, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(wait_ms, INT32_MAX)));
  } while (rc < 0 && errno == EINTR);
  if (rc > 0) return OkStatus();
  Disconnect();
  if (stall_first) {
    return DeadlineExceededError(what + ": the server sent nothing for " +
                                 std::to_string(s_.stall_ms / 1000) +
                                 " s (stall_timeout_seconds)");
  }
  return DeadlineExceededError(what + ": not done within the time limit (" +
                               std::to_string(s_.transfer_timeout_ms / 1000) +
                               " s transfer_timeout_seconds, " +
                               std::to_string(s_.connect_timeout_ms / 1000) +
                               " s connect_timeout_seconds for the login)");
}

Status SftpTransport::SessionError(int rc, const std::string& what) {
  char* text = nullptr;
  if (session_ != nullptr)
    libssh2_session_last_error(session_, &text, nullptr, 0);
  std::string msg = what + ": " + (text ? Printable(text) : "libssh2 error") +
                    " (libssh2 " + std::to_string(rc) + ")";
  Disconnect();
  switch (rc) {
    case LIBSSH2_ERROR_AUTHENTICATION_FAILED:
    case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
    case LIBSSH2_ERROR_PASSWORD_EXPIRED: return UnauthenticatedError(msg);
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_METHOD_NONE:
    case LIBSSH2_ERROR_METHOD_NOT_SUPPORTED:
    case LIBSSH2_ERROR_HOSTKEY_INIT:
    case LIBSSH2_ERROR_HOSTKEY_SIGN:
      return FailedPreconditionError(
          msg + ": no SSH algorithm in common with the server");
    case LIBSSH2_ERROR_TIMEOUT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT: return DeadlineExceededError(msg);
    case LIBSSH2_ERROR_ALLOC:
    case LIBSSH2_ERROR_BAD_USE:
    case LIBSSH2_ERROR_INVAL: return InternalError(msg);
    default:
      // Socket errors, disconnects, closed channels, protocol errors from a
      // connection cut mid-way: another attempt may work.
      return UnavailableError(msg);
  }
}

// ---- Packets ----

Status SftpTransport::TrySend(const std::string& what, bool* progress,
                              bool* blocked_out) {
  *blocked_out = false;
  while (out_pos_ < out_.size()) {
    ssize_t n = libssh2_channel_write(channel_, out_.data() + out_pos_,
                                      out_.size() - out_pos_);
    if (n == LIBSSH2_ERROR_EAGAIN) {
      // Either the socket is full, or the channel window is and libssh2
      // waits for the server's window adjustment (inbound).
      *blocked_out = (libssh2_session_block_directions(session_) &
                      LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0;
      break;
    }
    if (n < 0) return SessionError(static_cast<int>(n), what);
    out_pos_ += static_cast<size_t>(n);
    *progress = true;
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ > (1u << 20)) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  return OkStatus();
}

Status SftpTransport::TryReceive(const std::string& what, Reply* reply,
                                 bool* got) {
  *got = false;
  for (;;) {
    if (in_.size() >= 4) {
      Reader len{std::string_view(in_).substr(0, 4)};
      const uint32_t n = len.U32();
      if (n < 5 || n > kMaxReplyBytes) {
        Disconnect();
        return UnavailableError(what + ": malformed SFTP reply (length " +
                                std::to_string(n) + ")");
      }
      if (in_.size() >= 4 + static_cast<size_t>(n)) {
        Reader r{std::string_view(in_).substr(4, n)};
        reply->type = static_cast<uint8_t>(r.data[0]);
        r.data.remove_prefix(1);
        reply->id = r.U32();
        reply->body.assign(r.data);
        in_.erase(0, 4 + static_cast<size_t>(n));
        *got = true;
        return OkStatus();
      }
    }
    char buf[64 * 1024];
    ssize_t n = libssh2_channel_read(channel_, buf, sizeof buf);
    if (n == LIBSSH2_ERROR_EAGAIN) return OkStatus();
    if (n < 0) return SessionError(static_cast<int>(n), what);
    if (n == 0) {
      if (libssh2_channel_eof(channel_)) {
        Disconnect();
        return UnavailableError(what + ": the server closed the SFTP session");
      }
      return OkStatus();
    }
    in_.append(buf, static_cast<size_t>(n));
  }
}

Status SftpTransport::SendAll(const std::string& what) {
  bool progress = false, blocked = false;
  while (out_pos_ < out_.size()) {
    CBPIPE_RETURN_IF_ERROR(TrySend(what, &progress, &blocked));
    if (out_pos_ < out_.size()) CBPIPE_RETURN_IF_ERROR(Wait(what, blocked));
  }
  return OkStatus();
}

StatusOr<Reply> SftpTransport::Call(Packet packet, uint32_t id,
                                    const std::string& what) {
  packet.AppendTo(&out_);
  CBPIPE_RETURN_IF_ERROR(SendAll(what));
  return Await(id, what);
}

StatusOr<Reply> SftpTransport::Await(uint32_t id, const std::string& what) {
  Reply reply;
  for (;;) {
    bool got = false;
    CBPIPE_RETURN_IF_ERROR(TryReceive(what, &reply, &got));
    if (got) break;
    CBPIPE_RETURN_IF_ERROR(Wait(what));
  }
  if (reply.id != id) {
    Disconnect();
    return UnavailableError(what + ": SFTP reply for another request");
  }
  return reply;
}

std::string SftpTransport::Refusal(const std::string& request,
                                   const std::string& path, uint32_t code,
                                   std::string_view server_text) const {
  std::string msg =
      "server refused " + request + " on " + path + " (" + FxStatusName(code);
  if (!server_text.empty()) msg += ": " + Printable(server_text);
  msg += ")";
  const std::string dest = "destination '" + s_.destination + "'";
  if (code == kFxPermissionDenied || code == kFxOpUnsupported) {
    if (request == "STAT") {
      msg += ": if this is a write-only drop box, set write_only = true for " +
             dest;
    } else if (request == "OPEN" || request == "WRITE") {
      msg += ": the account " + s_.username + " may not create files in " +
             Folder() +
             "; ask the server's operator for write access, or "
             "fix the url of " +
             dest;
    } else if (request == "RENAME" || request == "posix-rename@openssh.com") {
      msg += ": the account " + s_.username + " may not rename files in " +
             Folder() +
             "; cbpipe uploads under a temporary name and renames "
             "it, so the server's operator must allow RENAME";
    } else if (request == "REMOVE") {
      msg += ": the account " + s_.username + " may not remove files in " +
             Folder();
    }
  } else if (code == kFxNoSuchFile &&
             (request == "OPEN" || request == "STAT (folder)")) {
    msg += ": the folder " + Folder() +
           " does not exist on the server; create it there or fix the url "
           "of " +
           dest;
  }
  return msg;
}

Status SftpTransport::FromStatus(const Reply& reply, const std::string& request,
                                 const std::string& path, bool data_path) {
  if (reply.type != kFxpStatus) {
    Disconnect();
    return UnavailableError("unexpected SFTP reply " +
                            std::to_string(reply.type) + " to " + request +
                            " on " + path);
  }
  Reader r{reply.body};
  const uint32_t code = r.U32();
  std::string_view text = r.Str();
  if (code == kFxOk) return OkStatus();
  const std::string msg = Refusal(request, path, code, text);
  switch (code) {
    case kFxNoSuchFile: return NotFoundError(msg);
    case kFxPermissionDenied: return PermissionDeniedError(msg);
    case kFxOpUnsupported: return PermissionDeniedError(msg);  // refused
    case kFxNoConnection:
    case kFxConnectionLost: Disconnect(); return UnavailableError(msg);
    case kFxBadMessage: return InvalidArgumentError(msg);
    case kFxFailure:
      // OpenSSH answers FAILURE for ENOSPC, EDQUOT, EIO: maybe transient
      // while writing; elsewhere (OPEN of a folder, ...) it will not improve.
      return data_path ? UnavailableError(msg) : FailedPreconditionError(msg);
    default: return InternalError(msg);
  }
}

// ---- Requests ----

StatusOr<Attrs> SftpTransport::Stat(const std::string& path,
                                    uint32_t* fx_code) {
  *fx_code = kFxOk;
  const uint32_t id = NextId();
  Packet p(kFxpStat);
  p.U32(id).Str(path);
  CBPIPE_ASSIGN_OR_RETURN(Reply reply, Call(std::move(p), id, "STAT " + path));
  if (reply.type == kFxpAttrs) {
    Reader r{reply.body};
    Attrs attrs;
    if (!ParseAttrs(r, &attrs)) {
      Disconnect();
      return UnavailableError("STAT " + path + ": malformed reply");
    }
    return attrs;
  }
  if (reply.type == kFxpStatus) {
    Reader r{reply.body};
    *fx_code = r.U32();
  }
  const bool folder = path + "/" == s_.dir || path == s_.dir;
  Status st = FromStatus(reply, folder ? "STAT (folder)" : "STAT", path);
  if (st.ok()) return InternalError("STAT " + path + ": no attributes");
  return st;
}

Status SftpTransport::CheckFolder() {
  if (folder_checked_) return OkStatus();
  uint32_t code = 0;
  CBPIPE_ASSIGN_OR_RETURN(Attrs attrs, Stat(Folder(), &code));
  if (attrs.permissions && (*attrs.permissions & S_IFMT) != S_IFDIR) {
    return NotFoundError(Folder() + " on " + s_.host +
                         " is not a folder: fix the url of destination '" +
                         s_.destination + "'");
  }
  folder_checked_ = true;
  return OkStatus();
}

StatusOr<std::optional<uint64_t>> SftpTransport::RemoteSize(
    const std::string& remote_name) {
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(remote_name));
  if (s_.write_only) {
    return FailedPreconditionError(
        "destination '" + s_.destination + "' is write_only: the size of " +
        Path(remote_name) + " is not asked (no STAT is sent)");
  }
  CBPIPE_RETURN_IF_ERROR(BeginCall());
  uint32_t code = 0;
  StatusOr<Attrs> attrs = Stat(Path(remote_name), &code);
  if (!attrs.ok()) {
    if (code != kFxNoSuchFile) return attrs.status();
    // Missing, unless the folder is.
    CBPIPE_RETURN_IF_ERROR(CheckFolder());
    return std::optional<uint64_t>();
  }
  if (attrs->permissions && (*attrs->permissions & S_IFMT) == S_IFDIR) {
    return FailedPreconditionError(Path(remote_name) + " on " + s_.host +
                                   " is a folder, not a file");
  }
  if (!attrs->size) {
    return InternalError("STAT " + Path(remote_name) +
                         ": the server did not report a size");
  }
  return std::optional<uint64_t>(*attrs->size);
}

Status SftpTransport::SimpleRequest(uint8_t type, const std::string& request,
                                    const std::string& path,
                                    const std::string& arg2, bool data_path) {
  const uint32_t id = NextId();
  Packet p(type);
  p.U32(id).Str(path);
  if (!arg2.empty()) p.Str(arg2);
  CBPIPE_ASSIGN_OR_RETURN(Reply reply,
                          Call(std::move(p), id, request + " " + path));
  return FromStatus(reply, request, path, data_path);
}

Status SftpTransport::Extended(const std::string& name,
                               const std::string& request_path,
                               const std::vector<std::string>& args,
                               const std::string& what_path) {
  const uint32_t id = NextId();
  Packet p(kFxpExtended);
  p.U32(id).Str(name);
  for (const std::string& a : args) p.Str(a);
  (void)request_path;
  CBPIPE_ASSIGN_OR_RETURN(Reply reply,
                          Call(std::move(p), id, name + " " + what_path));
  if (reply.type == kFxpExtendedReply) return OkStatus();
  return FromStatus(reply, name, what_path, /*data_path=*/true);
}

Status SftpTransport::Upload(const std::string& local_path,
                             const std::string& remote_name) {
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(remote_name));
  int fd = ::open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = "cannot open " + local_path + ": " + strerror(err);
    return err == ENOENT ? NotFoundError(msg) : FailedPreconditionError(msg);
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st;
  ::fstat(fd, &st);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  CBPIPE_RETURN_IF_ERROR(BeginCall());

  const std::string path = Path(remote_name);
  const std::string what = "upload " + local_path + " to " + path;
  // OPEN for writing (create, truncate): the only OPEN cbpipe sends.
  std::string handle;
  {
    const uint32_t id = NextId();
    Packet p(kFxpOpen);
    p.U32(id).Str(path).U32(kFxfWrite | kFxfCreat | kFxfTrunc).U32(0);
    CBPIPE_ASSIGN_OR_RETURN(Reply reply, Call(std::move(p), id, what));
    if (reply.type != kFxpHandle) return FromStatus(reply, "OPEN", path);
    Reader r{reply.body};
    handle = std::string(r.Str());
    if (!r.ok) {
      Disconnect();
      return UnavailableError(what + ": malformed OPEN reply");
    }
  }

  // WRITE requests, up to kMaxWritesInFlight unanswered. Right behind the
  // last WRITE, without waiting for the replies: fsync@openssh.com where
  // offered (the bytes on the server's disk before the rename makes them
  // visible), then CLOSE. A server handles the requests on one handle in
  // the order sent (OpenSSH's and ProFTPD's one at a time), so the flush
  // covers every WRITE; Upload returns only when all of them are answered,
  // so a small file costs two round trips (OPEN, then the rest).
  const bool fsync = has_fsync_ && s_.fsync;
  std::map<uint32_t, uint32_t> in_flight;  // WRITE id -> length
  uint32_t fsync_id = 0, close_id = 0;     // 0: not sent, or answered
  Status synced, closed;
  bool tail_sent = false;
  std::vector<char> chunk(kWriteChunk);
  uint64_t offset = 0;
  bool eof = false;
  int read_error = 0;
  Status failure;
  while (failure.ok()) {
    bool progress = false;
    while (!eof && in_flight.size() < kMaxWritesInFlight &&
           out_.size() - out_pos_ < 4 * kWriteChunk) {
      size_t got = 0;
      while (got < kWriteChunk) {
        ssize_t n = ::read(fd, chunk.data() + got, kWriteChunk - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) read_error = errno;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      if (read_error != 0) break;
      if (got == 0) {
        eof = true;
        break;
      }
      const uint32_t id = NextId();
      Packet p(kFxpWrite);
      p.U32(id).Str(handle).U64(offset).Str(
          std::string_view(chunk.data(), got));
      p.AppendTo(&out_);
      in_flight[id] = static_cast<uint32_t>(got);
      offset += got;
      progress = true;
      if (got < kWriteChunk) eof = true;
    }
    if (read_error != 0 || (eof && offset != size)) break;
    if (eof && !tail_sent) {
      if (fsync) {
        fsync_id = NextId();
        Packet p(kFxpExtended);
        p.U32(fsync_id).Str("fsync@openssh.com").Str(handle);
        p.AppendTo(&out_);
      }
      close_id = NextId();
      Packet close(kFxpClose);
      close.U32(close_id).Str(handle);
      close.AppendTo(&out_);
      tail_sent = true;
      progress = true;
    }
    bool blocked = false;
    failure = TrySend(what, &progress, &blocked);
    if (!failure.ok()) break;
    for (;;) {
      Reply reply;
      bool got = false;
      failure = TryReceive(what, &reply, &got);
      if (!failure.ok() || !got) break;
      progress = true;
      if (auto it = in_flight.find(reply.id); it != in_flight.end()) {
        in_flight.erase(it);
        failure = FromStatus(reply, "WRITE", path, /*data_path=*/true);
        if (!failure.ok()) break;
      } else if (fsync_id != 0 && reply.id == fsync_id) {
        fsync_id = 0;
        if (reply.type != kFxpExtendedReply) {
          synced = FromStatus(reply, "fsync@openssh.com", path, true);
        }
      } else if (close_id != 0 && reply.id == close_id) {
        close_id = 0;
        closed = FromStatus(reply, "CLOSE", path, /*data_path=*/true);
      } else {
        Disconnect();
        failure = UnavailableError(what + ": SFTP reply for another request");
        break;
      }
    }
    if (!failure.ok()) break;
    if (tail_sent && in_flight.empty() && fsync_id == 0 && close_id == 0) {
      break;
    }
    if (!progress) failure = Wait(what, blocked);
  }
  if (read_error != 0 || !failure.ok() || offset != size) {
    // Replies are still on their way: this connection is out of step.
    Disconnect();
    if (read_error != 0) {
      return FailedPreconditionError("cannot read " + local_path + ": " +
                                     strerror(read_error));
    }
    if (!failure.ok()) return failure;
    return FailedPreconditionError(
        local_path + " changed size during the upload (" +
        std::to_string(size) + " bytes at the start, " +
        std::to_string(offset) + " read)");
  }
  return closed.ok() ? synced : closed;
}

Status SftpTransport::Rename(const std::string& from, const std::string& to,
                             bool replace) {
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(from));
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(to));
  CBPIPE_RETURN_IF_ERROR(BeginCall());
  const std::string src = Path(from), dst = Path(to);
  Status st;
  if (replace && has_posix_rename_) {
    // Atomic: the target is replaced, never missing.
    return Extended("posix-rename@openssh.com", src, {src, dst}, src);
  }
  if (replace) {
    st = SimpleRequest(kFxpRemove, "REMOVE", dst, "");
    if (!st.ok() && st.code() != StatusCode::kNotFound) return st;
  }
  // Plain RENAME: SFTP v3 servers refuse to overwrite (OpenSSH uses link(2)
  // and unlink(2): atomic, no window where another client's file is lost).
  st = SimpleRequest(kFxpRename, "RENAME", src, dst);
  if (st.ok() || st.IsTransient() ||
      st.code() == StatusCode::kPermissionDenied) {
    return st;
  }
  const std::string what = "rename " + src + " to " + to;
  if (!s_.write_only) {
    // Say which side was the problem, where the server answers STAT.
    uint32_t source_code = 0, target_code = 0;
    StatusOr<Attrs> source = Stat(src, &source_code);
    if (!source.ok() && source_code == kFxNoSuchFile) {
      return NotFoundError(what + ": " + from + " does not exist");
    }
    StatusOr<Attrs> target = Stat(dst, &target_code);
    if (target.ok() && !replace) {
      return AlreadyExistsError(what + ": " + to + " exists already");
    }
    const bool refused = (!source.ok() && source.status().code() ==
                                              StatusCode::kPermissionDenied) ||
                         (!target.ok() && target.status().code() ==
                                              StatusCode::kPermissionDenied);
    if (!refused) return st;
  }
  if (st.code() == StatusCode::kNotFound) return st;
  // The server does not say why, and cannot be asked; the usual reason is
  // an existing target (RENAME never overwrites).
  return AlreadyExistsError(st.message() + ": most likely " + to +
                            " exists already (not verifiable on this "
                            "server)");
}

Status SftpTransport::Remove(const std::string& remote_name) {
  CBPIPE_RETURN_IF_ERROR(CheckRemoteName(remote_name));
  CBPIPE_RETURN_IF_ERROR(BeginCall());
  Status st = SimpleRequest(kFxpRemove, "REMOVE", Path(remote_name), "");
  if (st.ok() || st.code() == StatusCode::kNotFound) return OkStatus();
  return st;
}

}  // namespace

StatusOr<std::unique_ptr<Transport>> MakeSftpTransport(
    const DestinationConfig& d, SecretStore* secrets) {
  secrets = SecretsOrDefault(secrets);
  const std::string where = "destination " + d.name;
  CBPIPE_ASSIGN_OR_RETURN(DestinationUrl url, ParseDestinationUrl(d.url));
  if (url.scheme != "sftp") {
    return InvalidArgumentError(where + ": not an sftp:// url");
  }
  SftpTransport::Settings s;
  s.destination = d.name;
  s.host = url.host;
  if (!url.port.empty()) {
    char* end = nullptr;
    long port = std::strtol(url.port.c_str(), &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) {
      return InvalidArgumentError(where + ": bad port " + url.port);
    }
    s.port = static_cast<int>(port);
  }
  CBPIPE_ASSIGN_OR_RETURN(s.username, DestinationUser(d, url, where));
  const std::string path = DestinationFolder(url);
  s.dir = UrlDecode(path);
  if (s.dir.starts_with("/~/")) {
    return InvalidArgumentError(
        where + ": sftp url paths must be absolute (/~/ is not supported)");
  }
  for (char c : s.dir) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return InvalidArgumentError(where +
                                  ": the sftp path has a quote, backslash "
                                  "or control character");
    }
  }
  s.description = "sftp://" + s.username + "@" + s.host + ":" +
                  std::to_string(s.port) +
                  (path.size() > 1 ? path.substr(0, path.size() - 1) : "");

  if (!d.password_ref.empty()) {
    auto password = secrets->Resolve(d.password_ref);
    if (!password.ok()) {
      return Status(password.status().code(),
                    where + ": password_ref: " + password.status().message());
    }
    s.password = std::move(*password);
  }
  if (!d.private_key_ref.empty()) {
    if (d.private_key_ref.starts_with("file:")) {
      auto key = secrets->KeyFilePath(d.private_key_ref);
      if (!key.ok()) {
        return Status(key.status().code(),
                      where + ": private_key_ref: " + key.status().message());
      }
      s.private_key_path = *key;
    } else {
      // env:NAME holds the key text itself.
      auto key = secrets->Resolve(d.private_key_ref);
      if (!key.ok()) {
        return Status(key.status().code(),
                      where + ": private_key_ref: " + key.status().message());
      }
      if (!key->value().empty() && key->value().back() != '\n') {
        // Room for the newline first: appending must not reallocate and
        // leave a copy of the key in freed memory.
        std::string text;
        text.reserve(key->value().size() + 1);
        text.append(key->value()).push_back('\n');
        *key = SecretString(std::move(text));
      }
      s.private_key_data = std::move(*key);
    }
    s.public_key_path = d.public_key_path;
  }
  if (s.private_key_path.empty() && s.private_key_data.empty() &&
      s.password.empty()) {
    return InvalidArgumentError(where +
                                ": sftp needs private_key_ref or "
                                "password_ref");
  }
  if (!d.known_hosts.empty()) {
    if (::access(d.known_hosts.c_str(), R_OK) != 0) {
      return InvalidArgumentError(where + ": known_hosts file " +
                                  d.known_hosts + " cannot be read");
    }
    s.known_hosts = d.known_hosts;
  }
  std::string sha = d.host_key_sha256;
  if (sha.starts_with("SHA256:")) sha = sha.substr(7);
  while (!sha.empty() && sha.back() == '=') sha.pop_back();
  if (!sha.empty() && sha.size() != 43) {
    return InvalidArgumentError(
        where +
        ": host_key_sha256 must be the 43-character base64 "
        "SHA-256 that ssh-keygen -l -E sha256 prints");
  }
  s.host_key_sha256 = sha;
  if (s.known_hosts.empty() && s.host_key_sha256.empty()) {
    if (!d.insecure_skip_host_key) {
      return InvalidArgumentError(
          where +
          ": sftp needs known_hosts or host_key_sha256 to verify "
          "the server (or insecure_skip_host_key = true)");
    }
    std::cerr << "cbpipe: WARNING: " << where
              << ": insecure_skip_host_key = true: the SSH host key of "
              << s.host << " is NOT verified; anyone on the path can "
              << "impersonate the server\n";
  }
  s.write_only = d.write_only;
  s.fsync = d.remote_fsync;
  s.connect_timeout_ms = std::max(1L, Millis(d.connect_timeout_seconds));
  s.transfer_timeout_ms = Millis(d.transfer_timeout_seconds);
  s.stall_ms = Millis(d.stall_timeout_seconds);
  return std::unique_ptr<Transport>(
      std::make_unique<SftpTransport>(std::move(s)));
}

StatusOr<SftpServerOffers> SftpOffers(Transport* transport) {
  auto* sftp = dynamic_cast<SftpTransport*>(transport);
  if (sftp == nullptr) {
    return InvalidArgumentError("not an sftp:// transport");
  }
  return sftp->Offers();
}

}  // namespace cbpipe
