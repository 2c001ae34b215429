// SNS adapter: publishes each event to an SNS topic, and the alerts among
// them (a batch or delivery that failed, a dead letter) to a second topic,
// so people can subscribe to the alerts alone.
//
//   SnsOptions o;
//   o.topic_arn = "arn:aws:sns:eu-west-1:123456789012:cbpipe-events";
//   o.alert_topic_arn = "arn:aws:sns:eu-west-1:123456789012:cbpipe-alerts";
//   o.networks = {{"visa_sftp", "visa"}};  // destination -> network
//   auto n = SnsNotifier::Create(o, aws);   // aws: a shared AwsClient
//   if (!n.ok()) return n.status();          // a malformed topic ARN
//   (*n)->Notify(event);                     // queued; one background thread
//
// Each Publish (Query protocol, 2010-03-31):
//   Message = EventJson(event): the webhook's body, byte for byte
//   MessageAttributes (String, for subscription filter policies; one left
//   out when its value is empty):
//     event_type   event.type ("batch.delivered")
//     destination  event.destination
//     network      options.networks[event.destination] ("visa")
//   Subject = "cbpipe " + event.type
// The events topic gets every event; the alert topic (when set) gets the
// events IsAlertEvent says are alerts, and only those.
//
// Retries: the AwsClient's (throttling, 5xx, connection failures, with
// backoff; aws/client.h), so the sender makes one attempt per topic and
// event. A topic that does not exist, or a denied Publish, is given up at
// once (logged through options.log, counted in stats().failed). Delivery
// is at least once. Events never hold a PAN (EventJson masks messages).
//
// Thread safety: as every Notifier. Ownership: shares the client.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "aws/client.h"
#include "common/status.h"
#include "notify/notifier.h"

namespace cbpipe {

class AsyncSender;

struct SnsOptions {
  std::string topic_arn;        // every event; required
  std::string alert_topic_arn;  // alerts only; "" = none
  // Destination name -> network name, for the `network` attribute.
  std::map<std::string, std::string> networks;
  size_t queue_capacity = 1000;  // full: the oldest queued event is dropped
  // Diagnostics (give-ups, drops). Called on the delivery thread.
  std::function<void(std::string_view)> log;
};

// batch.failed, delivery.failed and deadletter.added: what goes to the
// alert topic.
bool IsAlertEvent(std::string_view type);

// kInvalidArgument unless `arn` looks like arn:PARTITION:sns:REGION:ACCOUNT:NAME.
Status ValidateSnsTopicArn(std::string_view arn);

// The Publish parameters of `event` to `topic_arn` (for tests and docs).
AwsHeaderList SnsPublishParams(const Event& event, std::string_view topic_arn,
                               const std::map<std::string, std::string>&
                                   networks);

class SnsNotifier : public Notifier {
 public:
  static StatusOr<std::unique_ptr<SnsNotifier>> Create(
      SnsOptions options, std::shared_ptr<AwsClient> aws);
  // Stops: queued events are dropped (counted), a Publish in flight ends
  // within the client's timeouts. Flush() first to deliver them.
  ~SnsNotifier() override;

  void Notify(const Event& event) override;
  Status Flush(std::chrono::milliseconds timeout) override;
  // Counts events per topic: an alert sent to both topics counts twice.
  NotifierStats stats() const;

 private:
  SnsNotifier(SnsOptions options, std::shared_ptr<AwsClient> aws);
  Status PublishOnce(const Event& event, const std::string& topic_arn);

  const SnsOptions options_;
  const std::shared_ptr<AwsClient> aws_;
  std::unique_ptr<AsyncSender> events_;  // last: their threads use the above
  std::unique_ptr<AsyncSender> alerts_;
};

}  // namespace cbpipe
