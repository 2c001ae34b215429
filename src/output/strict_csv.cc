#include "output/strict_csv.h"

namespace cbpipe {

StrictCsvParser::StrictCsvParser(char delimiter, std::string_view line_ending,
                                 size_t max_row_bytes)
    : delimiter_(delimiter),
      crlf_(line_ending == "\r\n"),
      max_row_bytes_(max_row_bytes) {
  cells_.emplace_back();
}

Status StrictCsvParser::Error(std::string_view what) const {
  return DataLossError("row " + std::to_string(rows_ + 1) + " (byte " +
                       std::to_string(offset_) + "): " + std::string(what));
}

void StrictCsvParser::EndCell() {
  ++cell_count_;
  if (cells_.size() <= cell_count_) cells_.emplace_back();
  cells_[cell_count_].clear();
}

Status StrictCsvParser::EndRow(const RowCallback& on_row) {
  EndCell();
  ++rows_;
  Status status =
      on_row(rows_, std::span<const std::string>(cells_.data(), cell_count_));
  cell_count_ = 0;
  cells_[0].clear();
  row_open_ = false;
  row_bytes_ = 0;
  state_ = State::kCellStart;
  return status;
}

Status StrictCsvParser::Feed(std::string_view bytes,
                             const RowCallback& on_row) {
  for (size_t i = 0; i < bytes.size(); ++i, ++offset_) {
    const char c = bytes[i];
    row_open_ = true;
    if (++row_bytes_ > max_row_bytes_) {
      return Error("row longer than " + std::to_string(max_row_bytes_) +
                   " bytes");
    }
    std::string& cell = cells_[cell_count_];
    switch (state_) {
      case State::kAfterCr:
        if (c != '\n') return Error("CR not followed by LF");
        CBPIPE_RETURN_IF_ERROR(EndRow(on_row));
        continue;
      case State::kQuoted:
        if (c == '"') {
          state_ = State::kQuoteInQuoted;
        } else {
          cell.push_back(c);
        }
        continue;
      case State::kQuoteInQuoted:
        if (c == '"') {
          cell.push_back('"');
          state_ = State::kQuoted;
          continue;
        }
        if (c != delimiter_ && c != '\r' && c != '\n') {
          return Error("character after a closing quote");
        }
        break;  // delimiter or line ending: handled below
      case State::kCellStart:
        if (c == '"') {
          state_ = State::kQuoted;
          continue;
        }
        break;
      case State::kUnquoted:
        if (c == '"') return Error("quote inside an unquoted cell");
        break;
    }
    // Outside quotes.
    if (c == delimiter_) {
      EndCell();
      state_ = State::kCellStart;
    } else if (c == '\r') {
      if (!crlf_) return Error("CR outside quotes (line ending is LF)");
      state_ = State::kAfterCr;
    } else if (c == '\n') {
      if (crlf_) return Error("LF without CR (line ending is CRLF)");
      CBPIPE_RETURN_IF_ERROR(EndRow(on_row));
    } else {
      cell.push_back(c);
      state_ = State::kUnquoted;
    }
  }
  return OkStatus();
}

Status StrictCsvParser::Finish() const {
  if (state_ == State::kQuoted) return Error("quote not closed at end of file");
  if (row_open_) return Error("last row has no line ending");
  return OkStatus();
}

}  // namespace cbpipe
