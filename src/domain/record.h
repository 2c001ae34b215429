// The canonical chargeback record (DESIGN.md §3) and its field names.
//
// A Record only ever holds validated values: the PAN is masked, the amount is
// integer minor units, dates are calendar-checked. Raw input lives in
// ingest::RawRecord until the validator turns it into a Record.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "domain/dates.h"
#include "domain/network.h"

namespace cbpipe {

enum class Field : uint8_t {
  kCaseId = 0,
  kNetwork,
  kArn,
  kPan,
  kMerchantId,
  kTransactionDate,
  kChargebackDate,
  kAmount,
  kCurrency,
  kReasonCode,
  kStage,
  kTransactionId,
  kMerchantName,
  kMcc,
  kReasonText,
  kDueDate,
  kTransactionAmount,
  kStatus,
};
inline constexpr int kFieldCount = 18;

// Canonical snake_case name: "case_id", "transaction_date", ...
std::string_view FieldName(Field field);
// Canonical name or alias ("case_number", "dispute_amount", ...), compared
// case-insensitively with spaces and dashes treated as underscores.
std::optional<Field> FieldFromName(std::string_view name);

// Card verification values and track data (PCI DSS 3.3.1). A record carrying
// any of these, non-empty, is rejected and the value is never kept.
bool IsSensitiveFieldName(std::string_view name);

enum class Stage : uint8_t {
  kRetrieval,
  kFirstChargeback,
  kRepresentment,
  kPreArbitration,
  kArbitration,
};
std::string_view StageName(Stage stage);
std::optional<Stage> ParseStage(std::string_view text);  // case-insensitive

struct Record {
  uint64_t position = 0;  // CSV/JSONL: line of the record's start; JSON: index
  std::string case_id;
  Network network = Network::kVisa;
  std::string arn;         // empty when absent (amex/discover)
  std::string pan_masked;  // empty when absent; never a full PAN
  std::string merchant_id;
  DateTime transaction_date;
  DateTime chargeback_date;
  int64_t amount_minor = 0;
  std::string currency;  // ISO 4217 alphabetic, upper case
  int currency_exponent = 2;
  std::string reason_code;
  Stage stage = Stage::kFirstChargeback;
  // Optional fields, kept as validated text (empty when absent).
  std::string transaction_id;
  std::string merchant_name;
  std::string mcc;
  std::string reason_text;
  std::optional<DateTime> due_date;
  std::optional<int64_t> transaction_amount_minor;
  std::string status;
};

}  // namespace cbpipe
