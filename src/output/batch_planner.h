// Plans and generates one input's files: routes each valid record to its
// network's destination, writes it at once into that destination's current
// file (rolling over into a new file at a limit), then packs the files into
// batches of at most `max_files_per_batch`, each in its own folder with a
// manifest.json.
//
//   BatchPlanner planner(options, {.input_id = "in1", .work_dir = "/w"});
//   for (const Record& record : records) {
//     StatusOr<bool> added = planner.Add(record);
//     if (!added.ok()) {
//       if (added.status().code() == StatusCode::kResourceExhausted)
//         ...reject record as RECORD_TOO_LARGE, go on...
//       else return added.status();  // I/O: the run fails
//     } else if (!*added) ...reject record as NO_DESTINATION...
//   }
//   CBPIPE_ASSIGN_OR_RETURN(std::vector<Batch> batches, planner.Finish());
//
// Layout on disk:
//   <work_dir>/staging/<input_id>/<destination>.<file seq>.part  while writing
//   <work_dir>/batches/<input_id>-b001/<name>, .../manifest.json  after Finish
//
// Deterministic: the same records in the same order with the same config
// give byte-identical files with the same names and batches; no clock is
// read. Memory is flat: one open file (and its 256 KiB buffer) per
// destination. Not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/record.h"
#include "output/file_writer.h"
#include "output/layout.h"
#include "output/options.h"

namespace cbpipe {

struct FileSummary {
  std::string destination;
  Network network = Network::kVisa;  // first network of the destination
                                     // (its files may hold several)
  std::string name;                  // file name in the batch folder
  std::string path;                  // where it is now
  uint64_t records = 0, bytes = 0;
  std::string sha256;                     // lower-case hex
  std::map<std::string, int64_t> totals;  // currency -> minor units
  int batch_seq = 0, file_seq = 0;        // 1-based
  // What the verifier needs to re-read the file.
  std::string layout;  // layout name
  int columns = 0;     // cells on every row
  TrailerKind trailer = TrailerKind::kNone;
};

struct Batch {
  std::string id;  // "<input_id>-b<seq, 3 digits>"
  int seq = 0;     // 1-based
  std::string input_id;
  std::vector<FileSummary> files;
  std::string dir;            // <work_dir>/batches/<id>
  std::string manifest_path;  // <dir>/manifest.json
};

struct PlanContext {
  std::string input_id;  // [A-Za-z0-9._-], not "." or "..": used in paths
  std::string work_dir;  // batches go to work_dir/batches/<batch id>/
};

// Expands a file-name template. Tokens: {network} (the network a
// destination receives; for a destination receiving several, whose files
// mix them, the destination's name), {destination}, {date} (YYYYMMDD: the
// latest chargeback date of
// all the records given to Add, routed or not; never the clock, so a re-run
// gives the same names), {input_id}, {batch} and {file} (1-based,
// zero-padded to at least 3 digits).
// kInvalidArgument for an unknown token, an unclosed brace, or a result that
// is not a plain file name (empty, ".", "..", a '/', a NUL).
struct NameTokens {
  std::string network, destination, date, input_id;
  int batch = 1, file = 1;
};
StatusOr<std::string> ExpandFileNameTemplate(std::string_view name_template,
                                             const NameTokens& tokens);

class BatchPlanner {
 public:
  // Resolves every destination's layout and checks templates, limits and
  // the input id; keeps copies, not references, of what it needs. A problem
  // found here is returned by every Add and Finish call (also available from
  // status()).
  // `staging_id` names the staging folder, work_dir/staging/<staging_id>/
  // (default: the input id). A caller that learns the input id only after
  // the records (it hashes the input while they are read) gives one, leaves
  // ctx.input_id empty and calls SetInputId before Finish. Same rules as
  // the input id.
  BatchPlanner(const OutputOptions& options, PlanContext ctx,
               std::string staging_id = "");
  ~BatchPlanner();
  BatchPlanner(const BatchPlanner&) = delete;
  BatchPlanner& operator=(const BatchPlanner&) = delete;

  Status status() const { return init_status_; }

  // Gives the input id when the context had none (see the constructor); only
  // file and batch names use it, so it may come after the last Add.
  // kInvalidArgument for an unusable id, kFailedPrecondition when the id is
  // already set.
  Status SetInputId(std::string input_id);

  // Routes one valid record to the first destination (in config order)
  // receiving its network and writes its row. Returns false (and writes
  // nothing) when no destination receives the network (the caller reports
  // NO_DESTINATION). kResourceExhausted when this record's row alone, plus
  // header and trailer, exceeds max_file_bytes (the caller rejects it as
  // RECORD_TOO_LARGE; the planner stays usable). Other errors are I/O.
  StatusOr<bool> Add(const Record& record);

  // Closes all files, numbers files and batches, names files from the
  // template, moves them into per-batch folders and writes each batch's
  // manifest.json. A batch folder left by an earlier run of the same input
  // is replaced. No records: no files, no batches. Call once.
  StatusOr<std::vector<Batch>> Finish();

 private:
  struct Destination;

  StatusOr<bool> AddTo(Destination& destination, const Record& record);
  Status OpenNextFile(Destination& destination);
  Status CloseCurrent(Destination& destination);
  Status PrepareStaging();

  Limits limits_;  // copied: the planner does not keep the options
  PlanContext ctx_;
  std::string staging_id_;
  Status init_status_;
  std::vector<std::unique_ptr<Destination>> destinations_;  // config order
  std::array<int, kNetworkCount> route_;  // network -> index, or -1
  std::string staging_dir_;
  bool staging_ready_ = false;
  bool finished_ = false;
  std::optional<DateTime> latest_chargeback_;
  std::string row_;  // reused for every record
};

}  // namespace cbpipe
