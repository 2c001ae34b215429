// Writes one destination's CSV file: header, rows, optional trailer, while
// hashing (SHA-256), counting and totalling exactly the bytes written.
//
//   auto writer = FileWriter::Create("/work/staging/in1/visa.001.part",
//                                    layout);
//   if (!writer.ok()) return writer.status();
//   CBPIPE_RETURN_IF_ERROR((*writer)->Append(record));
//   CBPIPE_ASSIGN_OR_RETURN(FileStats stats, (*writer)->Close());
//
// Writes go through a 256 KiB buffer with write(2); Close() writes the
// trailer, flushes and fsyncs, so a closed file is durable. Memory stays flat
// however many records are written. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/sha256.h"
#include "common/status.h"
#include "common/writeback.h"
#include "domain/record.h"
#include "output/layout.h"
#include "output/row_formatter.h"

// OpenSSL's hash context, kept out of this header.

namespace cbpipe {

struct FileStats {
  uint64_t records = 0;
  uint64_t bytes = 0;
  std::string sha256;                     // lower-case hex of the file
  std::map<std::string, int64_t> totals;  // currency -> minor units
};

class FileWriter {
 public:
  // Creates (or truncates) `path`, mode 0640, and buffers the header row.
  // `layout` must have passed ValidateLayout.
  static StatusOr<std::unique_ptr<FileWriter>> Create(std::string path,
                                                      const Layout& layout);
  ~FileWriter();  // closes without the trailer or fsync if Close() was not
                  // called: an abandoned file is incomplete by design
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  // Formats and appends `record`. kResourceExhausted (nothing written) when
  // a currency total would overflow int64; I/O errors otherwise.
  Status Append(const Record& record);
  // Appends a row already formatted for this layout by a RowFormatter
  // (AppendRecord) for `record`, which supplies the count and totals.
  Status AppendRow(std::string_view row, const Record& record);

  // The file's final size if a row of `row_bytes` for `record` were
  // appended and the file then closed (trailer with the new count and
  // totals included). nullopt when the record's amount would overflow its
  // currency's total.
  std::optional<uint64_t> SizeWith(size_t row_bytes, const Record& record);
  // SizeWith(row_bytes, record) <= max_bytes, usually without formatting
  // the trailer: while the file is far from the limit, a bound on how much
  // one record can grow the trailer is enough to decide.
  bool Fits(size_t row_bytes, const Record& record, uint64_t max_bytes);

  // Writes the trailer (when the layout has one), flushes, fsyncs and closes.
  // Call once; the writer is unusable afterwards.
  StatusOr<FileStats> Close();

  const std::string& path() const { return path_; }
  uint64_t records() const { return records_; }
  // Bytes of header and rows so far (written or buffered), no trailer.
  uint64_t bytes() const { return bytes_; }
  const CurrencyTotals& totals() const { return totals_; }
  RowFormatter& formatter() { return formatter_; }

 private:
  FileWriter(std::string path, int fd, const Layout& layout);
  Status Write(std::string_view bytes);
  Status Flush();

  std::string path_;
  int fd_ = -1;
  RowFormatter formatter_;
  Sha256 sha_;
  std::string buffer_;
  std::string row_;      // reused by Append
  std::string trailer_;  // reused by SizeWith
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
  WritebackPacer writeback_;  // the fsync in Close waits for the tail alone
  // At least the size of the trailer the file would end with now: exact
  // after a SizeWith, then raised by the bound per record appended.
  uint64_t trailer_bound_ = 0;
  // Exact trailer size with the record last measured by SizeWith.
  uint64_t measured_trailer_ = 0;
  const Record* measured_record_ = nullptr;
  CurrencyTotals totals_;
  bool closed_ = false;
};

}  // namespace cbpipe
