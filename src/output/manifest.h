// manifest.json: what a batch folder holds, written by the planner and read
// back by the verifier and the delivery step.
//
//   CBPIPE_ASSIGN_OR_RETURN(Batch batch,
//                           ReadManifest("/w/batches/in1-b001/manifest.json"));
//
// Format (version 1), keys sorted, no timestamps so that the same input gives
// the same bytes:
//   {"batch_id": "in1-b001", "files": [{"bytes": 1234, "columns": 10,
//    "destination": "visa", "file_seq": 1, "layout": "visa", "name": "...",
//    "network": "visa", "records": 10, "sha256": "<hex>",
//    "totals": {"USD": 12345}, "trailer": "none"}], "input_id": "in1",
//    "seq": 1, "version": 1}
// Totals are integer minor units, never decimals.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "output/batch_planner.h"

namespace cbpipe {

inline constexpr std::string_view kManifestFileName = "manifest.json";

std::string ManifestJson(const Batch& batch);
// Writes ManifestJson(batch) to `path` and fsyncs it.
Status WriteManifest(const Batch& batch, const std::string& path);

// Parses a manifest. `dir` is the batch folder: Batch::dir, and each file's
// path is dir/name. kDataLoss for malformed JSON, a missing or mistyped key,
// an unknown version, a file name that is not a plain name (a manifest must
// not point outside its folder).
StatusOr<Batch> ParseManifest(std::string_view json, const std::string& dir);
// Reads `path` and parses it with its folder as `dir`. kNotFound when the
// file does not exist.
StatusOr<Batch> ReadManifest(const std::string& path);

}  // namespace cbpipe
