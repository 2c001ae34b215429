// Recoverable errors as values.
//
//   StatusOr<Config> config = LoadConfig(path);
//   if (!config.ok()) return config.status();
//   CBPIPE_RETURN_IF_ERROR(store.Put(key, bytes));
//   CBPIPE_ASSIGN_OR_RETURN(auto file, OpenInput(path));
//
// A rejected record is not a Status: it is data (see validate/). A Status is
// for operations that could not be carried out at all: an unreadable input, a
// bad config, a server that refused a login. Third-party exceptions and
// library error codes are turned into a Status inside the adapter that met
// them.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cbpipe {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong (bad config, bad data)
  kNotFound,            // a named thing does not exist
  kAlreadyExists,       // creating something that is there already
  kFailedPrecondition,  // the system is not in a state where this can run
  kPermissionDenied,    // refused by a server or the file system: do not retry
  kUnauthenticated,     // credentials refused: do not retry
  kUnavailable,         // transient: connect refused, timeout, reset; retry
  kDeadlineExceeded,    // took too long; retry
  kResourceExhausted,   // a size or count limit was hit
  kDataLoss,            // corrupt or truncated data
  kAborted,             // interrupted (shutdown, conflict); may retry
  kInternal,            // a bug or an unexpected library failure
};

std::string_view StatusCodeName(StatusCode code);
// The code StatusCodeName gives `name`; kInternal for any other name.
StatusCode StatusCodeFromName(std::string_view name);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "UNAVAILABLE: connect to 127.0.0.1:2222 refused"
  std::string ToString() const;

  // True for errors worth retrying (kUnavailable, kDeadlineExceeded,
  // kAborted, kResourceExhausted is not).
  bool IsTransient() const;

  // Marks a failure that is deliberately dropped (a best-effort cleanup).
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFoundError(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status AlreadyExistsError(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
inline Status FailedPreconditionError(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status PermissionDeniedError(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status UnauthenticatedError(std::string m) {
  return {StatusCode::kUnauthenticated, std::move(m)};
}
inline Status UnavailableError(std::string m) {
  return {StatusCode::kUnavailable, std::move(m)};
}
inline Status DeadlineExceededError(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status ResourceExhaustedError(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status DataLossError(std::string m) {
  return {StatusCode::kDataLoss, std::move(m)};
}
inline Status AbortedError(std::string m) {
  return {StatusCode::kAborted, std::move(m)};
}
inline Status InternalError(std::string m) {
  return {StatusCode::kInternal, std::move(m)};
}

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const T& value) : value_(value) {}        // NOLINT: implicit
  StatusOr(T&& value) : value_(std::move(value)) {}  // NOLINT: implicit
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit
    assert(!status_.ok() && "StatusOr built from an OK status");
    if (status_.ok()) status_ = InternalError("StatusOr built from OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace cbpipe

#define CBPIPE_STATUS_CONCAT_INNER(a, b) a##b
#define CBPIPE_STATUS_CONCAT(a, b) CBPIPE_STATUS_CONCAT_INNER(a, b)

#define CBPIPE_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::cbpipe::Status cbpipe_status_ = (expr);        \
    if (!cbpipe_status_.ok()) return cbpipe_status_; \
  } while (0)

#define CBPIPE_ASSIGN_OR_RETURN(lhs, expr)                                \
  CBPIPE_ASSIGN_OR_RETURN_IMPL(CBPIPE_STATUS_CONCAT(cbpipe_or_, __LINE__), \
                               lhs, expr)
#define CBPIPE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
