// Inputs from S3 events: reads the body of an SQS message carrying S3
// object notifications, in any of the forms S3 delivers them:
//
//   - an S3 event notification ({"Records":[{"eventSource":"aws:s3",
//     "eventName":"ObjectCreated:Put","s3":{"bucket":{"name":...},
//     "object":{"key":...,"size":...}}}]}), sent to SQS directly or
//     wrapped in an SNS notification ({"Type":"Notification",
//     "Message":"<the same JSON>"});
//   - the EventBridge form ({"source":"aws.s3","detail-type":
//     "Object Created","detail":{"bucket":{"name":...},"object":{...}}});
//   - the s3:TestEvent S3 sends when a notification is configured.
//
//   CBPIPE_ASSIGN_OR_RETURN(S3EventBatch batch, ParseS3Events(m.body));
//   for (const S3ObjectRef& o : batch.created) Ingest(o.bucket, o.key);
//   for (const std::string& why : batch.ignored) LOG(INFO) << why;
//
// Keys arrive URL-encoded as S3 sends them ('+' for a space, %XX for other
// bytes, so "raw/visa file é.csv" is "raw/visa+file+%C3%A9.csv"); they are
// returned decoded. Events other than ObjectCreated:* (deletes, restores,
// ...) are not inputs: they are listed in `ignored` with their name, for a
// log line. Pure: no I/O; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cbpipe {

struct S3ObjectRef {
  std::string bucket;
  std::string key;         // decoded
  int64_t size = -1;       // -1 when the event did not say
  std::string etag;        // "" when absent
  std::string event_name;  // "ObjectCreated:Put"; EventBridge: "Object Created"
};

struct S3EventBatch {
  std::vector<S3ObjectRef> created;  // in the order of the records
  // One line per record that is not an input ("s3:ObjectRemoved:Delete
  // bucket/key ignored").
  std::vector<std::string> ignored;
  bool test_event = false;  // an s3:TestEvent: nothing to do
};

// kInvalidArgument when `body` is not JSON or not an S3 event in a known
// form, or a key's escapes are malformed (the message says which record;
// the message body may be dead-lettered).
StatusOr<S3EventBatch> ParseS3Events(std::string_view body);

// "a+b%C3%A9" -> "a bé"; false on a malformed escape.
bool DecodeS3EventKey(std::string_view encoded, std::string* decoded);

}  // namespace cbpipe
