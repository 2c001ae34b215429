#include "workflow/s3_events.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "common/url.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

std::string Text(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t Size(const json& object) {
  auto it = object.find("size");
  if (it == object.end()) return -1;
  if (it->is_number_integer()) return it->get<int64_t>();
  return -1;
}

const json& Member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

Status AddObject(const json& bucket, const json& object, std::string event_name,
                 bool created, size_t record, S3EventBatch* out) {
  S3ObjectRef ref;
  ref.bucket = Text(bucket, "name");
  const std::string encoded = Text(object, "key");
  if (ref.bucket.empty() || encoded.empty()) {
    return InvalidArgumentError("S3 event record " + std::to_string(record) +
                                ": no bucket name or object key");
  }
  if (!DecodeS3EventKey(encoded, &ref.key)) {
    return InvalidArgumentError("S3 event record " + std::to_string(record) +
                                ": malformed key escape");
  }
  if (!created) {
    out->ignored.push_back(event_name + " " + ref.bucket + "/" + ref.key +
                           " ignored: not an ObjectCreated event");
    return OkStatus();
  }
  ref.size = Size(object);
  ref.etag = Text(object, "eTag");
  if (ref.etag.empty()) ref.etag = Text(object, "etag");
  ref.event_name = std::move(event_name);
  out->created.push_back(std::move(ref));
  return OkStatus();
}

StatusOr<S3EventBatch> ParseJson(const json& j, int depth) {
  S3EventBatch out;
  if (!j.is_object()) {
    return InvalidArgumentError("S3 event: not a JSON object");
  }
  if (Text(j, "Event") == "s3:TestEvent") {
    out.test_event = true;
    return out;
  }
  // SNS around the S3 notification.
  if (Text(j, "Type") == "Notification" && j.contains("Message") &&
      depth == 0) {
    const json inner = json::parse(Text(j, "Message"), nullptr, false);
    return ParseJson(inner, depth + 1);
  }
  if (j.contains("Records")) {
    const json& records = j["Records"];
    if (!records.is_array()) {
      return InvalidArgumentError("S3 event: Records is not an array");
    }
    for (size_t i = 0; i < records.size(); ++i) {
      const json& r = records[i];
      const std::string source = Text(r, "eventSource");
      if (source != "aws:s3") {
        return InvalidArgumentError("S3 event record " + std::to_string(i) +
                                    ": eventSource \"" + source +
                                    "\" is not aws:s3");
      }
      const std::string name = Text(r, "eventName");
      const json& s3 = Member(r, "s3");
      CBPIPE_RETURN_IF_ERROR(
          AddObject(Member(s3, "bucket"), Member(s3, "object"), "s3:" + name,
                    name.starts_with("ObjectCreated:"), i, &out));
    }
    return out;
  }
  if (Text(j, "source") == "aws.s3" && j.contains("detail")) {
    const std::string type = Text(j, "detail-type");
    const json& detail = j["detail"];
    CBPIPE_RETURN_IF_ERROR(AddObject(Member(detail, "bucket"),
                                     Member(detail, "object"), type,
                                     type == "Object Created", 0, &out));
    return out;
  }
  return InvalidArgumentError(
      "S3 event: neither an S3 notification (Records), an EventBridge event "
      "(source aws.s3) nor an s3:TestEvent");
}

}  // namespace

bool DecodeS3EventKey(std::string_view encoded, std::string* decoded) {
  return PercentDecode(encoded, decoded, /*plus_is_space=*/true);
}

StatusOr<S3EventBatch> ParseS3Events(std::string_view body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return InvalidArgumentError("S3 event: not JSON");
  try {
    return ParseJson(j, 0);
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("S3 event: ") + e.what());
  }
}

}  // namespace cbpipe
