// sigv4-curl-measure DIR: has libcurl's own SigV4 signer
// (CURLOPT_AWS_SIGV4) sign every conformance case under DIR and compares
// the Authorization header it sends (caught by a loopback listener) with the
// case's header-signed-request.txt. Prints "PASS name", "FAIL name: ..." or
// "CANNOT name: why" per case and a summary; exit 0 always (it measures,
// the decision is in docs/aws.md). Query signing (presigned URLs) is not
// measured: libcurl has no way to sign into the query string.
//
// How each case is handed to curl (what curl does not take from a request):
// - credentials through CURLOPT_USERPWD, provider/region/service through
//   CURLOPT_AWS_SIGV4 "aws:amz:REGION:SERVICE";
// - the case's time as an X-Amz-Date header (curl 7.88 signs with a date
//   header it is given instead of the clock);
// - a session token as an X-Amz-Security-Token header (7.88 has no token
//   parameter), x-amz-content-sha256 as a header when the case signs the body;
// - the host by CURLOPT_CONNECT_TO (the URL keeps the case's host name);
// - CURLOPT_PATH_AS_IS for the unnormalised cases, so curl sends the path
//   exactly as written;
// - the path and query in wire form: spaces and non-ASCII bytes %XX-encoded
//   (what any client sends; curl refuses a raw space in a URL);
// - a Content-Length header the case has as a custom header (curl signs
//   custom headers only, not the one it computes).
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <thread>

#include "aws/sigv4_conformance.h"

namespace {

using cbpipe::AwsConformanceCase;

// Accepts one connection, reads one request (headers + Content-Length
// body), answers 200 and keeps the request text.
class OneShotListener {
 public:
  OneShotListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, 1) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~OneShotListener() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  // Call after the transfer ended.
  std::string request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  void Serve() {
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;
    timeval tv{5, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    size_t need = std::string::npos;
    while (true) {
      size_t end = request_.find("\r\n\r\n");
      if (end != std::string::npos && need == std::string::npos) {
        need = end + 4;
        std::string lower = request_.substr(0, end);
        for (char& c : lower) c = static_cast<char>(std::tolower(c));
        size_t cl = lower.find("\r\ncontent-length:");
        if (cl != std::string::npos) need += std::stoul(lower.substr(cl + 17));
      }
      if (need != std::string::npos && request_.size() >= need) break;
      ssize_t n = ::recv(conn, buf, sizeof buf, 0);
      if (n <= 0) break;
      request_.append(buf, static_cast<size_t>(n));
    }
    static constexpr char kAnswer[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    ssize_t sent = ::send(conn, kAnswer, sizeof kAnswer - 1, MSG_NOSIGNAL);
    (void)sent;
    ::close(conn);
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string request_;
};

std::string HeaderValue(const std::string& request, const std::string& name) {
  std::string lower = request;
  for (char& c : lower) c = static_cast<char>(std::tolower(c));
  std::string key = "\n" + name + ":";
  size_t at = lower.find(key);
  if (at == std::string::npos) return "";
  size_t start = at + key.size();
  size_t end = request.find('\n', start);
  std::string value = request.substr(start, end - start);
  while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) {
    value.pop_back();
  }
  while (!value.empty() && value.front() == ' ') value.erase(0, 1);
  return value;
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

// What any HTTP client must send for a request line holding spaces or
// non-ASCII bytes: those bytes %XX-encoded, the rest untouched (curl's URL
// parser refuses a raw space).
std::string WireForm(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

// "" on a match, otherwise what differed (or, prefixed "CANNOT ", why the
// case cannot be put to curl).
std::string Measure(const AwsConformanceCase& c) {
  auto expected_signed =
      cbpipe::ReadAwsCaseFile(c.dir + "/header-signed-request.txt");
  if (!expected_signed.ok()) return "CANNOT no header-signed-request.txt";
  std::string want = HeaderValue(*expected_signed, "authorization");

  std::string host;
  for (const auto& [name, value] : c.request.headers) {
    if (name.size() == 4 && strncasecmp(name.c_str(), "host", 4) == 0) {
      host = cbpipe::AwsTrimHeaderValue(value);
    }
  }
  OneShotListener listener;
  if (listener.port() == 0) return "CANNOT no loopback listener";

  CURL* curl = curl_easy_init();
  std::string url = "http://" + host + WireForm(c.request.path);
  if (!c.request.query.empty()) {
    url += '?';
    url += WireForm(c.request.query);
  }
  std::string connect_to =
      host + ":80:127.0.0.1:" + std::to_string(listener.port());
  curl_slist* connect = curl_slist_append(nullptr, connect_to.c_str());
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : c.request.headers) {
    std::string lower = name;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(ch));
    if (lower == "host") continue;
    headers = curl_slist_append(headers, (name + ":" + value).c_str());
  }
  headers = curl_slist_append(
      headers, ("X-Amz-Date: " + cbpipe::AwsAmzDate(c.options.time_s)).c_str());
  if (!c.credentials.session_token.empty() && !c.options.omit_session_token) {
    headers = curl_slist_append(
        headers,
        ("X-Amz-Security-Token: " + c.credentials.session_token).c_str());
  }
  if (c.options.sign_body) {
    headers = curl_slist_append(
        headers, ("X-Amz-Content-Sha256: " + c.options.payload_hash).c_str());
  }
  std::string provider =
      "aws:amz:" + c.options.region + ":" + c.options.service;
  std::string userpwd =
      c.credentials.access_key_id + ":" + c.credentials.secret_access_key;

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, provider.c_str());
  curl_easy_setopt(curl, CURLOPT_USERPWD, userpwd.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, c.request.method.c_str());
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS,
                   c.options.normalize_path ? 0L : 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (!c.request.body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, c.request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(c.request.body.size()));
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  curl_slist_free_all(connect);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return std::string("CANNOT curl refused the request: ") +
           curl_easy_strerror(rc);
  }
  std::string got = HeaderValue(listener.request(), "authorization");
  if (got == want) return "";
  return "Authorization: expected \"" + want + "\", got \"" + got + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: sigv4-curl-measure DIR\n";
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::cout << "libcurl " << curl_version_info(CURLVERSION_NOW)->version
            << "\n";
  auto cases = cbpipe::ListAwsConformanceCases(argv[1]);
  if (!cases.ok() || cases->empty()) {
    std::cerr << "sigv4-curl-measure: no case folder under " << argv[1] << "\n";
    return 2;
  }
  int pass = 0, fail = 0, cannot = 0;
  for (const std::string& dir : *cases) {
    auto c = cbpipe::LoadAwsConformanceCase(dir);
    if (!c.ok()) {
      std::cout << "CANNOT " << dir << ": " << c.status().ToString() << "\n";
      ++cannot;
      continue;
    }
    std::string diff = Measure(*c);
    if (diff.empty()) {
      std::cout << "PASS " << c->name << "\n";
      ++pass;
    } else if (diff.starts_with("CANNOT ")) {
      std::cout << "CANNOT " << c->name << ": " << diff.substr(7) << "\n";
      ++cannot;
    } else {
      std::cout << "FAIL " << c->name << ": " << diff << "\n";
      ++fail;
    }
  }
  std::cout << "libcurl header signing: " << pass << "/" << cases->size()
            << " pass, " << fail << " fail, " << cannot
            << " cannot be expressed; query signing: 0/" << cases->size()
            << " (libcurl cannot presign)\n";
  curl_global_cleanup();
  return 0;
}
