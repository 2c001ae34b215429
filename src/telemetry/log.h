// Structured JSON logs: one event per line, written with one write(2).
//
//   LogContext ctx{.run_id = run, .trace_id = trace.trace_id.ToHex()};
//   Log().Info(ctx, "input.accepted", "input read", {{"records", 1200}});
//   Log().Warn(ctx.WithDestination("visa"), "delivery.failed",
//              status.ToString(), {{"attempt", 3}, {"file", name}});
//
// writes
//
//   {"time":"2024-05-01T12:00:00.123Z","level":"warn","event":
//    "delivery.failed","msg":"UNAVAILABLE: ...","run_id":"...","trace_id":
//    "...","destination":"visa","attempt":3,"file":"VISA_20240501_001.csv"}
//
// Field order is fixed: time, level, event, msg, then run_id, batch_id,
// trace_id, destination (each left out when empty), then the extra fields in
// the order given. An extra field named like a fixed one is written with a
// leading "_" ("_level"). docs/observability.md lists the fields and events.
//
// What is redacted, and what never is. Only text that came from outside the
// program (an input, a file name, a server's reply) can hold a card number,
// so only free text is masked; values the program made itself are written
// as they are, so that ids and times stay correct and searchable:
//   - free text, masked (MaskCardNumbers, domain/pan.h: a card number keeps
//     its first 6 and last 4 digits) and cleared of registered secrets:
//     `msg` and every string extra field (LogField(key, "text"));
//   - never masked: `event`, the context (run_id, batch_id, trace_id,
//     destination: ids and names the program or its config made), integer
//     and boolean fields (counts, sizes, epoch milliseconds), string fields
//     made with LogField::Id (an id the program generated) and
//     LogField::Json (a JSON value the program serialised, whose free text
//     it has already masked, e.g. EventJson).
// Values registered with Logger::AddSecret() are replaced by "[REDACTED]"
// in free text. Extra fields whose key names a secret or card data
// ("password", "token", "secret", "cvv", "track2", ...) are always written
// as "[REDACTED]", whatever their kind.
// Bytes that are not UTF-8 become U+FFFD so every line is valid JSON.
//
// Thread safety: a Logger and the sinks here may be used from any number of
// threads; lines never interleave.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace cbpipe {

enum class LogLevel : uint8_t { kDebug, kInfo, kWarn, kError };

// "debug", "info", "warn", "error".
std::string_view LogLevelName(LogLevel level);
// The names above, case-insensitive; "warning" is accepted for "warn".
// kInvalidArgument otherwise.
StatusOr<LogLevel> ParseLogLevel(std::string_view name);

// Who a line is about: passed along from step to step so every line of one
// input carries the same run id and trace id.
struct LogContext {
  std::string run_id{};       // one workflow run (one input)
  std::string batch_id{};     // "<input_id>-b001"
  std::string trace_id{};     // 32 hex digits (TraceId::ToHex())
  std::string destination{};  // a destination name ("visa")

  LogContext WithBatch(std::string batch) const;
  LogContext WithDestination(std::string dest) const;
};

// One extra key/value of a line. It refers to the key and a string value
// without copying them: build it in the call (an initializer list), do not
// keep it. A string is free text (masked) unless made with Id or Json.
class LogField {
 public:
  using Value = std::variant<std::string_view, int64_t, uint64_t, bool>;
  enum class Kind : uint8_t {
    kText,  // free text: card numbers masked, secrets redacted
    kId,    // an id the program generated: written as it is
    kJson,  // a JSON value the program serialised: embedded as it is
  };

  LogField(std::string_view key, std::string_view value)
      : key_(key), value_(value) {}
  LogField(std::string_view key, const char* value)
      : key_(key), value_(std::string_view(value)) {}
  LogField(std::string_view key, const std::string& value)
      : key_(key), value_(std::string_view(value)) {}
  LogField(std::string_view key, bool value) : key_(key), value_(value) {}
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>)
      LogField(std::string_view key, T value)
      : key_(key) {
    if constexpr (std::is_signed_v<T>) {
      value_ = static_cast<int64_t>(value);
    } else {
      value_ = static_cast<uint64_t>(value);
    }
  }
  LogField(std::string_view key, char value) = delete;  // ambiguous intent

  // An identifier the program made (a run, batch or delivery id, a
  // traceparent): never masked, even when its digits form a card number.
  static LogField Id(std::string_view key, std::string_view value) {
    LogField f(key, value);
    f.kind_ = Kind::kId;
    return f;
  }
  // One compact JSON value (object, array) the program serialised, without
  // line breaks, whose free text is already masked: embedded as a value,
  // not as a string. Anything that does not look like one is written as
  // free text instead.
  static LogField Json(std::string_view key, std::string_view json) {
    LogField f(key, json);
    f.kind_ = Kind::kJson;
    return f;
  }

  std::string_view key() const { return key_; }
  const Value& value() const { return value_; }
  Kind kind() const { return kind_; }

 private:
  std::string_view key_;
  Value value_;
  Kind kind_ = Kind::kText;
};
using LogFields = std::initializer_list<LogField>;

// Where lines go.
class LogSink {
 public:
  virtual ~LogSink() = default;
  // Writes one complete line (a JSON object and its '\n') as one unit:
  // lines written concurrently never interleave. Must not fail loudly: a log
  // that cannot be written must not stop the pipeline.
  virtual void Write(std::string_view line) = 0;
};

// A file descriptor: each line is one write(2) call (a partial write, rare,
// is finished under the same lock). With O_APPEND, lines from several
// processes appending to one file do not interleave either.
class FdLogSink : public LogSink {
 public:
  // Closes `fd` when destroyed if `owned`.
  FdLogSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~FdLogSink() override;
  FdLogSink(const FdLogSink&) = delete;
  FdLogSink& operator=(const FdLogSink&) = delete;

  void Write(std::string_view line) override;
  // Lines that could not be written (fully), for a health check.
  uint64_t failed_writes() const {
    return failed_writes_.load(std::memory_order_relaxed);
  }

 private:
  int fd_;
  bool owned_;
  std::mutex mu_;
  std::atomic<uint64_t> failed_writes_{0};
};

// Standard error (not closed).
std::shared_ptr<LogSink> StderrLogSink();
// `path` opened for appending (created 0640 if missing). kPermissionDenied,
// kNotFound or kUnavailable naming the path and the reason otherwise.
StatusOr<std::shared_ptr<LogSink>> OpenFileLogSink(const std::string& path);

// Keeps the lines in memory, for tests.
class MemoryLogSink : public LogSink {
 public:
  void Write(std::string_view line) override;
  // The lines written so far, without their '\n'.
  std::vector<std::string> Lines() const;
  void Clear();

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

class Logger {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // `clock` defaults to the system clock (tests inject a fixed one).
  explicit Logger(std::shared_ptr<LogSink> sink,
                  LogLevel min_level = LogLevel::kInfo, Clock clock = {});
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Both may be called while other threads log.
  void SetSink(std::shared_ptr<LogSink> sink);
  void SetMinLevel(LogLevel level) {
    min_level_.store(level, std::memory_order_relaxed);
  }
  LogLevel min_level() const {
    return min_level_.load(std::memory_order_relaxed);
  }
  bool Enabled(LogLevel level) const { return level >= min_level(); }

  // From now on, every occurrence of `value` in a line is replaced by
  // "[REDACTED]" (call it with each credential once resolved). Values shorter
  // than 4 bytes are ignored: they would mask ordinary text. The copies kept
  // here are overwritten when the Logger is destroyed.
  void AddSecret(std::string_view value);

  // Writes one line if `level` is enabled, or if `event` starts with
  // "audit." (audit lines are never filtered out). `event` is a stable
  // dotted name ("delivery.failed"); `msg` is for people.
  void Write(LogLevel level, const LogContext& context, std::string_view event,
             std::string_view msg, LogFields fields = {});

  void Debug(const LogContext& c, std::string_view event, std::string_view msg,
             LogFields fields = {}) {
    Write(LogLevel::kDebug, c, event, msg, fields);
  }
  void Info(const LogContext& c, std::string_view event, std::string_view msg,
            LogFields fields = {}) {
    Write(LogLevel::kInfo, c, event, msg, fields);
  }
  void Warn(const LogContext& c, std::string_view event, std::string_view msg,
            LogFields fields = {}) {
    Write(LogLevel::kWarn, c, event, msg, fields);
  }
  void Error(const LogContext& c, std::string_view event, std::string_view msg,
             LogFields fields = {}) {
    Write(LogLevel::kError, c, event, msg, fields);
  }
  // Without a context (process-wide events: "service.started").
  void Debug(std::string_view event, std::string_view msg,
             LogFields fields = {}) {
    Write(LogLevel::kDebug, kNoContext, event, msg, fields);
  }
  void Info(std::string_view event, std::string_view msg,
            LogFields fields = {}) {
    Write(LogLevel::kInfo, kNoContext, event, msg, fields);
  }
  void Warn(std::string_view event, std::string_view msg,
            LogFields fields = {}) {
    Write(LogLevel::kWarn, kNoContext, event, msg, fields);
  }
  void Error(std::string_view event, std::string_view msg,
             LogFields fields = {}) {
    Write(LogLevel::kError, kNoContext, event, msg, fields);
  }

 private:
  static const LogContext kNoContext;

  // Appends free text `value` to `out` as a JSON string, card numbers
  // masked and secrets redacted.
  void AppendText(std::string* out, std::string_view value) const;
  void RedactSecrets(std::string* text) const;

  std::atomic<std::shared_ptr<LogSink>> sink_;
  std::atomic<LogLevel> min_level_;
  Clock clock_;
  std::atomic<bool> has_secrets_{false};
  mutable std::shared_mutex secrets_mu_;
  std::vector<std::string> secrets_;
};

// The process-wide logger: standard error, level info, until configured.
// Never destroyed, so it may be used until the process exits.
Logger& Log();

struct LogOptions {
  std::string path;  // "" or "-": standard error; else a file, appended to
  LogLevel level = LogLevel::kInfo;
};
// Points Log() at `options` (call at start-up; safe while others log).
// On error Log() is left as it was.
Status ConfigureLog(const LogOptions& options);

}  // namespace cbpipe
