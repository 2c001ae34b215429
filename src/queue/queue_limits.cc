#include "queue/queue_limits.h"

#include <algorithm>
#include <cstdint>
#include <string>

namespace cbpipe {

bool ValidQueueName(std::string_view name) {
  if (name.empty() || name.size() > 80) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool ValidAttributeName(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  });
}

// SQS carries attribute values as strings; invalid UTF-8 would also make the
// JSON encoding below fail.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;  // overlong, out of range or a surrogate
    }
    i += extra + 1;
  }
  return true;
}

Status ValidateOutgoing(const OutgoingMessage& m) {
  if (m.dedup_id.size() > 128) {
    return InvalidArgumentError("queue: dedup_id longer than 128");
  }
  if (m.delay_ms < 0 || m.delay_ms > kMaxDelayMs) {
    return InvalidArgumentError("queue: delay_ms out of range: " +
                                std::to_string(m.delay_ms));
  }
  if (m.attributes.size() > static_cast<size_t>(kMaxAttributes)) {
    return InvalidArgumentError("queue: more than " +
                                std::to_string(kMaxAttributes) + " attributes");
  }
  size_t bytes = m.body.size();
  for (const auto& [name, value] : m.attributes) {
    if (!ValidAttributeName(name)) {
      return InvalidArgumentError("queue: bad attribute name: " + name);
    }
    if (!ValidUtf8(value)) {
      return InvalidArgumentError("queue: attribute " + name +
                                  " is not valid UTF-8");
    }
    bytes += name.size() + value.size();
  }
  if (bytes > kMaxMessageBytes) {
    return InvalidArgumentError("queue: message of " + std::to_string(bytes) +
                                " bytes exceeds " +
                                std::to_string(kMaxMessageBytes));
  }
  return OkStatus();
}

Status CheckVisibility(int64_t visibility_ms) {
  if (visibility_ms < 0 || visibility_ms > kMaxVisibilityMs) {
    return InvalidArgumentError("queue: visibility_ms out of range: " +
                                std::to_string(visibility_ms));
  }
  return OkStatus();
}

Status CheckReceipt(std::string_view receipt) {
  if (receipt.empty()) return InvalidArgumentError("queue: empty receipt");
  return OkStatus();
}

Status ValidateSendBatch(const std::vector<OutgoingMessage>& messages) {
  if (messages.empty() ||
      messages.size() > static_cast<size_t>(kMaxBatchEntries)) {
    return InvalidArgumentError(
        "queue: a batch holds 1.." + std::to_string(kMaxBatchEntries) +
        " messages, not " + std::to_string(messages.size()));
  }
  for (const OutgoingMessage& m : messages) {
    CBPIPE_RETURN_IF_ERROR(ValidateOutgoing(m));
  }
  return OkStatus();
}

Status ValidateReceive(int max_messages, int64_t visibility_ms,
                       int64_t wait_ms) {
  if (max_messages < 1 || max_messages > kMaxReceiveMessages) {
    return InvalidArgumentError("queue: max_messages out of range: " +
                                std::to_string(max_messages));
  }
  CBPIPE_RETURN_IF_ERROR(CheckVisibility(visibility_ms));
  if (wait_ms < 0 || wait_ms > kMaxWaitMs) {
    return InvalidArgumentError("queue: wait_ms out of range: " +
                                std::to_string(wait_ms));
  }
  return OkStatus();
}

Status ValidateDeleteBatch(const std::vector<std::string>& receipts) {
  if (receipts.empty() ||
      receipts.size() > static_cast<size_t>(kMaxBatchEntries)) {
    return InvalidArgumentError(
        "queue: a batch holds 1.." + std::to_string(kMaxBatchEntries) +
        " receipts, not " + std::to_string(receipts.size()));
  }
  for (const std::string& r : receipts) CBPIPE_RETURN_IF_ERROR(CheckReceipt(r));
  return OkStatus();
}

}  // namespace cbpipe
