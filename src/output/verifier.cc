#include "output/verifier.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "domain/rules.h"
#include "output/file_writer.h"
#include "output/manifest.h"
#include "output/row_formatter.h"
#include "output/strict_csv.h"

namespace cbpipe {
namespace {

constexpr size_t kReadChunk = 256 * 1024;

// A decimal exactly as AppendAmountDecimal writes it: [-]digits[.digits].
// Sets the minor units and the number of decimals; false for anything else
// (including int64 overflow).
bool ParseWrittenDecimalSlow(std::string_view text, int64_t* minor,
                             int* exponent) {
  bool negative = false;
  if (!text.empty() && text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  if (text.empty()) return false;
  int64_t value = 0;
  int decimals = -1;  // -1: no '.' seen
  int digits_before = 0;
  for (char c : text) {
    if (c == '.') {
      if (decimals >= 0 || digits_before == 0) return false;
      decimals = 0;
      continue;
    }
    if (c < '0' || c > '9') return false;
    if (__builtin_mul_overflow(value, 10, &value) ||
        __builtin_add_overflow(value, c - '0', &value)) {
      return false;
    }
    if (decimals >= 0) {
      ++decimals;
    } else {
      ++digits_before;
    }
  }
  if (decimals == 0) return false;  // "12." is not written
  *minor = negative ? -value : value;
  *exponent = decimals < 0 ? 0 : decimals;
  return true;
}

// The same, for every row: up to 18 digits cannot overflow, so the digits
// are summed without checks; longer text takes the checked loop above.
bool ParseWrittenDecimal(std::string_view text, int64_t* minor, int* exponent) {
  const char* p = text.data();
  const char* const end = p + text.size();
  const bool negative = p < end && *p == '-';
  p += negative;
  const char* const digits = p;
  if (end - p == 0 || end - p > 18) {
    return ParseWrittenDecimalSlow(text, minor, exponent);
  }
  // Digits, then optionally '.' and at least one more digit.
  uint64_t value = 0;
  for (; p < end && static_cast<unsigned char>(*p - '0') < 10; ++p) {
    value = value * 10 + static_cast<unsigned>(*p - '0');
  }
  if (p == digits) return false;  // no digit before the '.'
  int decimals = 0;
  if (p < end) {
    if (*p != '.') return false;
    const char* const fraction = ++p;
    for (; p < end && static_cast<unsigned char>(*p - '0') < 10; ++p) {
      value = value * 10 + static_cast<unsigned>(*p - '0');
    }
    // "12." is not written; nor anything after the digits.
    if (p != end || p == fraction) return false;
    decimals = static_cast<int>(p - fraction);
  }
  const int64_t signed_value = static_cast<int64_t>(value);
  *minor = negative ? -signed_value : signed_value;
  *exponent = decimals;
  return true;
}

bool ParseWrittenInteger(std::string_view text, int64_t* value) {
  int exponent = 0;
  return ParseWrittenDecimal(text, value, &exponent) && exponent == 0;
}

std::string TotalsText(const std::map<std::string, int64_t>& totals) {
  std::string out = "{";
  for (const auto& [code, minor] : totals) {
    if (out.size() > 1) out += ", ";
    out += code + ": " + std::to_string(minor);
  }
  return out + "}";
}

// What a file says per currency code: the total of its rows and the number
// of decimals its amounts have. A handful of codes, looked up once per row:
// a flat array with a small open-addressing index rather than string-keyed
// maps. A code is added when first seen; an entry with neither a total nor
// an exponent stands for nothing.
class CurrencyTable {
 public:
  struct Entry {
    std::string code;
    int64_t total = 0;
    bool has_total = false;  // a row in this code has been added
    int exponent = -1;       // decimals seen for this code; -1: none yet
    int iso_exponent = -1;   // from the ISO 4217 table; -1: unknown code
  };

  CurrencyTable() : slots_(kInitialSlots) {}

  uint32_t FindOrAdd(std::string_view code) {
    const uint64_t key = Key(code);
    const uint64_t hash = Hash(key, code);
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.index == kEmpty) break;
      if (slot.key == key &&
          (key != kLongKey || entries_[slot.index].code == code)) {
        return slot.index;
      }
    }
    const uint32_t index = static_cast<uint32_t>(entries_.size());
    Entry& entry = entries_.emplace_back();
    entry.code = code;
    if (const CurrencyInfo* info = FindCurrency(code)) {
      entry.iso_exponent = info->minor_units;
    }
    if (2 * entries_.size() > slots_.size()) {
      Rehash(2 * slots_.size());
    } else {
      Insert(index, key, hash);
    }
    return index;
  }

  Entry& operator[](uint32_t index) { return entries_[index]; }

  std::map<std::string, int64_t> Totals() const {
    std::map<std::string, int64_t> totals;
    for (const Entry& e : entries_) {
      if (e.has_total) totals.emplace(e.code, e.total);
    }
    return totals;
  }

 private:
  static constexpr uint32_t kEmpty = ~uint32_t{0};
  static constexpr size_t kInitialSlots = 64;
  // The key of every code longer than 7 bytes, which are then told apart
  // by their text. No shorter code has it: its top byte is the length.
  static constexpr uint64_t kLongKey = ~uint64_t{0};

  struct Slot {
    uint64_t key = 0;
    uint32_t index = kEmpty;
  };

  // A code of up to 7 bytes (every real one) packed with its length into
  // a number, so that finding it takes one compare and no string compare.
  static uint64_t Key(std::string_view code) {
    if (code.size() > 7) return kLongKey;
    uint64_t key = uint64_t{code.size()} << 56;
    for (size_t i = 0; i < code.size(); ++i) {
      key |= uint64_t{static_cast<unsigned char>(code[i])} << (8 * i);
    }
    return key;
  }

  static uint64_t Hash(uint64_t key, std::string_view code) {
    uint64_t h = key;
    if (key == kLongKey) {
      for (const char c : code) {
        h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3u;
      }
    }
    h *= 0x9e3779b97f4a7c15u;
    return h ^ (h >> 32);
  }

  void Insert(uint32_t index, uint64_t key, uint64_t hash) {
    const size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    while (slots_[i].index != kEmpty) i = (i + 1) & mask;
    slots_[i] = Slot{key, index};
  }

  void Rehash(size_t size) {
    slots_.assign(size, Slot{});
    for (uint32_t i = 0; i < entries_.size(); ++i) {
      const uint64_t key = Key(entries_[i].code);
      Insert(i, key, Hash(key, entries_[i].code));
    }
  }

  std::vector<Entry> entries_;
  std::vector<Slot> slots_;  // size a power of two
};

// Reads one file row by row and collects what the manifest is checked
// against.
class FileChecker {
 public:
  FileChecker(const FileSummary& file, const Layout& layout)
      : file_(file), layout_(layout) {
    for (size_t i = 0; i < layout_.columns.size(); ++i) {
      const Column& column = layout_.columns[i];
      if (!column.field) continue;
      if (*column.field == Field::kAmount && amount_col_ < 0) {
        amount_col_ = static_cast<int>(i);
        amount_minor_ = column.format == ColumnFormat::kAmountMinor;
      }
      if (*column.field == Field::kCurrency && currency_col_ < 0) {
        currency_col_ = static_cast<int>(i);
      }
    }
  }

  bool can_recompute() const { return amount_col_ >= 0 && currency_col_ >= 0; }

  Status OnRow(uint64_t row, std::span<const std::string_view> cells) {
    if (cells.size() != layout_.columns.size()) {
      return Fail(row, std::to_string(cells.size()) + " cells, layout \"" +
                           layout_.name + "\" has " +
                           std::to_string(layout_.columns.size()));
    }
    if (layout_.header && row == 1) return CheckHeader(row, cells);
    if (layout_.trailer == TrailerKind::kNone) {
      ReadDataRow(row, cells, &pending_);
      return AddDataRow(pending_);
    }
    // The trailer is the last row, which is only known at the end: each
    // row's cells are read now (what the checks need of them, not a copy)
    // but only added, and any error reported, once the next row has come.
    if (pending_.row > 0) CBPIPE_RETURN_IF_ERROR(AddDataRow(pending_));
    ReadDataRow(row, cells, &pending_);
    return OkStatus();
  }

  // `parser` has read the whole file; `rows` of it.
  Status Finish(const StrictCsvParser& parser) {
    const uint64_t rows = parser.rows();
    if (layout_.header && rows == 0) return Fail(0, "no header row");
    if (layout_.trailer == TrailerKind::kCountAndTotal) {
      if (pending_.row == 0) return Fail(rows, "no trailer row");
      // The held row was the last one: it is the trailer, not data.
      const std::vector<std::string> cells = parser.LastRowCells();
      CBPIPE_RETURN_IF_ERROR(CheckTrailer(pending_.row, cells));
    }
    if (records_ != file_.records) {
      return Fail(0, std::to_string(records_) + " data rows, manifest says " +
                         std::to_string(file_.records));
    }
    if (can_recompute()) {
      const std::map<std::string, int64_t> totals = currencies_.Totals();
      if (totals != file_.totals) {
        return Fail(0, "amount totals " + TotalsText(totals) +
                           ", manifest says " + TotalsText(file_.totals));
      }
    }
    return OkStatus();
  }

  Status Fail(uint64_t row, const std::string& what) const {
    std::string where = "file " + file_.name;
    if (row > 0) where += " row " + std::to_string(row);
    return DataLossError(where + ": " + what);
  }

 private:
  // A data row as read, before it is checked against the rows before it.
  struct DataRow {
    uint64_t row = 0;  // 0: none
    bool parsed = false;
    int64_t minor = 0;
    int exponent = 0;
    uint32_t currency = 0;   // in currencies_
    std::string bad_amount;  // the amount cell, when it did not parse
  };

  Status CheckHeader(uint64_t row, std::span<const std::string_view> cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      const std::string& want = layout_.columns[i].header;
      const bool guarded = NeedsFormulaGuard(want);
      const bool same = guarded ? cells[i].size() == want.size() + 1 &&
                                      cells[i][0] == '\'' &&
                                      cells[i].substr(1) == want
                                : cells[i] == want;
      if (!same) {
        return Fail(row, "header cell " + std::to_string(i + 1) + " is \"" +
                             std::string(cells[i]) + "\", layout says \"" +
                             want + "\"");
      }
    }
    return OkStatus();
  }

  // Checks that a currency is always written with the same number of
  // decimals, and with the ISO 4217 number when cbpipe knows the currency.
  Status CheckExponent(uint64_t row, CurrencyTable::Entry& entry,
                       int exponent) {
    if (entry.exponent < 0) {
      entry.exponent = exponent;
    } else if (entry.exponent != exponent) {
      return Fail(row, entry.code + " amount with " + std::to_string(exponent) +
                           " decimals, earlier " +
                           std::to_string(entry.exponent));
    }
    if (entry.iso_exponent >= 0 && entry.iso_exponent != exponent) {
      return Fail(row, entry.code + " amount with " + std::to_string(exponent) +
                           " decimals, the currency has " +
                           std::to_string(entry.iso_exponent));
    }
    return OkStatus();
  }

  // What the checks need of a data row, read without changing any state
  // but the set of codes seen.
  void ReadDataRow(uint64_t row, std::span<const std::string_view> cells,
                   DataRow* out) {
    out->row = row;
    if (!can_recompute()) return;
    const std::string_view text = cells[amount_col_];
    out->parsed = amount_minor_
                      ? ParseWrittenInteger(text, &out->minor)
                      : ParseWrittenDecimal(text, &out->minor, &out->exponent);
    if (!out->parsed) out->bad_amount = text;
    out->currency = currencies_.FindOrAdd(cells[currency_col_]);
  }

  Status AddDataRow(const DataRow& data) {
    ++records_;
    if (!can_recompute()) return OkStatus();
    const uint64_t row = data.row;
    if (!data.parsed) {
      return Fail(row, "amount \"" + data.bad_amount + "\" is not " +
                           (amount_minor_ ? "an integer" : "a decimal"));
    }
    CurrencyTable::Entry& entry = currencies_[data.currency];
    if (!amount_minor_) {
      CBPIPE_RETURN_IF_ERROR(CheckExponent(row, entry, data.exponent));
    }
    if (entry.code.empty()) return Fail(row, "empty currency");
    entry.has_total = true;
    if (__builtin_add_overflow(entry.total, data.minor, &entry.total)) {
      return Fail(row, "the " + entry.code + " total overflows 64 bits");
    }
    return OkStatus();
  }

  Status CheckTrailer(uint64_t row, const std::vector<std::string>& cells) {
    if (cells[0] != kTrailerTag) {
      return Fail(
          row, "last row is not a trailer (first cell \"" + cells[0] + "\")");
    }
    int64_t count = 0;
    if (!ParseWrittenInteger(cells[1], &count) || count < 0 ||
        static_cast<uint64_t>(count) != records_) {
      return Fail(row, "trailer count \"" + cells[1] + "\", the file has " +
                           std::to_string(records_) + " data rows");
    }
    std::map<std::string, int64_t> trailer_totals;
    std::string_view rest = cells[2];
    while (!rest.empty()) {
      const size_t end = std::min(rest.find(';'), rest.size());
      const std::string_view part = rest.substr(0, end);
      rest.remove_prefix(end == rest.size() ? end : end + 1);
      const size_t eq = part.find('=');
      int64_t minor = 0;
      int exponent = 0;
      if (eq == std::string_view::npos || eq == 0 ||
          !ParseWrittenDecimal(part.substr(eq + 1), &minor, &exponent)) {
        return Fail(row, "trailer total \"" + std::string(part) +
                             "\" is not CUR=decimal");
      }
      const std::string_view code = part.substr(0, eq);
      CBPIPE_RETURN_IF_ERROR(CheckExponent(
          row, currencies_[currencies_.FindOrAdd(code)], exponent));
      if (!trailer_totals.emplace(code, minor).second) {
        return Fail(row, "trailer lists " + std::string(code) + " twice");
      }
    }
    for (size_t i = 3; i < cells.size(); ++i) {
      if (!cells[i].empty()) {
        return Fail(row,
                    "trailer cell " + std::to_string(i + 1) + " is not empty");
      }
    }
    const auto expected = can_recompute() ? currencies_.Totals() : file_.totals;
    if (trailer_totals != expected) {
      return Fail(row,
                  "trailer totals " + TotalsText(trailer_totals) + ", " +
                      (can_recompute() ? "rows add up to " : "manifest says ") +
                      TotalsText(expected));
    }
    return OkStatus();
  }

  const FileSummary& file_;
  const Layout& layout_;
  int amount_col_ = -1;
  bool amount_minor_ = false;
  int currency_col_ = -1;
  uint64_t records_ = 0;
  CurrencyTable currencies_;
  DataRow pending_;  // with a trailer: the last row read, not yet added
};

}  // namespace

Status VerifyFile(const FileSummary& file, const Layout& layout) {
  CBPIPE_RETURN_IF_ERROR(ValidateLayout(layout));
  FileChecker checker(file, layout);
  if (file.columns != static_cast<int>(layout.columns.size())) {
    return checker.Fail(0, "manifest says " + std::to_string(file.columns) +
                               " columns, layout \"" + layout.name + "\" has " +
                               std::to_string(layout.columns.size()));
  }
  if (file.trailer != layout.trailer) {
    return checker.Fail(0, "manifest says trailer " +
                               std::string(TrailerKindName(file.trailer)) +
                               ", layout \"" + layout.name + "\" has " +
                               std::string(TrailerKindName(layout.trailer)));
  }

  const int fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return DataLossError("file " + file.path + " is missing");
    return UnavailableError("cannot open " + file.path + ": " +
                            std::strerror(errno));
  }
  Sha256 sha;
  StrictCsvParser parser(layout.delimiter, layout.line_ending);
  auto on_row = [&checker](uint64_t row,
                           std::span<const std::string_view> cells) {
    return checker.OnRow(row, cells);
  };
  std::string chunk(kReadChunk, '\0');
  uint64_t bytes = 0;
  Status status;
  while (status.ok()) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = UnavailableError("cannot read " + file.path + ": " +
                                std::strerror(errno));
      break;
    }
    if (n == 0) break;
    const std::string_view data(chunk.data(), static_cast<size_t>(n));
    bytes += data.size();
    sha.Update(data.data(), data.size());
    status = parser.Feed(data, on_row);
    if (!status.ok() && status.message().rfind("row ", 0) == 0) {
      status = DataLossError("file " + file.name + " " + status.message());
    }
  }
  ::close(fd);
  CBPIPE_RETURN_IF_ERROR(status);
  if (Status end = parser.Finish(); !end.ok()) {
    return DataLossError("file " + file.name + " " + end.message());
  }
  CBPIPE_RETURN_IF_ERROR(checker.Finish(parser));
  if (bytes != file.bytes) {
    return checker.Fail(0, std::to_string(bytes) + " bytes, manifest says " +
                               std::to_string(file.bytes));
  }
  CBPIPE_ASSIGN_OR_RETURN(const std::string hex, sha.FinishHex());
  if (hex != file.sha256) {
    return checker.Fail(0, "SHA-256 " + hex + ", manifest says " + file.sha256);
  }
  return OkStatus();
}

Status VerifyBatch(const Batch& batch, const OutputOptions& options) {
  if (!batch.manifest_path.empty()) {
    auto on_disk = ReadManifest(batch.manifest_path);
    if (!on_disk.ok()) {
      if (on_disk.status().code() == StatusCode::kNotFound) {
        return DataLossError("batch " + batch.id + ": " +
                             on_disk.status().message());
      }
      return on_disk.status();
    }
    if (ManifestJson(*on_disk) != ManifestJson(batch)) {
      return DataLossError("batch " + batch.id + ": " + batch.manifest_path +
                           " does not describe the batch's files");
    }
  }
  // Layouts are looked up first, in order; the files are then read in
  // parallel, and the first failure in batch order is reported, so the
  // outcome does not depend on which thread finishes first.
  const size_t count = batch.files.size();
  std::vector<std::optional<Layout>> layouts(count);
  std::vector<Status> results(count);
  for (size_t i = 0; i < count; ++i) {
    const FileSummary& file = batch.files[i];
    StatusOr<Layout> layout = NotFoundError("");
    if (!file.layout.empty()) {
      layout = FindLayout(options, file.layout);
    } else {
      layout = NotFoundError("destination \"" + file.destination +
                             "\" is not in the config");
      for (const OutputRoute& d : options.routes) {
        if (d.name == file.destination)
          layout = LayoutForDestination(options, d);
      }
    }
    if (!layout.ok()) {
      results[i] = Status(layout.status().code(),
                          "batch " + batch.id + ": file " + file.name + ": " +
                              layout.status().message());
      break;  // later files cannot be reported
    }
    layouts[i] = *std::move(layout);
  }
  // Largest files first: the threads then finish at about the same time.
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return batch.files[a].bytes > batch.files[b].bytes;
  });
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t k = next.fetch_add(1); k < count; k = next.fetch_add(1)) {
      const size_t i = order[k];
      if (!layouts[i]) continue;
      Status status = VerifyFile(batch.files[i], *layouts[i]);
      if (!status.ok()) {
        results[i] = Status(status.code(),
                            "batch " + batch.id + ": " + status.message());
      }
    }
  };
  const size_t threads = std::min<size_t>(
      count, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(work);
  work();  // this thread is one of the workers
  for (std::thread& t : helpers) t.join();
  for (Status& status : results) {
    if (!status.ok()) return status;
  }
  return OkStatus();
}

}  // namespace cbpipe
