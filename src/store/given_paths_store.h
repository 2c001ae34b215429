// A read-only ObjectStore over the paths a command was given, so that
// `cbpipe run a.csv /in/b.json -` hands its inputs to the workflow's steps
// as they are, without copying them anywhere first.
//
//   GivenPathsStore inputs;
//   inputs.Add("/in/b.json");  // and "-" for standard input
//   StatusOr<std::string> path = inputs.LocalPath("/in/b.json");
//
// Contract (what it supports, departing from object_store.h where said):
// - Keys are the paths exactly as given (relative, absolute, or "-"), not
//   checked against the key rules; only keys given to Add exist, anything
//   else is kNotFound.
// - LocalPath returns the key itself: the file, or "-" for standard input,
//   which the readers (ingest/reader.h) take as stdin.
// - Get reads the file (for "-": standard input, from where it is now);
//   Head stats the file ("-": kNotFound, its size is unknown); List gives
//   the given keys with the prefix, sorted.
// - Put, Delete and PutContentAddressed are kPermissionDenied: the inputs
//   are the user's and never written. RemoveStaleTemporaries removes
//   nothing.
// Errors: kNotFound for a key not given or a file that is gone; kUnavailable
// for an I/O error while reading. Thread safety: every method may be called
// from several threads at once (Add included).
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "store/object_store.h"

namespace cbpipe {

class GivenPathsStore : public ObjectStore {
 public:
  // Makes `path` a key of the store.
  void Add(const std::string& path);

  StatusOr<std::unique_ptr<ObjectReader>> Get(const std::string& key) override;
  StatusOr<std::unique_ptr<ObjectWriter>> Put(const std::string& key) override;
  StatusOr<ObjectInfo> Head(const std::string& key) override;
  Status Delete(const std::string& key) override;
  StatusOr<std::vector<std::string>> List(const std::string& prefix) override;
  StatusOr<StoredObject> PutContentAddressed(const std::string& prefix,
                                             int fd) override;
  StatusOr<std::string> LocalPath(const std::string& key) override;
  StatusOr<int> RemoveStaleTemporaries() override { return 0; }
  std::string Describe() const override { return "the given input paths"; }

 private:
  Status Given(const std::string& key);

  std::mutex mu_;
  std::set<std::string> paths_;
};

}  // namespace cbpipe
