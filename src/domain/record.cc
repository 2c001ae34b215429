#include "domain/record.h"

#include <algorithm>
#include <cctype>

namespace cbpipe {
namespace {

struct FieldAlias {
  std::string_view name;
  Field field;
};

// Canonical names first, then the aliases of DESIGN.md §3 and a few
// spellings seen in processor exports.
constexpr FieldAlias kAliases[] = {
    {"case_id", Field::kCaseId},
    {"network", Field::kNetwork},
    {"arn", Field::kArn},
    {"pan", Field::kPan},
    {"merchant_id", Field::kMerchantId},
    {"transaction_date", Field::kTransactionDate},
    {"chargeback_date", Field::kChargebackDate},
    {"amount", Field::kAmount},
    {"currency", Field::kCurrency},
    {"reason_code", Field::kReasonCode},
    {"stage", Field::kStage},
    {"transaction_id", Field::kTransactionId},
    {"merchant_name", Field::kMerchantName},
    {"mcc", Field::kMcc},
    {"reason_text", Field::kReasonText},
    {"due_date", Field::kDueDate},
    {"transaction_amount", Field::kTransactionAmount},
    {"status", Field::kStatus},
    // Aliases.
    {"case_number", Field::kCaseId},
    {"dispute_id", Field::kCaseId},
    {"chargeback_id", Field::kCaseId},
    {"card_network", Field::kNetwork},
    {"card_brand", Field::kNetwork},
    {"scheme", Field::kNetwork},
    {"acquirer_reference_number", Field::kArn},
    {"card_number", Field::kPan},
    {"masked_pan", Field::kPan},
    {"mid", Field::kMerchantId},
    {"dispute_date", Field::kChargebackDate},
    {"chargeback_amount", Field::kAmount},
    {"dispute_amount", Field::kAmount},
    {"currency_code", Field::kCurrency},
    {"reason", Field::kReasonCode},
    {"dispute_stage", Field::kStage},
    {"respond_by", Field::kDueDate},
};

// Compared with separators removed, so "Track 2", "CVV-2" and "pin_block"
// all match.
constexpr std::string_view kSensitiveNames[] = {
    "cvv",       "cvv2",       "cvc",        "cvc2",
    "cid",       "cav2",       "cvn",        "csc",
    "cvd",       "securitycode", "cardsecuritycode", "cardverificationvalue",
    "track",     "track1",     "track2",     "trackdata",
    "track1data", "track2data", "magstripe", "magstripedata",
    "pin",       "pinblock",
};

// Lower case; spaces, dashes and dots become underscores; trimmed.
// ("Case Number", "case-number" and "case.number" are one name.)
std::string Normalise(std::string_view name) {
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front())))
    name.remove_prefix(1);
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back())))
    name.remove_suffix(1);
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '-' || c == '.') {
      out.push_back('_');
    } else {
      out.push_back(static_cast<char>(std::tolower(u)));
    }
  }
  return out;
}

}  // namespace

std::string_view FieldName(Field field) {
  return kAliases[static_cast<int>(field)].name;
}

std::optional<Field> FieldFromName(std::string_view name) {
  const std::string key = Normalise(name);
  for (const FieldAlias& alias : kAliases) {
    if (alias.name == key) return alias.field;
  }
  return std::nullopt;
}

bool IsSensitiveFieldName(std::string_view name) {
  std::string key = Normalise(name);
  std::erase(key, '_');
  return std::find(std::begin(kSensitiveNames), std::end(kSensitiveNames),
                   key) != std::end(kSensitiveNames);
}

std::string_view StageName(Stage stage) {
  switch (stage) {
    case Stage::kRetrieval: return "retrieval";
    case Stage::kFirstChargeback: return "first_chargeback";
    case Stage::kRepresentment: return "representment";
    case Stage::kPreArbitration: return "pre_arbitration";
    case Stage::kArbitration: return "arbitration";
  }
  return "first_chargeback";
}

std::optional<Stage> ParseStage(std::string_view text) {
  // Called for every record: normalise into a stack buffer, no allocation.
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  char buf[32];
  if (text.size() > sizeof(buf)) return std::nullopt;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    // ASCII by hand: std::tolower is a library call per byte.
    buf[i] = (c == ' ' || c == '-' || c == '.') ? '_'
             : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a')
                                      : c;
  }
  const std::string_view key(buf, text.size());
  for (Stage s : {Stage::kRetrieval, Stage::kFirstChargeback,
                  Stage::kRepresentment, Stage::kPreArbitration,
                  Stage::kArbitration}) {
    if (StageName(s) == key) return s;
  }
  if (key == "second_presentment") return Stage::kRepresentment;
  if (key == "request_for_information" || key == "rfi")
    return Stage::kRetrieval;
  if (key == "chargeback") return Stage::kFirstChargeback;
  return std::nullopt;
}

}  // namespace cbpipe
