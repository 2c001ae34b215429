#include "workflow/input_scan.h"

namespace cbpipe {

void ScanInput(const std::string& path, const Config& config,
               int64_t now_epoch_seconds, size_t keep_errors,
               const AcceptFn& accept, const RejectFn& reject,
               InputScan* scan) {
  StatusOr<std::unique_ptr<RecordReader>> opened =
      OpenReader(path, config.format, config.mapping, config.reader_limits);
  if (!opened.ok()) {
    scan->input_error = opened.status();
    return;
  }
  RecordReader& reader = **opened;
  scan->format_name = std::string(InputFormatName(reader.format()));

  ValidatorOptions options;
  options.pan_policy = config.pan_policy;
  options.extra_date_formats = config.date_formats;
  options.now_epoch_seconds = now_epoch_seconds;
  Validator validator(std::move(options));

  RawRecord raw;
  Record record;
  std::vector<RecordError> errors;
  while (true) {
    StatusOr<bool> more = reader.Next(&raw);
    if (!more.ok()) {
      scan->input_error = more.status();
      scan->error_position = reader.bytes_read();
      break;
    }
    if (!*more) break;
    ++scan->records;
    errors.clear();
    if (validator.Validate(raw, &record, &errors)) {
      Status st = accept(record, &errors);
      if (!st.ok()) {
        scan->input_error = st;
        scan->error_position = reader.bytes_read();
        break;
      }
    }
    if (errors.empty()) {
      ++scan->accepted;
      ++scan->by_network[static_cast<int>(record.network)];
      continue;
    }
    ++scan->rejected;
    for (RecordError& e : errors) {
      if (reject) {
        Status st = reject(e);
        if (!st.ok()) {
          scan->input_error = st;
          scan->error_position = reader.bytes_read();
          return;
        }
      }
      if (scan->errors.size() < keep_errors) {
        scan->errors.push_back(std::move(e));
      } else {
        ++scan->errors_truncated;
      }
    }
  }
  scan->bytes_read = reader.bytes_read();
}

}  // namespace cbpipe
