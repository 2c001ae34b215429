#include "notify/sns_notifier.h"

#include <utility>

#include "notify/async_sender.h"

namespace cbpipe {
namespace {

constexpr std::string_view kSnsVersion = "2010-03-31";

void AddAttribute(AwsHeaderList& params, int& n, std::string_view name,
                  std::string_view value) {
  if (value.empty()) return;  // SNS refuses an empty String attribute
  const std::string prefix = "MessageAttributes.entry." + std::to_string(++n);
  params.emplace_back(prefix + ".Name", std::string(name));
  params.emplace_back(prefix + ".Value.DataType", "String");
  params.emplace_back(prefix + ".Value.StringValue", std::string(value));
}

}  // namespace

bool IsAlertEvent(std::string_view type) {
  return type == kEventBatchFailed || type == kEventDeliveryFailed ||
         type == kEventDeadletterAdded;
}

Status ValidateSnsTopicArn(std::string_view arn) {
  // arn:aws:sns:eu-west-1:123456789012:name
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (int i = 0; i < 5; ++i) {
    const size_t colon = arn.find(':', start);
    if (colon == std::string_view::npos) break;
    parts.push_back(arn.substr(start, colon - start));
    start = colon + 1;
  }
  const std::string_view name =
      parts.size() == 5 ? arn.substr(start) : std::string_view();
  if (parts.size() != 5 || parts[0] != "arn" || parts[1].empty() ||
      parts[2] != "sns" || parts[3].empty() || parts[4].empty() ||
      name.empty() || name.find(':') != std::string_view::npos) {
    return InvalidArgumentError(
        "SNS topic " + std::string(arn) +
        ": not a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)");
  }
  return OkStatus();
}

AwsHeaderList SnsPublishParams(
    const Event& event, std::string_view topic_arn,
    const std::map<std::string, std::string>& networks) {
  AwsHeaderList params;
  params.emplace_back("TopicArn", std::string(topic_arn));
  params.emplace_back("Message", EventJson(event));
  params.emplace_back("Subject", "cbpipe " + event.type);
  int n = 0;
  AddAttribute(params, n, "event_type", event.type);
  AddAttribute(params, n, "destination", event.destination);
  auto network = networks.find(event.destination);
  if (network != networks.end()) {
    AddAttribute(params, n, "network", network->second);
  }
  return params;
}

StatusOr<std::unique_ptr<SnsNotifier>> SnsNotifier::Create(
    SnsOptions options, std::shared_ptr<AwsClient> aws) {
  if (aws == nullptr) return InvalidArgumentError("SNS notifier: no client");
  if (options.topic_arn.empty()) {
    return InvalidArgumentError("SNS notifier: topic_arn is required");
  }
  CBPIPE_RETURN_IF_ERROR(ValidateSnsTopicArn(options.topic_arn));
  if (!options.alert_topic_arn.empty()) {
    CBPIPE_RETURN_IF_ERROR(ValidateSnsTopicArn(options.alert_topic_arn));
  }
  return std::unique_ptr<SnsNotifier>(
      new SnsNotifier(std::move(options), std::move(aws)));
}

SnsNotifier::SnsNotifier(SnsOptions options, std::shared_ptr<AwsClient> aws)
    : options_(std::move(options)), aws_(std::move(aws)) {
  auto sender = [this](const std::string& topic) {
    AsyncSenderOptions so;
    so.name = "sns " + topic;
    so.retry.max_attempts = 1;  // the AwsClient retries
    so.queue_capacity = options_.queue_capacity;
    so.log = options_.log;
    return std::make_unique<AsyncSender>(
        std::move(so),
        [this, topic](const Event& e, std::string_view, const CancelFlag&) {
          return PublishOnce(e, topic);
        });
  };
  events_ = sender(options_.topic_arn);
  if (!options_.alert_topic_arn.empty()) {
    alerts_ = sender(options_.alert_topic_arn);
  }
}

SnsNotifier::~SnsNotifier() {
  alerts_.reset();
  events_.reset();
}

void SnsNotifier::Notify(const Event& event) {
  events_->Enqueue(event);
  if (alerts_ && IsAlertEvent(event.type)) alerts_->Enqueue(event);
}

Status SnsNotifier::Flush(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Status first = events_->Flush(timeout);
  if (alerts_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    Status st = alerts_->Flush(std::max(left, std::chrono::milliseconds(0)));
    if (first.ok()) first = st;
  }
  return first;
}

NotifierStats SnsNotifier::stats() const {
  NotifierStats total = events_->stats();
  if (alerts_) {
    NotifierStats a = alerts_->stats();
    total.accepted += a.accepted;
    total.delivered += a.delivered;
    total.failed += a.failed;
    total.dropped += a.dropped;
    total.attempts += a.attempts;
    total.queued += a.queued;
  }
  return total;
}

Status SnsNotifier::PublishOnce(const Event& event,
                                const std::string& topic_arn) {
  StatusOr<std::string> answer = aws_->CallQuery(
      "sns", "Publish", kSnsVersion,
      SnsPublishParams(event, topic_arn, options_.networks), topic_arn);
  return answer.status();
}

}  // namespace cbpipe
