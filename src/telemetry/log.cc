#include "telemetry/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include "domain/pan.h"

namespace cbpipe {
namespace {

constexpr std::string_view kRedacted = "[REDACTED]";

// --- JSON --------------------------------------------------------------------

// Length of the valid UTF-8 sequence at s[i] (lead byte >= 0x80), 0 if not.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) {
    return k < s.size() && (byte(k) & 0xc0) == 0x80;
  };
  unsigned char c = byte(i);
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    unsigned char c1 = byte(i + 1);
    if (c == 0xe0 && c1 < 0xa0) return 0;   // overlong
    if (c == 0xed && c1 >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    unsigned char c1 = byte(i + 1);
    if (c == 0xf0 && c1 < 0x90) return 0;   // overlong
    if (c == 0xf4 && c1 >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

void AppendJsonString(std::string* out, std::string_view s) {
  constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t plain = 0;  // start of the bytes not yet copied
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t len = Utf8SequenceLength(s, i);
      if (len > 0) {
        i += len;
        continue;
      }
    }
    out->append(s.data() + plain, i - plain);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (c >= 0x80) {
          out->append("\\ufffd");  // not UTF-8
        } else {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        }
    }
    ++i;
    plain = i;
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
}

void AppendKey(std::string* out, std::string_view key) {
  out->push_back(',');
  AppendJsonString(out, key);
  out->push_back(':');
}

// "2024-05-01T12:00:00.123Z"; the part up to the seconds is cached per
// thread since consecutive lines mostly share it.
void AppendTime(std::string* out, std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                t.time_since_epoch())
                .count();
  int64_t seconds = ms / 1000;
  int millis = static_cast<int>(ms % 1000);
  if (millis < 0) {
    millis += 1000;
    --seconds;
  }
  thread_local int64_t cached_seconds = -1;
  thread_local char cached[32];
  thread_local size_t cached_size = 0;
  if (seconds != cached_seconds || cached_size == 0) {
    std::time_t tt = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    cached_size =
        std::strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
    cached_seconds = seconds;
  }
  out->append(cached, cached_size);
  char frac[6] = {'.',
                  static_cast<char>('0' + millis / 100),
                  static_cast<char>('0' + millis / 10 % 10),
                  static_cast<char>('0' + millis % 10),
                  'Z',
                  0};
  out->append(frac, 5);
}

bool IsFixedKey(std::string_view key) {
  return key == "time" || key == "level" || key == "event" || key == "msg" ||
         key == "run_id" || key == "batch_id" || key == "trace_id" ||
         key == "destination";
}

// Keys whose values are never logged, whatever they look like.
bool IsSensitiveKey(std::string_view key) {
  std::string lower(key);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  static constexpr std::string_view kContains[] = {
      "password", "passwd",      "passphrase",    "secret",
      "token",    "private_key", "authorization", "credential",
      "api_key",  "apikey",      "cookie"};
  for (std::string_view part : kContains) {
    if (lower.find(part) != std::string::npos) return true;
  }
  static constexpr std::string_view kExact[] = {
      "cvv",    "cvv2",   "cvc",        "cvc2", "cid",      "cav2",
      "track1", "track2", "track_data", "pin",  "pin_block"};
  for (std::string_view name : kExact) {
    if (lower == name) return true;
  }
  return false;
}

// Overwrites then clears, so a credential does not linger in freed memory.
void Wipe(std::string* s) {
  volatile char* p = s->data();
  for (size_t i = 0; i < s->capacity(); ++i) p[i] = 0;
  s->clear();
}

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (lower == "debug") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warn" || lower == "warning") return LogLevel::kWarn;
  if (lower == "error") return LogLevel::kError;
  return InvalidArgumentError("unknown log level \"" + std::string(name) +
                              "\" (debug, info, warn, error)");
}

LogContext LogContext::WithBatch(std::string batch) const {
  LogContext copy = *this;
  copy.batch_id = std::move(batch);
  return copy;
}

LogContext LogContext::WithDestination(std::string dest) const {
  LogContext copy = *this;
  copy.destination = std::move(dest);
  return copy;
}

// --- Sinks
// ---------------------------------------------------------------------

FdLogSink::~FdLogSink() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void FdLogSink::Write(std::string_view line) {
  std::lock_guard<std::mutex> lock(mu_);
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      failed_writes_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

std::shared_ptr<LogSink> StderrLogSink() {
  static const std::shared_ptr<LogSink> sink =
      std::make_shared<FdLogSink>(STDERR_FILENO, /*owned=*/false);
  return sink;
}

StatusOr<std::shared_ptr<LogSink>> OpenFileLogSink(const std::string& path) {
  int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    int err = errno;
    std::string message =
        "cannot open log file " + path + ": " + std::strerror(err);
    if (err == EACCES || err == EPERM || err == EROFS) {
      return PermissionDeniedError(std::move(message));
    }
    if (err == ENOENT || err == ENOTDIR)
      return NotFoundError(std::move(message));
    return UnavailableError(std::move(message));
  }
  return std::shared_ptr<LogSink>(std::make_shared<FdLogSink>(fd, true));
}

void MemoryLogSink::Write(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  std::lock_guard<std::mutex> lock(mu_);
  lines_.emplace_back(line);
}

std::vector<std::string> MemoryLogSink::Lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

void MemoryLogSink::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  lines_.clear();
}

// --- Logger
// --------------------------------------------------------------------

const LogContext Logger::kNoContext;

Logger::Logger(std::shared_ptr<LogSink> sink, LogLevel min_level, Clock clock)
    : sink_(std::move(sink)), min_level_(min_level), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
}

Logger::~Logger() {
  for (std::string& secret : secrets_) Wipe(&secret);
}

void Logger::SetSink(std::shared_ptr<LogSink> sink) {
  sink_.store(std::move(sink));
}

void Logger::AddSecret(std::string_view value) {
  if (value.size() < 4) return;
  std::unique_lock lock(secrets_mu_);
  for (const std::string& known : secrets_) {
    if (known == value) return;
  }
  secrets_.emplace_back(value);
  has_secrets_.store(true, std::memory_order_release);
}

void Logger::RedactSecrets(std::string* text) const {
  if (!has_secrets_.load(std::memory_order_acquire)) return;
  std::shared_lock lock(secrets_mu_);
  for (const std::string& secret : secrets_) {
    size_t pos = 0;
    while ((pos = text->find(secret, pos)) != std::string::npos) {
      text->replace(pos, secret.size(), kRedacted);
      pos += kRedacted.size();
    }
  }
}

void Logger::AppendText(std::string* out, std::string_view value) const {
  const bool secrets = has_secrets_.load(std::memory_order_acquire);
  if (!secrets && !ContainsCardNumber(value)) {
    AppendJsonString(out, value);
    return;
  }
  thread_local std::string scratch;
  scratch.assign(value);
  MaskCardNumbersInPlace(&scratch);
  RedactSecrets(&scratch);
  AppendJsonString(out, scratch);
  if (scratch.capacity() > (64 << 10)) std::string().swap(scratch);
}

namespace {

// Enough to keep a line valid JSON: one object or array on one line. The
// caller vouches for the rest (LogField::Json).
bool LooksLikeJsonValue(std::string_view json) {
  if (json.size() < 2) return false;
  const char open = json.front(), close = json.back();
  if (!((open == '{' && close == '}') || (open == '[' && close == ']')))
    return false;
  for (char c : json) {
    if (static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

}  // namespace

void Logger::Write(LogLevel level, const LogContext& context,
                   std::string_view event, std::string_view msg,
                   LogFields fields) {
  // Audit lines (app/audit.h) are kept whatever the level.
  if (!Enabled(level) && !event.starts_with("audit.")) return;
  std::shared_ptr<LogSink> sink = sink_.load();
  if (!sink) return;

  thread_local std::string line;
  line.clear();
  line.append("{\"time\":\"");
  AppendTime(&line, clock_());
  line.append("\",\"level\":\"");
  line.append(LogLevelName(level));
  // The event name and the context are the program's own: never masked.
  line.append("\",\"event\":");
  AppendJsonString(&line, event);
  line.append(",\"msg\":");
  AppendText(&line, msg);
  const std::pair<std::string_view, const std::string*> context_fields[] = {
      {"run_id", &context.run_id},
      {"batch_id", &context.batch_id},
      {"trace_id", &context.trace_id},
      {"destination", &context.destination}};
  for (const auto& [key, value] : context_fields) {
    if (value->empty()) continue;
    AppendKey(&line, key);
    AppendJsonString(&line, *value);
  }
  for (const LogField& field : fields) {
    if (IsFixedKey(field.key())) {
      std::string renamed = "_";
      renamed += field.key();
      AppendKey(&line, renamed);
    } else {
      AppendKey(&line, field.key());
    }
    if (IsSensitiveKey(field.key())) {
      AppendJsonString(&line, kRedacted);
      continue;
    }
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            switch (field.kind()) {
              case LogField::Kind::kId: AppendJsonString(&line, v); break;
              case LogField::Kind::kJson:
                if (LooksLikeJsonValue(v)) {
                  line.append(v);
                } else {
                  AppendText(&line, v);
                }
                break;
              case LogField::Kind::kText: AppendText(&line, v); break;
            }
          } else if constexpr (std::is_same_v<T, bool>) {
            line.append(v ? "true" : "false");
          } else {
            // A number is a count, size or time the program computed.
            char buf[24];
            auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
            line.append(buf, end);
          }
        },
        field.value());
  }
  line.append("}\n");
  sink->Write(line);
  if (line.capacity() > (64 << 10)) std::string().swap(line);
}

Logger& Log() {
  static Logger* const logger = new Logger(StderrLogSink());
  return *logger;
}

Status ConfigureLog(const LogOptions& options) {
  std::shared_ptr<LogSink> sink;
  if (options.path.empty() || options.path == "-") {
    sink = StderrLogSink();
  } else {
    StatusOr<std::shared_ptr<LogSink>> file = OpenFileLogSink(options.path);
    if (!file.ok()) return file.status();
    sink = std::move(*file);
  }
  Log().SetSink(std::move(sink));
  Log().SetMinLevel(options.level);
  return OkStatus();
}

}  // namespace cbpipe
