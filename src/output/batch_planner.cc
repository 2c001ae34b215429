#include "output/batch_planner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "common/crash_point.h"
#include "output/manifest.h"
#include "output/row_formatter.h"

namespace cbpipe {
namespace fs = std::filesystem;

namespace {

std::string Pad3(int value) {
  std::string digits = std::to_string(value);
  if (digits.size() < 3) digits.insert(0, 3 - digits.size(), '0');
  return digits;
}

Status FsError(const std::error_code& ec, const std::string& what,
               const std::string& path) {
  std::string message = what + " " + path + ": " + ec.message();
  if (ec == std::errc::no_space_on_device) {
    return ResourceExhaustedError(message);
  }
  if (ec == std::errc::permission_denied ||
      ec == std::errc::operation_not_permitted ||
      ec == std::errc::read_only_file_system) {
    return PermissionDeniedError(message);
  }
  return UnavailableError(message);
}

Status ErrnoError(const std::string& what, const std::string& path) {
  return FsError(std::error_code(errno, std::generic_category()), what, path);
}

// A directory's entries (renames, new files) are durable only once the
// directory itself is fsynced.
Status SyncDirectory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open directory", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("cannot fsync directory", path);
  DurablePoint("planner.fsync_dir");
  return OkStatus();
}

// Something that can be one component of a path and nothing more.
bool IsPlainName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

bool IsSafeId(std::string_view id) {
  if (id.empty() || id.size() > 200 || id == "." || id == "..") return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

bool DateBefore(const DateTime& a, const DateTime& b) {
  if (a.year != b.year) return a.year < b.year;
  if (a.month != b.month) return a.month < b.month;
  return a.day < b.day;
}

// Puts `fresh` at `final_dir`, replacing whatever is there as one step where
// the kernel can (RENAME_EXCHANGE), so a reader of the batch folder sees the
// old or the new contents, never a mix. Both hold the same bytes when the
// same input is processed again.
Status ReplaceDirectory(const std::string& fresh, const std::string& final_dir,
                        const std::string& old_dir) {
  std::error_code ec;
  if (!fs::exists(final_dir, ec)) {
    if (::rename(fresh.c_str(), final_dir.c_str()) != 0) {
      return ErrnoError("cannot rename " + fresh + " to", final_dir);
    }
    DurablePoint("planner.rename_batch");
    return OkStatus();
  }
  if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, final_dir.c_str(),
                  RENAME_EXCHANGE) == 0) {
    DurablePoint("planner.rename_batch");
    fs::remove_all(fresh, ec);  // now the old contents
    if (ec) return FsError(ec, "cannot remove", fresh);
    return OkStatus();
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    return ErrnoError("cannot exchange " + fresh + " with", final_dir);
  }
  // File systems without RENAME_EXCHANGE: move the old folder aside first.
  fs::remove_all(old_dir, ec);
  if (ec) return FsError(ec, "cannot remove", old_dir);
  if (::rename(final_dir.c_str(), old_dir.c_str()) != 0) {
    return ErrnoError("cannot move aside", final_dir);
  }
  if (::rename(fresh.c_str(), final_dir.c_str()) != 0) {
    return ErrnoError("cannot rename " + fresh + " to", final_dir);
  }
  fs::remove_all(old_dir, ec);
  if (ec) return FsError(ec, "cannot remove", old_dir);
  return OkStatus();
}

}  // namespace

StatusOr<std::string> ExpandFileNameTemplate(std::string_view name_template,
                                             const NameTokens& tokens) {
  std::string out;
  for (size_t i = 0; i < name_template.size(); ++i) {
    const char c = name_template[i];
    if (c == '}') {
      return InvalidArgumentError("file-name template \"" +
                                  std::string(name_template) +
                                  "\": '}' without '{'");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    const size_t close = name_template.find('}', i);
    if (close == std::string_view::npos) {
      return InvalidArgumentError("file-name template \"" +
                                  std::string(name_template) +
                                  "\": '{' without '}'");
    }
    const std::string_view token = name_template.substr(i + 1, close - i - 1);
    if (token == "network") {
      out += tokens.network;
    } else if (token == "destination") {
      out += tokens.destination;
    } else if (token == "date") {
      out += tokens.date;
    } else if (token == "input_id") {
      out += tokens.input_id;
    } else if (token == "batch") {
      out += Pad3(tokens.batch);
    } else if (token == "file") {
      out += Pad3(tokens.file);
    } else {
      return InvalidArgumentError(
          "file-name template \"" + std::string(name_template) +
          "\": unknown token {" + std::string(token) +
          "} (known: {network} {destination} {date} {input_id} {batch} "
          "{file})");
    }
    i = close;
  }
  if (!IsPlainName(out) || out == kManifestFileName) {
    return InvalidArgumentError("file-name template \"" +
                                std::string(name_template) + "\" gives \"" +
                                out + "\", which is not a usable file name");
  }
  return out;
}

struct BatchPlanner::Destination {
  struct StagedFile {
    int file_seq = 0;
    std::string staged_path;
    FileStats stats;
  };

  int index = 0;  // in the config
  std::string name;
  Network network = Network::kVisa;
  // What {network} gives: the network's name, or the destination's name
  // when it receives several (its files hold records of all of them).
  std::string network_token;
  std::string name_template;
  Layout layout;
  std::unique_ptr<RowFormatter> formatter;  // for sizes before any file
  std::string trailer;                      // reused for size checks
  std::unique_ptr<FileWriter> current;
  int file_seq = 0;  // of `current`, or of the last closed file
  std::vector<StagedFile> closed;
};

BatchPlanner::BatchPlanner(const OutputOptions& options, PlanContext ctx,
                           std::string staging_id)
    : limits_(options.limits),
      ctx_(std::move(ctx)),
      staging_id_(std::move(staging_id)) {
  route_.fill(-1);
  auto fail = [this](Status status) {
    if (init_status_.ok()) init_status_ = std::move(status);
  };
  if (staging_id_.empty()) staging_id_ = ctx_.input_id;
  if (!IsSafeId(staging_id_) ||
      (!ctx_.input_id.empty() && !IsSafeId(ctx_.input_id))) {
    fail(InvalidArgumentError(
        "input id \"" + (ctx_.input_id.empty() ? staging_id_ : ctx_.input_id) +
        "\" must be 1-200 of [A-Za-z0-9._-]"));
  }
  if (ctx_.work_dir.empty()) fail(InvalidArgumentError("work_dir is empty"));
  if (limits_.max_files_per_batch < 1) {
    fail(InvalidArgumentError("limits.max_files_per_batch must be >= 1"));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < options.routes.size(); ++i) {
    const OutputRoute& dc = options.routes[i];
    if (!IsPlainName(dc.name) || !names.insert(dc.name).second) {
      fail(InvalidArgumentError("destination \"" + dc.name +
                                "\": name empty, duplicated or not a plain "
                                "file name"));
      continue;
    }
    if (dc.networks.empty()) continue;  // receives nothing
    auto layout = LayoutForDestination(options, dc);
    if (!layout.ok()) {
      fail(layout.status());
      continue;
    }
    if (Status valid = ValidateLayout(*layout); !valid.ok()) {
      fail(Status(valid.code(),
                  "destination \"" + dc.name + "\": " + valid.message()));
      continue;
    }
    NameTokens probe{.network = "visa",
                     .destination = dc.name,
                     .date = "20250101",
                     .input_id = "x"};
    if (auto name = ExpandFileNameTemplate(dc.file_name_template, probe);
        !name.ok()) {
      fail(Status(name.status().code(), "destination \"" + dc.name +
                                            "\": " + name.status().message()));
      continue;
    }
    auto d = std::make_unique<Destination>();
    d->index = static_cast<int>(i);
    d->name = dc.name;
    d->network = dc.networks.front();
    d->network_token = dc.networks.size() == 1
                           ? std::string(NetworkName(dc.networks.front()))
                           : dc.name;
    d->name_template = dc.file_name_template;
    d->layout = *std::move(layout);
    d->formatter = std::make_unique<RowFormatter>(d->layout);
    const int slot = static_cast<int>(destinations_.size());
    for (Network n : dc.networks) {
      int& route = route_[static_cast<int>(n)];
      if (route < 0) route = slot;  // the first destination listed wins
    }
    destinations_.push_back(std::move(d));
  }
  staging_dir_ = (fs::path(ctx_.work_dir) / "staging" / staging_id_).string();
}

BatchPlanner::~BatchPlanner() = default;

Status BatchPlanner::SetInputId(std::string input_id) {
  if (!ctx_.input_id.empty()) {
    return FailedPreconditionError("the input id is already set");
  }
  if (!IsSafeId(input_id)) {
    return InvalidArgumentError("input id \"" + input_id +
                                "\" must be 1-200 of [A-Za-z0-9._-]");
  }
  ctx_.input_id = std::move(input_id);
  return OkStatus();
}

Status BatchPlanner::PrepareStaging() {
  // Files left by an interrupted earlier run of this input are never reused:
  // the run starts again from its first record.
  std::error_code ec;
  fs::remove_all(staging_dir_, ec);
  if (ec) return FsError(ec, "cannot clear", staging_dir_);
  fs::create_directories(staging_dir_, ec);
  if (ec) return FsError(ec, "cannot create", staging_dir_);
  staging_ready_ = true;
  return OkStatus();
}

Status BatchPlanner::OpenNextFile(Destination& d) {
  if (!staging_ready_) CBPIPE_RETURN_IF_ERROR(PrepareStaging());
  const int seq = d.file_seq + 1;
  std::string path = staging_dir_ + "/" + d.name + "." + Pad3(seq) + ".part";
  CBPIPE_ASSIGN_OR_RETURN(d.current, FileWriter::Create(path, d.layout));
  d.file_seq = seq;
  return OkStatus();
}

Status BatchPlanner::CloseCurrent(Destination& d) {
  std::unique_ptr<FileWriter> writer = std::move(d.current);
  CBPIPE_ASSIGN_OR_RETURN(FileStats stats, writer->Close());
  d.closed.push_back({d.file_seq, writer->path(), std::move(stats)});
  return OkStatus();
}

StatusOr<bool> BatchPlanner::Add(const Record& record) {
  if (!init_status_.ok()) return init_status_;
  if (finished_) return FailedPreconditionError("Add after Finish");
  // Every valid record of the input counts for {date}, routed or not, so
  // that the name depends on the input alone.
  if (!latest_chargeback_ ||
      DateBefore(*latest_chargeback_, record.chargeback_date)) {
    latest_chargeback_ = record.chargeback_date;
  }
  const int slot = route_[static_cast<int>(record.network)];
  if (slot < 0) return false;
  return AddTo(*destinations_[slot], record);
}

StatusOr<bool> BatchPlanner::AddTo(Destination& d, const Record& record) {
  const uint64_t max_bytes = limits_.max_file_bytes;  // 0: no limit
  // row_ is only storage: FormatRecord leaves it sized for the longest row
  // so far, which spares a zero-fill per record.
  const std::string_view row = d.formatter->FormatRecord(record, &row_);

  if (max_bytes > 0) {
    // The smallest file this record can be in: header, its row, trailer.
    uint64_t alone = d.formatter->header_size() + row.size();
    const bool has_trailer = d.layout.trailer == TrailerKind::kCountAndTotal;
    // The exact trailer is only worth formatting when the bound says the
    // record might not fit.
    if (has_trailer &&
        alone + d.formatter->SingleRecordTrailerBound(record) > max_bytes) {
      d.trailer.clear();
      d.formatter->AppendTrailer(0, CurrencyTotals(), &record, &d.trailer);
      alone += d.trailer.size();
    }
    if (alone > max_bytes) {
      return ResourceExhaustedError(
          "record at position " + std::to_string(record.position) + " (case " +
          record.case_id + ") needs " + std::to_string(alone) +
          " bytes in a file of its own for destination \"" + d.name +
          "\", over max_file_bytes " + std::to_string(max_bytes));
    }
  }

  if (d.current != nullptr) {
    bool fits = limits_.max_records_per_file == 0 ||
                d.current->records() < limits_.max_records_per_file;
    if (fits) {
      // A currency total that would overflow int64 is a limit like any
      // other: the record starts a new file.
      fits = d.current->Fits(row.size(), record,
                             max_bytes == 0 ? UINT64_MAX : max_bytes);
    }
    if (!fits) CBPIPE_RETURN_IF_ERROR(CloseCurrent(d));
  }
  if (d.current == nullptr) CBPIPE_RETURN_IF_ERROR(OpenNextFile(d));
  CBPIPE_RETURN_IF_ERROR(d.current->AppendRow(row, record));
  return true;
}

StatusOr<std::vector<Batch>> BatchPlanner::Finish() {
  if (!init_status_.ok()) return init_status_;
  if (finished_) return FailedPreconditionError("Finish called twice");
  if (ctx_.input_id.empty()) {
    return FailedPreconditionError("Finish before SetInputId");
  }
  finished_ = true;

  struct Entry {
    int file_seq;
    size_t slot;
    const Destination::StagedFile* file;
  };
  std::vector<Entry> entries;
  for (size_t slot = 0; slot < destinations_.size(); ++slot) {
    Destination& d = *destinations_[slot];
    if (d.current != nullptr) CBPIPE_RETURN_IF_ERROR(CloseCurrent(d));
    for (const auto& file : d.closed) {
      entries.push_back({file.file_seq, slot, &file});
    }
  }
  // Each destination's first file first, in config order, then the second
  // files, ...: with one destination per network and the default limit of
  // 4, batch 1 holds every network's first file.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.file_seq != b.file_seq ? a.file_seq < b.file_seq : a.slot < b.slot;
  });

  std::vector<Batch> batches;
  std::error_code ec;
  if (!entries.empty()) {
    const std::string date =
        FormatDateTime(*latest_chargeback_, "%Y%m%d");  // set with any file
    const std::string root = (fs::path(ctx_.work_dir) / "batches").string();
    fs::create_directories(root, ec);
    if (ec) return FsError(ec, "cannot create", root);

    const size_t per_batch = static_cast<size_t>(limits_.max_files_per_batch);
    for (size_t start = 0; start < entries.size(); start += per_batch) {
      Batch batch;
      batch.seq = static_cast<int>(batches.size()) + 1;
      batch.id = ctx_.input_id + "-b" + Pad3(batch.seq);
      batch.input_id = ctx_.input_id;
      batch.dir = root + "/" + batch.id;
      batch.manifest_path = batch.dir + "/" + std::string(kManifestFileName);
      // Built beside the final folder, then swapped in whole.
      const std::string fresh = root + "/." + batch.id + ".tmp";
      const std::string old = root + "/." + batch.id + ".old";
      fs::remove_all(fresh, ec);
      if (ec) return FsError(ec, "cannot clear", fresh);
      fs::create_directory(fresh, ec);
      if (ec) return FsError(ec, "cannot create", fresh);

      std::set<std::string> names;
      const size_t end = std::min(entries.size(), start + per_batch);
      for (size_t i = start; i < end; ++i) {
        const Destination& d = *destinations_[entries[i].slot];
        const auto& staged = *entries[i].file;
        NameTokens tokens{.network = d.network_token,
                          .destination = d.name,
                          .date = date,
                          .input_id = ctx_.input_id,
                          .batch = batch.seq,
                          .file = staged.file_seq};
        CBPIPE_ASSIGN_OR_RETURN(
            std::string name, ExpandFileNameTemplate(d.name_template, tokens));
        if (!names.insert(name).second) {
          return InvalidArgumentError(
              "destination \"" + d.name + "\": file-name template \"" +
              d.name_template + "\" gives \"" + name + "\" twice in batch " +
              batch.id + "; add {file} or {destination}");
        }
        const std::string target = fresh + "/" + name;
        if (::rename(staged.staged_path.c_str(), target.c_str()) != 0) {
          return ErrnoError("cannot move " + staged.staged_path + " to",
                            target);
        }
        DurablePoint("planner.rename_file");
        FileSummary summary;
        summary.destination = d.name;
        summary.network = d.network;
        summary.name = name;
        summary.path = batch.dir + "/" + name;
        summary.records = staged.stats.records;
        summary.bytes = staged.stats.bytes;
        summary.sha256 = staged.stats.sha256;
        summary.totals = staged.stats.totals;
        summary.batch_seq = batch.seq;
        summary.file_seq = staged.file_seq;
        summary.layout = d.layout.name;
        summary.columns = static_cast<int>(d.layout.columns.size());
        summary.trailer = d.layout.trailer;
        batch.files.push_back(std::move(summary));
      }
      CBPIPE_RETURN_IF_ERROR(
          WriteManifest(batch, fresh + "/" + std::string(kManifestFileName)));
      CBPIPE_RETURN_IF_ERROR(SyncDirectory(fresh));
      CBPIPE_RETURN_IF_ERROR(ReplaceDirectory(fresh, batch.dir, old));
      batches.push_back(std::move(batch));
    }
    CBPIPE_RETURN_IF_ERROR(SyncDirectory(root));
  }
  fs::remove_all(staging_dir_, ec);
  if (ec) return FsError(ec, "cannot remove", staging_dir_);
  return batches;
}

}  // namespace cbpipe
