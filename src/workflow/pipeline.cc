#include "workflow/pipeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "common/crash_point.h"
#include "common/file_mode.h"
#include "common/sha256.h"
#include "deliver/local_transport.h"
#include "domain/pan.h"
#include "output/manifest.h"
#include "output/row_formatter.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

// Writes rejects.csv as errors arrive (streaming: nothing is kept).
class RejectsWriter {
 public:
  // Rejected records are record data: the file gets the batches' mode,
  // also when an earlier run left it with a wider one.
  Status Open(const std::string& path) {
    path_ = path;
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
               kRecordFileMode);
    if (fd < 0 || !RestrictRecordFile(fd, path).ok() ||
        (file_ = ::fdopen(fd, "wb")) == nullptr) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      return InternalError("cannot write " + path + ": " + std::strerror(err));
    }
    return Write("position,case_id,field,code,message\r\n");
  }
  ~RejectsWriter() {
    if (file_) std::fclose(file_);
  }
  Status Add(const RecordError& e) {
    row_.clear();
    AppendCsvCell(std::to_string(e.position), ',', false, &row_);
    row_.push_back(',');
    AppendCsvCell(e.case_id, ',', true, &row_);
    row_.push_back(',');
    AppendCsvCell(e.field, ',', false, &row_);
    row_.push_back(',');
    AppendCsvCell(ErrorCodeName(e.code), ',', false, &row_);
    row_.push_back(',');
    AppendCsvCell(e.message, ',', false, &row_);
    row_ += "\r\n";
    return Write(row_);
  }
  Status Close() {
    if (!file_) return OkStatus();
    const bool flush_failed =
        std::fflush(file_) != 0 || ::fsync(fileno(file_)) != 0;
    const bool close_failed = std::fclose(file_) != 0;
    file_ = nullptr;
    if (flush_failed || close_failed)
      return InternalError("cannot write " + path_);
    DurablePoint("rejects.fsync");
    return OkStatus();
  }

 private:
  Status Write(std::string_view bytes) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
      return InternalError("cannot write " + path_ + ": " +
                           std::strerror(errno));
    return OkStatus();
  }
  std::string path_;
  std::string row_;
  std::FILE* file_ = nullptr;
};

Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return InternalError("cannot create " + dir + ": " + ec.message());
  return OkStatus();
}

// The name an input is staged under until its id is known: the same for
// every run of the same path, so that a run clears what an interrupted
// earlier one left (FNV-1a of the absolute path).
std::string PendingId(const std::string& input_path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(input_path, ec);
  const std::string path =
      ec ? input_path : absolute.lexically_normal().string();
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : path) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "pending-";
  for (int shift = 60; shift >= 0; shift -= 4)
    id.push_back(kHex[(hash >> shift) & 15]);
  return id;
}

// A run that died mid-scan (killed, power cut) leaves its pending folders
// behind; a later run of the same path clears them, but another path never
// would. Folders untouched for a day are such leftovers (a scan keeps
// writing to them), so each run removes them once, at its start, best
// effort.
constexpr auto kAbandonedAfter = std::chrono::hours(24);

}  // namespace

std::string ObjectLocation(const ObjectStore& store, const std::string& key) {
  const std::optional<std::string> root = store.LocalRoot();
  if (root) return (fs::path(*root) / key).string();
  return store.Describe() + "/" + key;
}

StatusOr<Batch> ReadBatchManifest(ObjectStore& work, const std::string& key) {
  if (work.LocalRoot()) return ReadManifest(ObjectLocation(work, key));
  const std::string where = ObjectLocation(work, key);
  StatusOr<std::string> text = GetObjectBytes(work, key);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound)
      return NotFoundError("no manifest at " + where);
    return text.status();
  }
  const size_t slash = where.rfind('/');
  StatusOr<Batch> batch = ParseManifest(*text, where.substr(0, slash));
  if (!batch.ok())
    return Status(batch.status().code(),
                  where + ": " + batch.status().message());
  return batch;
}

ScratchFolder::ScratchFolder(const std::string& work_dir,
                             const std::string& name)
    : dir_((fs::path(work_dir) / "staging" / ("pending-store-" + name))
               .string()) {
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (!ec) fs::create_directories(dir_, ec);
  if (!ec) fs::permissions(dir_, fs::perms::owner_all, ec);
  if (ec)
    status_ = UnavailableError("cannot make " + dir_ + ": " + ec.message());
}

ScratchFolder::~ScratchFolder() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void RemoveAbandonedPending(const std::string& work_dir) {
  const auto cutoff = fs::file_time_type::clock::now() - kAbandonedAfter;
  for (const char* area : {"runs", "staging"}) {
    std::error_code ec;
    fs::directory_iterator it(fs::path(work_dir) / area, ec);
    if (ec) continue;
    for (const fs::directory_entry& entry : it) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("pending-", 0) != 0 || !entry.is_directory(ec)) continue;
      const fs::file_time_type touched = entry.last_write_time(ec);
      if (ec || touched > cutoff) continue;
      // Any file written lately means a scan is still at it.
      bool recent = false;
      for (const fs::directory_entry& file :
           fs::directory_iterator(entry.path(), ec)) {
        const fs::file_time_type t = file.last_write_time(ec);
        if (ec || t > cutoff) recent = true;
      }
      if (!recent) fs::remove_all(entry.path(), ec);
    }
  }
}

namespace {

// SHA-256 of the input's bytes as the reader sees them; complete once the
// reader has seen the end (n == 0).
struct InputHasher {
  Sha256 sha;
  bool complete = false;
  void Add(const char* data, size_t n) {
    if (n == 0) complete = true;
    sha.Update(data, n);
  }
};

}  // namespace

std::string QuarantineInput(const std::string& work_dir,
                            const std::string& input,
                            const std::string& input_id, const Status& reason,
                            const std::string& shown) {
  const std::string dir = work_dir + "/quarantine/" + input_id;
  if (!MakeDirs(dir).ok()) return "";
  std::error_code ec;
  // The copy keeps the bytes; its name, like every name, is masked.
  if (input != "-") {
    const std::string copy =
        dir + "/" + MaskCardNumbers(fs::path(input).filename().string());
    fs::copy_file(input, copy, fs::copy_options::overwrite_existing, ec);
    fs::permissions(copy, static_cast<fs::perms>(kRecordFileMode), ec);
  }
  std::ofstream(dir + "/reason.txt")
      << "input: " << MaskCardNumbers(shown.empty() ? input : shown) << "\n"
      << reason.ToString() << "\n";
  return dir;
}

Status ScanAndPlan(const Config& config, const std::string& input_path,
                   const std::string& rejects_path, BatchPlanner* planner,
                   int64_t now_epoch_seconds, InputScan* scan,
                   RawBytesObserver observe) {
  RejectsWriter rejects;
  if (!rejects_path.empty()) {
    CBPIPE_RETURN_IF_ERROR(
        MakeDirs(fs::path(rejects_path).parent_path().string()));
    CBPIPE_RETURN_IF_ERROR(rejects.Open(rejects_path));
  }
  // A valid record that still cannot go out becomes a reject of its own.
  auto reject_record = [](const Record& record, ErrorCode code,
                          std::string field, std::string message,
                          std::vector<RecordError>* errors) {
    RecordError& e = errors->emplace_back();
    e.position = record.position;
    e.case_id = record.case_id;
    e.field = std::move(field);
    e.code = code;
    e.message = std::move(message);
    return OkStatus();
  };
  auto no_destination = [&](const Record& record,
                            std::vector<RecordError>* errors) {
    return reject_record(record, ErrorCode::kNoDestination, "network",
                         "no destination receives " +
                             std::string(NetworkName(record.network)) +
                             " records",
                         errors);
  };
  auto accept = [&](const Record& record,
                    std::vector<RecordError>* errors) -> Status {
    if (!planner) {
      // Without a planner, routing is still checked: a network without a
      // destination is a reject in every pass.
      if (config.DestinationFor(record.network)) return OkStatus();
      return no_destination(record, errors);
    }
    CrashPoint("generate.record");
    StatusOr<bool> added = planner->Add(record);
    if (added.ok()) {
      return *added ? OkStatus() : no_destination(record, errors);
    }
    if (added.status().code() == StatusCode::kResourceExhausted) {
      return reject_record(record, ErrorCode::kRecordTooLarge, "record",
                           added.status().message(), errors);
    }
    return added.status();
  };
  RejectFn reject;
  if (!rejects_path.empty()) {
    reject = [&](const RecordError& e) { return rejects.Add(e); };
  }
  ScanInput(input_path, config, now_epoch_seconds, config.max_errors_reported,
            accept, reject, scan, std::move(observe));
  CBPIPE_RETURN_IF_ERROR(rejects.Close());
  return scan->input_error;
}

void TransportPool::MoveStale(std::chrono::seconds max_idle,
                              std::vector<Idle>* stale) {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (now - it->since >= max_idle) {
      stale->push_back(std::move(*it));
      it = idle_.erase(it);
    } else {
      ++it;
    }
  }
}

StatusOr<std::unique_ptr<Transport>> TransportPool::Take(
    const DestinationConfig& destination, SecretStore* secrets) {
  std::vector<Idle> stale;  // closed outside the lock: a goodbye may wait
  std::unique_ptr<Transport> found;
  {
    std::lock_guard lock(mu_);
    MoveStale(max_idle_, &stale);
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->destination == destination.name) {
        found = std::move(it->transport);
        idle_.erase(it);
        break;
      }
    }
  }
  if (found) return found;
  return make_ ? make_(destination) : MakeTransport(destination, secrets);
}

void TransportPool::Give(const std::string& destination,
                         std::unique_ptr<Transport> transport, bool healthy) {
  if (!healthy || !transport) return;  // closed here, outside the lock
  std::lock_guard lock(mu_);
  idle_.push_back(
      {destination, std::move(transport), std::chrono::steady_clock::now()});
}

void TransportPool::CloseIdle(std::chrono::seconds max_idle) {
  std::vector<Idle> stale;  // destroyed after the lock is released
  std::lock_guard lock(mu_);
  MoveStale(max_idle, &stale);
}

size_t TransportPool::idle_count() {
  std::lock_guard lock(mu_);
  return idle_.size();
}

Status ScanNamedByContent(const Config& config, const std::string& input_path,
                          int64_t now_epoch_seconds, InputScan* scan,
                          std::string* input_id, std::string* rejects_file,
                          std::vector<Batch>* batches) {
  // The input id (from the input's SHA-256) only names the rejects file and
  // the batches, so the input is hashed as it is read, on the reading
  // thread; until then the planner stages and the rejects are written under
  // a name made from the path. A scan that stopped early has not seen the
  // whole file: it is then hashed on its own.
  InputHasher hasher;
  const std::string pending_id = PendingId(input_path);
  const std::string pending_dir = config.work_dir + "/runs/" + pending_id;
  const std::string pending_rejects = pending_dir + "/rejects.csv";
  BatchPlanner planner(OutputOptionsOf(config),
                       {.input_id = "", .work_dir = config.work_dir},
                       pending_id);
  Status st = planner.status();
  if (st.ok()) {
    st = ScanAndPlan(
        config, input_path, pending_rejects, &planner, now_epoch_seconds, scan,
        [&hasher](const char* data, size_t n) { hasher.Add(data, n); });
  }
  StatusOr<std::string> hashed =
      hasher.complete ? hasher.sha.FinishHex() : Sha256File(input_path);
  if (!hashed.ok()) hashed = MaskCardNumbersInStatus(hashed.status());
  std::error_code ec;
  if (!hashed.ok()) {
    // As if nothing had been read: an input that cannot be hashed has no id
    // to file its rejects or batches under.
    fs::remove_all(pending_dir, ec);
    fs::remove_all(config.work_dir + "/staging/" + pending_id, ec);
    *scan = InputScan();
    scan->input_error = hashed.status();
    return hashed.status();
  }
  *input_id = hashed->substr(0, 16);
  *rejects_file = config.work_dir + "/runs/" + *input_id + "/rejects.csv";
  if (fs::exists(pending_rejects, ec)) {
    Status moved = MakeDirs(fs::path(*rejects_file).parent_path().string());
    if (moved.ok() &&
        ::rename(pending_rejects.c_str(), rejects_file->c_str()) != 0) {
      moved = InternalError("cannot move " + pending_rejects + " to " +
                            *rejects_file + ": " + std::strerror(errno));
    }
    if (moved.ok()) DurablePoint("rejects.rename");
    fs::remove(pending_dir, ec);
    if (st.ok()) st = moved;
  }
  if (st.ok()) st = planner.SetInputId(*input_id);
  if (st.ok()) {
    StatusOr<std::vector<Batch>> finished = planner.Finish();
    if (finished.ok()) {
      *batches = *std::move(finished);
    } else {
      st = finished.status();
    }
  }
  if (!st.ok()) {
    // Nothing of a failed input is delivered: its staged files go too.
    fs::remove_all(config.work_dir + "/staging/" + pending_id, ec);
    batches->clear();
  }
  return st;
}

}  // namespace cbpipe
