// Re-reads a generated batch from disk and checks it against its manifest
// before anything is delivered (DESIGN.md §4).
//
//   CBPIPE_ASSIGN_OR_RETURN(Batch batch, ReadManifest(manifest_path));
//   Status verified = VerifyBatch(batch, options);  // output/options.h
//   if (!verified.ok()) ...kDataLoss: do not deliver; the message names the
//                         file, the row and what differs...
#pragma once

#include "common/status.h"
#include "output/batch_planner.h"
#include "output/options.h"

namespace cbpipe {

// For each file of `batch`, reading it once:
//  - well-formed CSV for its layout (StrictCsvParser: delimiter, line ending,
//    quoting), with the layout's column count on every row (header, data,
//    trailer) and the layout's header cells;
//  - the number of data rows equals the manifest's record count;
//  - per-currency totals recomputed from the layout's amount and currency
//    columns equal the manifest's, and the trailer's (count and totals) when
//    the layout has one. A layout without an amount or currency column
//    cannot be recomputed: its trailer totals are compared with the
//    manifest's instead (without a trailer either, the SHA-256 is what
//    guards the amounts);
//  - the size in bytes and the SHA-256 equal the manifest's.
// Also: the manifest on disk (batch.manifest_path, when set) describes the
// same files as `batch`, and each file's layout (found by the name the
// manifest records, in `options`) has the manifest's column count and
// trailer kind.
// Any mismatch is kDataLoss naming the file, the row and what differs;
// kNotFound when the layout no longer exists; I/O errors as such.
Status VerifyBatch(const Batch& batch, const OutputOptions& options);

// The check for one file, given its layout.
Status VerifyFile(const FileSummary& file, const Layout& layout);

}  // namespace cbpipe
