#include "common/process_folder.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPrefix = "cbpipe-";

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return c >= '0' && c <= '9'; });
}

// This process's pid namespace ("4026531836" of "pid:[4026531836]"), or ""
// when /proc does not say.
std::string PidNamespace() {
  char link[64];
  const ssize_t n = ::readlink("/proc/self/ns/pid", link, sizeof(link) - 1);
  if (n <= 0) return "";
  const std::string_view text(link, static_cast<size_t>(n));
  const size_t open = text.find('['), close = text.find(']');
  if (open == std::string_view::npos || close == std::string_view::npos ||
      close <= open + 1)
    return "";
  const std::string_view id = text.substr(open + 1, close - open - 1);
  return AllDigits(id) ? std::string(id) : "";
}

// "cbpipe-KIND-NS-": the start of the names of this namespace's folders.
std::string Prefix(std::string_view kind, const std::string& ns) {
  return std::string(kPrefix) + std::string(kind) + "-" +
         (ns.empty() ? "0" : ns) + "-";
}

// The pid in `name` after `prefix` ("PID-..."), or 0.
pid_t PidAfter(const std::string& name, const std::string& prefix) {
  if (name.compare(0, prefix.size(), prefix) != 0) return 0;
  pid_t pid = 0;
  const char* first = name.data() + prefix.size();
  const char* last = name.data() + name.size();
  const auto [rest, err] = std::from_chars(first, last, pid);
  if (err != std::errc() || rest == last || *rest != '-' || pid <= 0) return 0;
  return pid;
}

// A directory (not a symlink) of this user.
bool OwnFolder(const fs::path& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
         st.st_uid == ::geteuid();
}

// True unless `pid` is certainly gone: kill(pid, 0) says ESRCH.
bool ProcessMayRun(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// The kind of a folder name "cbpipe-KIND-...", or "".
std::string_view KindOf(std::string_view name) {
  if (name.substr(0, kPrefix.size()) != kPrefix) return "";
  name.remove_prefix(kPrefix.size());
  const size_t dash = name.find('-');
  if (dash == std::string_view::npos || dash == 0) return "";
  const std::string_view kind = name.substr(0, dash);
  return std::all_of(kind.begin(), kind.end(),
                     [](char c) { return c >= 'a' && c <= 'z'; })
             ? kind
             : "";
}

int RemoveAll(const std::vector<fs::path>& folders) {
  int removed = 0;
  for (const fs::path& dir : folders) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    removed += ec ? 0 : 1;
  }
  return removed;
}

}  // namespace

int RemoveProcessFoldersOfEndedProcesses(const fs::path& tmp,
                                         std::string_view kind) {
  const std::string ns = PidNamespace();
  if (ns.empty()) return 0;
  const std::string prefix = Prefix(kind, ns);
  std::vector<fs::path> ended;
  std::error_code ec;
  for (fs::directory_iterator it(tmp, ec), end; !ec && it != end;
       it.increment(ec)) {
    const pid_t pid = PidAfter(it->path().filename().string(), prefix);
    if (pid == 0 || pid == ::getpid() || !OwnFolder(it->path()) ||
        ProcessMayRun(pid))
      continue;
    ended.push_back(it->path());
  }
  return RemoveAll(ended);
}

StatusOr<std::string> MakeProcessFolder(std::string_view kind,
                                        const std::string& what) {
  std::error_code ec;
  const fs::path tmp = fs::temp_directory_path(ec);
  if (ec) return UnavailableError("no temporary folder for " + what);
  RemoveProcessFoldersOfEndedProcesses(tmp, kind);
  std::string pattern = (tmp / (Prefix(kind, PidNamespace()) +
                                std::to_string(::getpid()) + "-XXXXXX"))
                            .string();
  if (::mkdtemp(pattern.data()) == nullptr) {  // mode 0700
    const int err = errno;
    return UnavailableError("create a folder for " + what + " in " +
                            tmp.string() + ": " + std::strerror(err));
  }
  return pattern;
}

void RemoveProcessFolder(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::remove_all(dir, ec);
  const fs::path path(dir);
  const std::string name = path.filename().string();
  const std::string_view kind = KindOf(name);
  if (!kind.empty())
    RemoveProcessFoldersOfEndedProcesses(path.parent_path(), kind);
}

void RemoveProcessFoldersOfThisProcess() {
  std::error_code ec;
  const fs::path tmp = fs::temp_directory_path(ec);
  if (ec) return;
  const std::string ns = PidNamespace();
  std::vector<fs::path> mine;
  std::vector<std::string> kinds;
  for (fs::directory_iterator it(tmp, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::string_view kind = KindOf(name);
    if (kind.empty()) continue;
    if (PidAfter(name, Prefix(kind, ns)) == ::getpid() && OwnFolder(it->path()))
      mine.push_back(it->path());
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
      kinds.emplace_back(kind);
  }
  RemoveAll(mine);
  for (const std::string& kind : kinds)
    RemoveProcessFoldersOfEndedProcesses(tmp, kind);
}

}  // namespace cbpipe
