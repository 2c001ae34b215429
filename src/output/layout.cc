#include "output/layout.h"

#include <utility>

#include "output/options.h"

namespace cbpipe {
namespace {

Column FieldColumn(std::string header, Field field,
                   ColumnFormat format = ColumnFormat::kText,
                   std::string date_pattern = "%Y-%m-%d") {
  Column column;
  column.header = std::move(header);
  column.field = field;
  column.format = format;
  column.date_pattern = std::move(date_pattern);
  // Identifiers keep their leading zeros only if a spreadsheet sees them as
  // text, hence quoted whatever their content.
  column.always_quote = field == Field::kArn || field == Field::kCaseId ||
                        field == Field::kMerchantId;
  return column;
}

// Visa: upper-case headers, compact dates, decimal amounts, no trailer.
Layout VisaLayout() {
  Layout layout;
  layout.name = "visa";
  layout.columns = {
      FieldColumn("CASE_ID", Field::kCaseId),
      FieldColumn("ARN", Field::kArn),
      FieldColumn("PAN", Field::kPan),
      FieldColumn("MERCHANT_ID", Field::kMerchantId),
      FieldColumn("TRANSACTION_DATE", Field::kTransactionDate,
                  ColumnFormat::kDate, "%Y%m%d"),
      FieldColumn("CHARGEBACK_DATE", Field::kChargebackDate,
                  ColumnFormat::kDate, "%Y%m%d"),
      FieldColumn("AMOUNT", Field::kAmount, ColumnFormat::kAmountDecimal),
      FieldColumn("CURRENCY", Field::kCurrency),
      FieldColumn("REASON_CODE", Field::kReasonCode),
      FieldColumn("STAGE", Field::kStage, ColumnFormat::kUpper),
  };
  return layout;
}

// Mastercard: integer minor units (no decimal separator to misread), ISO
// dates, and a count-and-total trailer the receiver can reconcile against.
Layout MastercardLayout() {
  Layout layout;
  layout.name = "mastercard";
  layout.columns = {
      FieldColumn("claim_id", Field::kCaseId),
      FieldColumn("acquirer_reference_data", Field::kArn),
      FieldColumn("pan_masked", Field::kPan),
      FieldColumn("merchant_id", Field::kMerchantId),
      FieldColumn("transaction_date", Field::kTransactionDate,
                  ColumnFormat::kDate),
      FieldColumn("chargeback_date", Field::kChargebackDate,
                  ColumnFormat::kDate),
      FieldColumn("amount_minor_units", Field::kAmount,
                  ColumnFormat::kAmountMinor),
      FieldColumn("currency", Field::kCurrency),
      FieldColumn("reason_code", Field::kReasonCode),
      FieldColumn("cycle", Field::kStage, ColumnFormat::kLower),
  };
  layout.trailer = TrailerKind::kCountAndTotal;
  return layout;
}

// Amex: its own vocabulary (case number, SE number); the reference number
// is optional for Amex, so the column may be empty. Carries the merchant
// name, which Amex dispute teams work by.
Layout AmexLayout() {
  Layout layout;
  layout.name = "amex";
  layout.columns = {
      FieldColumn("CASE_NUMBER", Field::kCaseId),
      FieldColumn("SE_NUMBER", Field::kMerchantId),
      FieldColumn("MERCHANT_NAME", Field::kMerchantName),
      FieldColumn("CARD_NUMBER", Field::kPan),
      FieldColumn("REFERENCE_NUMBER", Field::kArn),
      FieldColumn("CHARGE_DATE", Field::kTransactionDate, ColumnFormat::kDate),
      FieldColumn("DISPUTE_DATE", Field::kChargebackDate, ColumnFormat::kDate),
      FieldColumn("DISPUTE_AMOUNT", Field::kAmount,
                  ColumnFormat::kAmountDecimal),
      FieldColumn("CURRENCY_CODE", Field::kCurrency),
      FieldColumn("REASON_CODE", Field::kReasonCode),
      FieldColumn("DISPUTE_STAGE", Field::kStage, ColumnFormat::kUpper),
  };
  layout.trailer = TrailerKind::kCountAndTotal;
  return layout;
}

// Discover: like Amex (optional reference number), plus the MCC and the
// response due date, compact dates.
Layout DiscoverLayout() {
  Layout layout;
  layout.name = "discover";
  layout.columns = {
      FieldColumn("DISPUTE_ID", Field::kCaseId),
      FieldColumn("MERCHANT_NUMBER", Field::kMerchantId),
      FieldColumn("MCC", Field::kMcc),
      FieldColumn("CARD_NUMBER", Field::kPan),
      FieldColumn("ACQUIRER_REFERENCE", Field::kArn),
      FieldColumn("TRANSACTION_DATE", Field::kTransactionDate,
                  ColumnFormat::kDate, "%Y%m%d"),
      FieldColumn("DISPUTE_DATE", Field::kChargebackDate, ColumnFormat::kDate,
                  "%Y%m%d"),
      FieldColumn("RESPONSE_DUE_DATE", Field::kDueDate, ColumnFormat::kDate,
                  "%Y%m%d"),
      FieldColumn("DISPUTE_AMOUNT", Field::kAmount,
                  ColumnFormat::kAmountDecimal),
      FieldColumn("CURRENCY", Field::kCurrency),
      FieldColumn("REASON_CODE", Field::kReasonCode),
      FieldColumn("DISPUTE_STAGE", Field::kStage, ColumnFormat::kUpper),
  };
  layout.trailer = TrailerKind::kCountAndTotal;
  return layout;
}

bool IsDateField(Field field) {
  return field == Field::kTransactionDate || field == Field::kChargebackDate ||
         field == Field::kDueDate;
}

bool IsAmountField(Field field) {
  return field == Field::kAmount || field == Field::kTransactionAmount;
}

}  // namespace

std::optional<ColumnFormat> ParseColumnFormat(std::string_view name) {
  if (name == "text") return ColumnFormat::kText;
  if (name == "upper") return ColumnFormat::kUpper;
  if (name == "lower") return ColumnFormat::kLower;
  if (name == "date") return ColumnFormat::kDate;
  if (name == "amount") return ColumnFormat::kAmountDecimal;
  if (name == "amount_minor") return ColumnFormat::kAmountMinor;
  return std::nullopt;
}

std::string_view ColumnFormatName(ColumnFormat format) {
  switch (format) {
    case ColumnFormat::kText: return "text";
    case ColumnFormat::kUpper: return "upper";
    case ColumnFormat::kLower: return "lower";
    case ColumnFormat::kDate: return "date";
    case ColumnFormat::kAmountDecimal: return "amount";
    case ColumnFormat::kAmountMinor: return "amount_minor";
  }
  return "text";
}

std::optional<TrailerKind> ParseTrailerKind(std::string_view name) {
  if (name == "none") return TrailerKind::kNone;
  if (name == "count_and_total") return TrailerKind::kCountAndTotal;
  return std::nullopt;
}

std::string_view TrailerKindName(TrailerKind kind) {
  switch (kind) {
    case TrailerKind::kNone: return "none";
    case TrailerKind::kCountAndTotal: return "count_and_total";
  }
  return "none";
}

std::optional<Layout> BuiltinLayout(std::string_view name) {
  if (name == "visa") return VisaLayout();
  if (name == "mastercard") return MastercardLayout();
  if (name == "amex") return AmexLayout();
  if (name == "discover") return DiscoverLayout();
  return std::nullopt;
}

std::string_view BuiltinLayoutName(Network network) {
  return NetworkName(network);
}

Status ValidateLayout(const Layout& layout) {
  const std::string where = "layout \"" + layout.name + "\"";
  if (layout.columns.empty()) {
    return InvalidArgumentError(where + ": has no columns");
  }
  // A generous bound; it keeps a typo from producing absurd rows and lets
  // the verifier bound the memory one row takes.
  if (layout.columns.size() > 1000) {
    return InvalidArgumentError(where + ": more than 1000 columns");
  }
  // Any other delimiter works: cells holding it are quoted. A quote or line
  // break would make every row ambiguous.
  const char d = layout.delimiter;
  if (d == '"' || d == '\r' || d == '\n' || d == '\0') {
    return InvalidArgumentError(
        where + ": the delimiter cannot be a quote, a line break or NUL");
  }
  if (layout.line_ending != "\r\n" && layout.line_ending != "\n") {
    return InvalidArgumentError(where +
                                ": line ending must be \"\\r\\n\" or \"\\n\"");
  }
  if (layout.trailer == TrailerKind::kCountAndTotal &&
      layout.columns.size() < 3) {
    return InvalidArgumentError(
        where + ": a count_and_total trailer needs at least 3 columns");
  }
  for (size_t i = 0; i < layout.columns.size(); ++i) {
    const Column& column = layout.columns[i];
    const std::string col = where + " column " + std::to_string(i + 1) +
                            " (\"" + column.header + "\")";
    const bool is_date = column.format == ColumnFormat::kDate;
    const bool is_amount = column.format == ColumnFormat::kAmountDecimal ||
                           column.format == ColumnFormat::kAmountMinor;
    if (!column.field.has_value()) {
      if (is_date || is_amount) {
        return InvalidArgumentError(col + ": a constant column can only be " +
                                    "text, upper or lower");
      }
      continue;
    }
    if (is_date && !IsDateField(*column.field)) {
      return InvalidArgumentError(col + ": format date needs a date field, " +
                                  "not " +
                                  std::string(FieldName(*column.field)));
    }
    if (is_date && column.date_pattern.empty()) {
      return InvalidArgumentError(col + ": empty date pattern");
    }
    if (is_amount && !IsAmountField(*column.field)) {
      return InvalidArgumentError(col + ": format " +
                                  std::string(ColumnFormatName(column.format)) +
                                  " needs an amount field, not " +
                                  std::string(FieldName(*column.field)));
    }
  }
  return OkStatus();
}

StatusOr<Layout> FindLayout(const OutputOptions& options,
                            std::string_view name) {
  auto it = options.layouts.find(std::string(name));
  if (it != options.layouts.end()) {
    Layout layout = it->second;
    // A config table's key is the layout's name even if the struct was left
    // without one; the manifest records it.
    if (layout.name.empty()) layout.name = it->first;
    return layout;
  }
  if (auto builtin = BuiltinLayout(name)) return *std::move(builtin);
  return NotFoundError("no layout named \"" + std::string(name) +
                       "\" (built-in: visa, mastercard, amex, discover)");
}

StatusOr<Layout> LayoutForDestination(const OutputOptions& options,
                                      const OutputRoute& destination) {
  if (!destination.layout.empty()) {
    auto layout = FindLayout(options, destination.layout);
    if (!layout.ok()) {
      return Status(layout.status().code(),
                    "destination \"" + destination.name +
                        "\": " + layout.status().message());
    }
    return layout;
  }
  if (destination.networks.empty()) {
    return InvalidArgumentError("destination \"" + destination.name +
                                "\" has no networks");
  }
  return FindLayout(options,
                    BuiltinLayoutName(destination.networks.front()));
}

}  // namespace cbpipe
