#include "queue/sqs_queue.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/env.h"
#include "queue/queue_limits.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

// The adapter's own message attribute (see the header).
constexpr char kOwnAttribute[] = "cbpipe";
// Hides the dead-letter queue while it is listed or redriven.
constexpr int64_t kScanVisibilitySeconds = 30;
// Keeps MoveToDeadLetter's memory of received messages bounded.
constexpr size_t kMaxRemembered = 4096;
// A dead-letter scan stops here (the port's listing limit is 1000).
constexpr size_t kMaxScanned = 10000;

int64_t CeilSeconds(int64_t ms) { return (ms + 999) / 1000; }

// SQS accepts #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
// #x10000-#x10FFFF in a body.
bool SqsCanCarry(std::string_view body) {
  if (!ValidUtf8(body)) return false;
  for (size_t i = 0; i < body.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(body[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    // U+FFFE and U+FFFF: EF BF BE / EF BF BF.
    if (c == 0xef && i + 2 < body.size() &&
        static_cast<unsigned char>(body[i + 1]) == 0xbf &&
        static_cast<unsigned char>(body[i + 2]) >= 0xbe) {
      return false;
    }
  }
  return true;
}

std::string Base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(in.data()),
                      static_cast<int>(in.size()));
  out.resize(n);
  return out;
}

StatusOr<std::string> Unbase64(std::string_view in) {
  if (in.size() % 4 != 0) return DataLossError("SQS: corrupt base64 body");
  std::string out(in.size() / 4 * 3, '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(in.data()),
                      static_cast<int>(in.size()));
  if (n < 0) return DataLossError("SQS: corrupt base64 body");
  size_t len = static_cast<size_t>(n);
  if (!in.empty() && in.back() == '=') --len;
  if (in.size() > 1 && in[in.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

int64_t ToInt(const json& j, std::string_view key) {
  auto it = j.find(std::string(key));
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (!it->is_string()) return 0;
  const std::string& s = it->get_ref<const std::string&>();
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

// nlohmann::json throws on an answer of an unexpected shape; the adapter
// turns that into a Status at each function that reads answers.
Status JsonError(const json::exception& e) {
  return InternalError(std::string("SQS: unexpected answer: ") + e.what());
}

// A batch entry's Id (its index in the request); SIZE_MAX when unreadable.
size_t EntryIndex(const json& entry) {
  const std::string id = entry.value("Id", "");
  if (id.empty() || id.size() > 4) return SIZE_MAX;
  size_t i = 0;
  for (char c : id) {
    if (c < '0' || c > '9') return SIZE_MAX;
    i = i * 10 + static_cast<size_t>(c - '0');
  }
  return i;
}

// "arn:aws:sqs:REGION:ACCOUNT:NAME" -> {ACCOUNT, NAME}.
StatusOr<std::pair<std::string, std::string>> SplitQueueArn(
    std::string_view arn) {
  const size_t name_at = arn.rfind(':');
  if (name_at == std::string_view::npos || name_at == 0) {
    return InvalidArgumentError("SQS: bad queue ARN: " + std::string(arn));
  }
  const size_t account_at = arn.rfind(':', name_at - 1);
  if (account_at == std::string_view::npos) {
    return InvalidArgumentError("SQS: bad queue ARN: " + std::string(arn));
  }
  return std::make_pair(
      std::string(arn.substr(account_at + 1, name_at - account_at - 1)),
      std::string(arn.substr(name_at + 1)));
}

// The receipt-level error of a batch entry, as the port reports it.
Status EntryError(const json& failed, std::string_view what) {
  const std::string code = failed.value("Code", "");
  const std::string message =
      std::string(what) + ": " + code + ": " + failed.value("Message", "");
  if (code == "ReceiptHandleIsInvalid") return NotFoundError(message);
  if (failed.value("SenderFault", false)) return InvalidArgumentError(message);
  return UnavailableError(message);
}

}  // namespace

SqsQueue::SqsQueue(std::shared_ptr<AwsClient> aws, std::string name,
                   std::string url)
    : aws_(std::move(aws)), name_(std::move(name)), url_(std::move(url)) {
  fifo_ = name_.size() > 5 && name_.ends_with(".fifo");
}

StatusOr<std::string> SqsQueue::Call(std::string_view action,
                                     const std::string& body,
                                     std::string_view resource,
                                     AwsError* error) {
  return aws_->CallJson("sqs", "AmazonSQS." + std::string(action), body,
                        resource, "", error);
}

StatusOr<std::unique_ptr<SqsQueue>> SqsQueue::Open(
    std::shared_ptr<AwsClient> aws, std::string_view queue,
    SqsQueueOptions options) try {
  if (aws == nullptr) return InvalidArgumentError("SQS: no AWS client");
  std::string name;
  std::string url;
  if (queue.starts_with("https://") || queue.starts_with("http://")) {
    url = std::string(queue);
    while (!url.empty() && url.back() == '/') url.pop_back();
    name = url.substr(url.rfind('/') + 1);
  } else {
    name = std::string(queue);
  }
  std::string_view bare = name;
  if (bare.ends_with(".fifo")) bare.remove_suffix(5);
  if (!ValidQueueName(bare)) {
    return InvalidArgumentError("SQS: bad queue name: " + name);
  }
  if (options.max_receive_count < 0 ||
      options.max_receive_count > kMaxReceiveCountLimit) {
    return InvalidArgumentError("SQS: max_receive_count out of range");
  }
  std::unique_ptr<SqsQueue> q(new SqsQueue(aws, name, url));
  const std::string resource = "sqs queue " + name;
  if (url.empty()) {
    auto got =
        q->Call("GetQueueUrl", json{{"QueueName", name}}.dump(), resource);
    if (!got.ok() && got.status().code() == StatusCode::kNotFound &&
        options.create_if_missing) {
      json create = {{"QueueName", name}, {"Attributes", json::object()}};
      if (q->fifo_) create["Attributes"]["FifoQueue"] = "true";
      if (options.max_receive_count > 0) {
        std::string dlq_name = std::string(bare) + "-dlq";
        if (q->fifo_) dlq_name += ".fifo";
        json dlq = {{"QueueName", dlq_name}, {"Attributes", json::object()}};
        if (q->fifo_) dlq["Attributes"]["FifoQueue"] = "true";
        CBPIPE_RETURN_IF_ERROR(
            q->Call("CreateQueue", dlq.dump(), "sqs queue " + dlq_name)
                .status());
        CBPIPE_ASSIGN_OR_RETURN(
            std::string dlq_url_json,
            q->Call("GetQueueUrl", json{{"QueueName", dlq_name}}.dump(),
                    "sqs queue " + dlq_name));
        const std::string dlq_url =
            json::parse(dlq_url_json, nullptr, false).value("QueueUrl", "");
        CBPIPE_ASSIGN_OR_RETURN(std::string attrs,
                                q->Call("GetQueueAttributes",
                                        json{{"QueueUrl", dlq_url},
                                             {"AttributeNames", {"QueueArn"}}}
                                            .dump(),
                                        "sqs queue " + dlq_name));
        const json a = json::parse(attrs, nullptr, false);
        const std::string arn =
            a.is_object() ? a.value("/Attributes/QueueArn"_json_pointer, "")
                          : "";
        if (arn.empty())
          return InternalError("SQS: no QueueArn for " + dlq_name);
        create["Attributes"]["RedrivePolicy"] = json{
            {"deadLetterTargetArn", arn},
            {"maxReceiveCount",
             options.max_receive_count}}.dump();
      }
      CBPIPE_RETURN_IF_ERROR(
          q->Call("CreateQueue", create.dump(), resource).status());
      got = q->Call("GetQueueUrl", json{{"QueueName", name}}.dump(), resource);
    }
    if (!got.ok()) return got.status();
    const json j = json::parse(*got, nullptr, false);
    if (!j.is_object() || !j.contains("QueueUrl")) {
      return InternalError("SQS GetQueueUrl " + name + ": no QueueUrl");
    }
    url = j["QueueUrl"].get<std::string>();
    q = std::unique_ptr<SqsQueue>(new SqsQueue(aws, name, url));
  }

  // The dead-letter queue, from the RedrivePolicy.
  CBPIPE_ASSIGN_OR_RETURN(
      std::string attrs,
      q->Call("GetQueueAttributes",
              json{{"QueueUrl", q->url_}, {"AttributeNames", {"RedrivePolicy"}}}
                  .dump(),
              resource));
  const json a = json::parse(attrs, nullptr, false);
  const std::string policy_text =
      a.is_object() ? a.value("/Attributes/RedrivePolicy"_json_pointer, "")
                    : "";
  if (!policy_text.empty()) {
    const json policy = json::parse(policy_text, nullptr, false);
    if (!policy.is_object() || !policy.contains("deadLetterTargetArn")) {
      return InternalError("SQS " + name + ": unreadable RedrivePolicy");
    }
    q->max_receive_count_ = static_cast<int>(ToInt(policy, "maxReceiveCount"));
    CBPIPE_ASSIGN_OR_RETURN(
        auto account_name,
        SplitQueueArn(policy["deadLetterTargetArn"].get<std::string>()));
    CBPIPE_ASSIGN_OR_RETURN(
        std::string dlq,
        q->Call("GetQueueUrl",
                json{{"QueueName", account_name.second},
                     {"QueueOwnerAWSAccountId", account_name.first}}
                    .dump(),
                "sqs queue " + account_name.second));
    q->dlq_url_ = json::parse(dlq, nullptr, false).value("QueueUrl", "");
  }
  return q;
} catch (const json::exception& e) {
  return JsonError(e);
}

// ---------------------------------------------------------------- sending

Status SqsQueue::SendRaw(const std::string& url,
                         const std::vector<Received>& batch,
                         std::vector<std::string>* ids) try {
  json entries = json::array();
  for (size_t i = 0; i < batch.size(); ++i) {
    const Message& m = batch[i].message;
    json entry = {{"Id", std::to_string(i)}};
    json own = json::object();
    if (SqsCanCarry(m.body)) {
      entry["MessageBody"] = m.body;
    } else {
      entry["MessageBody"] = Base64(m.body);
      own["encoding"] = "base64";
    }
    if (!m.id.empty()) own["id"] = m.id;
    if (m.sent_at_ms != 0) own["sent_at"] = m.sent_at_ms;
    if (!batch[i].reason.empty()) {
      own["reason"] = batch[i].reason;
      own["moved_at"] = batch[i].moved_at_ms;
      own["receive_count"] = m.receive_count;
    }
    json attributes = json::object();
    for (const auto& [k, v] : m.attributes) {
      attributes[k] = {{"DataType", "String"}, {"StringValue", v}};
    }
    if (!own.empty()) {
      if (m.attributes.size() >= static_cast<size_t>(kMaxAttributes)) {
        return InvalidArgumentError(
            "SQS: a message that needs the adapter's attribute may carry at "
            "most " +
            std::to_string(kMaxAttributes - 1) + " attributes");
      }
      attributes[kOwnAttribute] = {{"DataType", "String"},
                                   {"StringValue", own.dump()}};
    }
    if (!attributes.empty()) entry["MessageAttributes"] = attributes;
    if (batch[i].delay_seconds > 0) {
      entry["DelaySeconds"] = batch[i].delay_seconds;
    }
    if (fifo_) {
      entry["MessageGroupId"] = "cbpipe";
      if (!batch[i].dedup_id.empty()) {
        entry["MessageDeduplicationId"] = batch[i].dedup_id;
      } else if (!m.id.empty()) {  // a move or redrive
        entry["MessageDeduplicationId"] =
            m.id + "-" + std::to_string(Env::Default()->NowMs());
      }
    }
    entries.push_back(std::move(entry));
  }
  CBPIPE_ASSIGN_OR_RETURN(
      std::string out,
      Call("SendMessageBatch",
           json{{"QueueUrl", url}, {"Entries", entries}}.dump(), url));
  const json j = json::parse(out, nullptr, false);
  if (!j.is_object()) return InternalError("SQS SendMessageBatch: bad answer");
  if (j.contains("Failed") && !j["Failed"].empty()) {
    return EntryError(j["Failed"][0], "SQS SendMessageBatch " + url);
  }
  std::vector<std::string> got(batch.size());
  for (const json& ok : j.value("Successful", json::array())) {
    const size_t i = EntryIndex(ok);
    if (i < got.size()) got[i] = ok.value("MessageId", "");
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    // A redriven message keeps its id.
    if (!batch[i].message.id.empty()) got[i] = batch[i].message.id;
    if (got[i].empty()) {
      return InternalError("SQS SendMessageBatch: entry " + std::to_string(i) +
                           " missing from the answer");
    }
  }
  if (ids != nullptr) *ids = std::move(got);
  return OkStatus();
} catch (const json::exception& e) {
  return JsonError(e);
}

StatusOr<std::vector<std::string>> SqsQueue::SendBatch(
    const std::vector<OutgoingMessage>& messages) {
  CBPIPE_RETURN_IF_ERROR(ValidateSendBatch(messages));
  std::vector<Received> batch(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    Message& m = batch[i].message;
    m.body = messages[i].body;
    m.attributes = messages[i].attributes;
    if (m.attributes.count(kOwnAttribute) != 0) {
      return InvalidArgumentError(
          "SQS: the attribute name \"cbpipe\" is the adapter's");
    }
    batch[i].delay_seconds = CeilSeconds(messages[i].delay_ms);
    batch[i].dedup_id = messages[i].dedup_id;
  }
  std::vector<std::string> ids;
  CBPIPE_RETURN_IF_ERROR(SendRaw(url_, batch, &ids));
  return ids;
}

// -------------------------------------------------------------- receiving

StatusOr<std::vector<SqsQueue::Received>> SqsQueue::ReceiveFrom(
    const std::string& url, int max_messages, int64_t visibility_seconds,
    int64_t wait_seconds) try {
  const json request = {{"QueueUrl", url},
                        {"MaxNumberOfMessages", max_messages},
                        {"VisibilityTimeout", visibility_seconds},
                        {"WaitTimeSeconds", wait_seconds},
                        {"AttributeNames", {"All"}},
                        {"MessageSystemAttributeNames", {"All"}},
                        {"MessageAttributeNames", {"All"}}};
  CBPIPE_ASSIGN_OR_RETURN(std::string out,
                          Call("ReceiveMessage", request.dump(), url));
  const json j = json::parse(out, nullptr, false);
  if (!j.is_object()) return InternalError("SQS ReceiveMessage: bad answer");
  std::vector<Received> got;
  for (const json& sqs : j.value("Messages", json::array())) {
    Received r;
    Message& m = r.message;
    m.id = sqs.value("MessageId", "");
    m.receipt = sqs.value("ReceiptHandle", "");
    m.body = sqs.value("Body", "");
    const json attrs = sqs.value("Attributes", json::object());
    m.receive_count = static_cast<int>(ToInt(attrs, "ApproximateReceiveCount"));
    m.sent_at_ms = ToInt(attrs, "SentTimestamp");
    m.first_received_at_ms = ToInt(attrs, "ApproximateFirstReceiveTimestamp");
    json own = json::object();
    const json attributes = sqs.value("MessageAttributes", json::object());
    if (!attributes.is_object()) continue;
    for (const auto& [k, v] : attributes.items()) {
      std::string value = v.is_object() && v.contains("StringValue") &&
                                  v["StringValue"].is_string()
                              ? v["StringValue"].get<std::string>()
                              : "";
      if (k == kOwnAttribute) {
        own = json::parse(value, nullptr, false);
        if (!own.is_object()) own = json::object();
        continue;
      }
      m.attributes[k] = std::move(value);
    }
    if (own.value("encoding", "") == "base64") {
      CBPIPE_ASSIGN_OR_RETURN(m.body, Unbase64(m.body));
    }
    if (own.contains("id")) m.id = own.value("id", m.id);
    if (own.contains("sent_at")) m.sent_at_ms = ToInt(own, "sent_at");
    if (own.contains("reason")) {
      r.reason = own.value("reason", "");
      r.moved_at_ms = ToInt(own, "moved_at");
      // The count when moved; receives in the dead-letter queue (listings)
      // do not count.
      m.receive_count = static_cast<int>(ToInt(own, "receive_count"));
    }
    got.push_back(std::move(r));
  }
  return got;
} catch (const json::exception& e) {
  return JsonError(e);
}

StatusOr<std::vector<Message>> SqsQueue::Receive(int max_messages,
                                                 int64_t visibility_ms,
                                                 int64_t wait_ms) {
  CBPIPE_RETURN_IF_ERROR(ValidateReceive(max_messages, visibility_ms, wait_ms));
  CBPIPE_ASSIGN_OR_RETURN(
      std::vector<Received> got,
      ReceiveFrom(url_, max_messages, CeilSeconds(visibility_ms),
                  CeilSeconds(wait_ms)));
  std::vector<Message> out;
  out.reserve(got.size());
  for (Received& r : got) {
    Remember(r);
    out.push_back(std::move(r.message));
  }
  return out;
}

void SqsQueue::Remember(const Received& r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (in_flight_.emplace(r.message.receipt, r).second) {
    in_flight_order_.push_back(r.message.receipt);
  }
  while (in_flight_order_.size() > kMaxRemembered) {
    in_flight_.erase(in_flight_order_.front());
    in_flight_order_.pop_front();
  }
}

bool SqsQueue::Forget(std::string_view receipt, Received* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = in_flight_.find(receipt);
  if (it == in_flight_.end()) return false;
  if (out != nullptr) *out = std::move(it->second);
  in_flight_.erase(it);  // its order entry goes when it reaches the front
  return true;
}

// --------------------------------------------------- deleting, visibility

StatusOr<std::vector<Status>> SqsQueue::DeleteFrom(
    const std::string& url, const std::vector<std::string>& receipts) try {
  json entries = json::array();
  for (size_t i = 0; i < receipts.size(); ++i) {
    entries.push_back(
        {{"Id", std::to_string(i)}, {"ReceiptHandle", receipts[i]}});
  }
  CBPIPE_ASSIGN_OR_RETURN(
      std::string out,
      Call("DeleteMessageBatch",
           json{{"QueueUrl", url}, {"Entries", entries}}.dump(), url));
  const json j = json::parse(out, nullptr, false);
  if (!j.is_object()) {
    return InternalError("SQS DeleteMessageBatch: bad answer");
  }
  std::vector<Status> results(receipts.size(), OkStatus());
  for (const json& failed : j.value("Failed", json::array())) {
    const size_t i = EntryIndex(failed);
    if (i < results.size()) {
      results[i] = EntryError(failed, "SQS DeleteMessage " + url);
    }
  }
  return results;
} catch (const json::exception& e) {
  return JsonError(e);
}

StatusOr<std::vector<Status>> SqsQueue::DeleteBatch(
    const std::vector<std::string>& receipts) {
  CBPIPE_RETURN_IF_ERROR(ValidateDeleteBatch(receipts));
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Status> results,
                          DeleteFrom(url_, receipts));
  for (size_t i = 0; i < receipts.size(); ++i) {
    if (results[i].ok()) Forget(receipts[i], nullptr);
  }
  return results;
}

Status SqsQueue::ChangeVisibility(std::string_view receipt,
                                  int64_t visibility_ms) {
  CBPIPE_RETURN_IF_ERROR(CheckReceipt(receipt));
  CBPIPE_RETURN_IF_ERROR(CheckVisibility(visibility_ms));
  AwsError error;
  auto out = Call("ChangeMessageVisibility",
                  json{{"QueueUrl", url_},
                       {"ReceiptHandle", std::string(receipt)},
                       {"VisibilityTimeout", CeilSeconds(visibility_ms)}}
                      .dump(),
                  url_, &error);
  if (out.ok()) return OkStatus();
  if (error.code == "ReceiptHandleIsInvalid") {
    return NotFoundError(out.status().message());
  }
  if (error.code == "MessageNotInflight") {
    return FailedPreconditionError(out.status().message());
  }
  return out.status();
}

// ----------------------------------------------------------- dead letters

Status SqsQueue::RequireDeadLetterQueue() const {
  if (dlq_url_.empty()) {
    return FailedPreconditionError("SQS queue " + name_ +
                                   " has no RedrivePolicy (no dead letters)");
  }
  return OkStatus();
}

Status SqsQueue::MoveToDeadLetter(std::string_view receipt,
                                  std::string_view reason) {
  CBPIPE_RETURN_IF_ERROR(CheckReceipt(receipt));
  CBPIPE_RETURN_IF_ERROR(RequireDeadLetterQueue());
  Received r;
  if (!Forget(receipt, &r)) {
    return FailedPreconditionError(
        "SQS: MoveToDeadLetter needs a message received through this queue "
        "instance");
  }
  const std::string source_receipt = r.message.receipt;
  r.message.receipt.clear();
  r.reason = reason.empty() ? "moved" : std::string(reason);
  r.moved_at_ms = Env::Default()->NowMs();
  // Send first: a crash in between leaves a copy in both queues, never none.
  Status sent = SendRaw(dlq_url_, {r}, nullptr);
  if (!sent.ok()) {
    r.message.receipt = source_receipt;
    Remember(r);
    return sent;
  }
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Status> deleted,
                          DeleteFrom(url_, {source_receipt}));
  return deleted[0];
}

StatusOr<std::map<std::string, int64_t>> SqsQueue::Counts(
    const std::string& url) try {
  CBPIPE_ASSIGN_OR_RETURN(std::string out,
                          Call("GetQueueAttributes",
                               json{{"QueueUrl", url},
                                    {"AttributeNames",
                                     {"ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible",
                                      "ApproximateNumberOfMessagesDelayed"}}}
                                   .dump(),
                               url));
  const json j = json::parse(out, nullptr, false);
  const json a =
      j.is_object() ? j.value("Attributes", json::object()) : json::object();
  return std::map<std::string, int64_t>{
      {"visible", ToInt(a, "ApproximateNumberOfMessages")},
      {"in_flight", ToInt(a, "ApproximateNumberOfMessagesNotVisible")},
      {"delayed", ToInt(a, "ApproximateNumberOfMessagesDelayed")}};
} catch (const json::exception& e) {
  return JsonError(e);
}

StatusOr<QueueStats> SqsQueue::Stats() {
  CBPIPE_ASSIGN_OR_RETURN(auto counts, Counts(url_));
  QueueStats stats;
  stats.visible = counts["visible"];
  stats.in_flight = counts["in_flight"];
  stats.delayed = counts["delayed"];
  if (!dlq_url_.empty()) {
    CBPIPE_ASSIGN_OR_RETURN(auto dead, Counts(dlq_url_));
    stats.dead_letters = dead["visible"] + dead["in_flight"] + dead["delayed"];
  }
  return stats;
}

StatusOr<int64_t> SqsQueue::Purge() {
  CBPIPE_ASSIGN_OR_RETURN(auto counts, Counts(url_));
  CBPIPE_RETURN_IF_ERROR(
      Call("PurgeQueue", json{{"QueueUrl", url_}}.dump(), url_).status());
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.clear();
    in_flight_order_.clear();
  }
  return counts["visible"] + counts["in_flight"] + counts["delayed"];
}

StatusOr<std::vector<SqsQueue::Received>> SqsQueue::CollectDeadLetters() {
  CBPIPE_RETURN_IF_ERROR(RequireDeadLetterQueue());
  std::vector<Received> held;
  for (;;) {
    // A 1 s long poll: a short poll of real SQS samples only some servers
    // and may answer empty while messages remain.
    auto got = ReceiveFrom(dlq_url_, kMaxReceiveMessages,
                           kScanVisibilitySeconds, /*wait_seconds=*/1);
    if (!got.ok()) {
      Release(held);
      return got.status();
    }
    if (got->empty() || held.size() >= kMaxScanned) break;
    for (Received& r : *got) held.push_back(std::move(r));
  }
  std::sort(held.begin(), held.end(), [](const Received& a, const Received& b) {
    return a.message.id < b.message.id;
  });
  return held;
}

void SqsQueue::Release(const std::vector<Received>& held) {
  for (size_t i = 0; i < held.size(); i += kMaxBatchEntries) {
    json entries = json::array();
    for (size_t k = i; k < std::min(held.size(), i + kMaxBatchEntries); ++k) {
      entries.push_back({{"Id", std::to_string(k - i)},
                         {"ReceiptHandle", held[k].message.receipt},
                         {"VisibilityTimeout", 0}});
    }
    // Best effort: a message not released shows again after 30 s.
    (void)Call("ChangeMessageVisibilityBatch",
               json{{"QueueUrl", dlq_url_}, {"Entries", entries}}.dump(),
               dlq_url_);
  }
}

namespace {

DeadLetter ToDeadLetter(const SqsQueue::Received& r, int max_receive_count) {
  DeadLetter d;
  d.message = r.message;
  d.message.receipt.clear();
  d.reason = r.reason;
  d.moved_at_ms = r.moved_at_ms;
  if (d.reason.empty()) {
    // Moved by SQS's RedrivePolicy.
    d.reason =
        "max_receive_count " + std::to_string(max_receive_count) + " exceeded";
  }
  return d;
}

}  // namespace

StatusOr<std::vector<DeadLetter>> SqsQueue::ListDeadLetters(
    int limit, std::string_view after_id) {
  if (limit < 1 || limit > 1000) {
    return InvalidArgumentError("queue: limit out of range: " +
                                std::to_string(limit));
  }
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Received> held, CollectDeadLetters());
  Release(held);
  std::vector<DeadLetter> out;
  for (const Received& r : held) {
    if (!after_id.empty() && r.message.id <= after_id) continue;
    if (out.size() >= static_cast<size_t>(limit)) break;
    out.push_back(ToDeadLetter(r, max_receive_count_));
  }
  return out;
}

StatusOr<DeadLetter> SqsQueue::GetDeadLetter(std::string_view id) {
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Received> held, CollectDeadLetters());
  Release(held);
  for (const Received& r : held) {
    if (r.message.id == id) return ToDeadLetter(r, max_receive_count_);
  }
  return NotFoundError("SQS: no dead letter " + std::string(id));
}

Status SqsQueue::Redrive(std::string_view dead_letter_id) {
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Received> held, CollectDeadLetters());
  auto it = std::find_if(held.begin(), held.end(), [&](const Received& r) {
    return r.message.id == dead_letter_id;
  });
  if (it == held.end()) {
    Release(held);
    return NotFoundError("SQS: no dead letter " + std::string(dead_letter_id));
  }
  Received back = *it;
  held.erase(it);
  Release(held);
  const std::string dlq_receipt = back.message.receipt;
  back.message.receipt.clear();
  back.message.receive_count = 0;
  back.reason.clear();
  CBPIPE_RETURN_IF_ERROR(SendRaw(url_, {back}, nullptr));
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Status> deleted,
                          DeleteFrom(dlq_url_, {dlq_receipt}));
  return deleted[0];
}

StatusOr<int64_t> SqsQueue::RedriveAll() {
  CBPIPE_RETURN_IF_ERROR(RequireDeadLetterQueue());
  int64_t moved = 0;
  for (;;) {
    CBPIPE_ASSIGN_OR_RETURN(
        std::vector<Received> got,
        ReceiveFrom(dlq_url_, kMaxReceiveMessages, kScanVisibilitySeconds, 1));
    if (got.empty()) break;
    std::sort(got.begin(), got.end(), [](const Received& a, const Received& b) {
      return a.message.sent_at_ms < b.message.sent_at_ms;
    });
    std::vector<std::string> receipts;
    for (Received& r : got) {
      receipts.push_back(r.message.receipt);
      r.message.receipt.clear();
      r.message.receive_count = 0;
      r.reason.clear();
    }
    CBPIPE_RETURN_IF_ERROR(SendRaw(url_, got, nullptr));
    CBPIPE_ASSIGN_OR_RETURN(std::vector<Status> deleted,
                            DeleteFrom(dlq_url_, receipts));
    for (const Status& st : deleted) CBPIPE_RETURN_IF_ERROR(st);
    moved += static_cast<int64_t>(got.size());
  }
  return moved;
}

StatusOr<int64_t> SqsQueue::PurgeDeadLetters() {
  CBPIPE_RETURN_IF_ERROR(RequireDeadLetterQueue());
  CBPIPE_ASSIGN_OR_RETURN(auto counts, Counts(dlq_url_));
  CBPIPE_RETURN_IF_ERROR(
      Call("PurgeQueue", json{{"QueueUrl", dlq_url_}}.dump(), dlq_url_)
          .status());
  return counts["visible"] + counts["in_flight"] + counts["delayed"];
}

}  // namespace cbpipe
