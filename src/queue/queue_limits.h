// Argument checks every queue adapter applies, so each enforces the same
// limits (queue.h): SqliteQueue and SqsQueue return the same
// kInvalidArgument before touching their store.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "queue/queue.h"

namespace cbpipe {

// 1-80 of [A-Za-z0-9_-] (SQS's rule; a FIFO queue's ".fifo" suffix aside).
bool ValidQueueName(std::string_view name);
// 1-256 of [A-Za-z0-9_.-].
bool ValidAttributeName(std::string_view name);
// Well-formed UTF-8: no overlong form, surrogate or truncated sequence.
bool ValidUtf8(std::string_view s);

Status ValidateOutgoing(const OutgoingMessage& m);
Status CheckVisibility(int64_t visibility_ms);
Status CheckReceipt(std::string_view receipt);
// The whole argument list of SendBatch, Receive and DeleteBatch.
Status ValidateSendBatch(const std::vector<OutgoingMessage>& messages);
Status ValidateReceive(int max_messages, int64_t visibility_ms,
                       int64_t wait_ms);
Status ValidateDeleteBatch(const std::vector<std::string>& receipts);

}  // namespace cbpipe
