// Constructors of the concrete readers behind OpenReader. Internal to ingest/.
#pragma once

#include <memory>

#include "common/status.h"
#include "ingest/input_buffer.h"
#include "ingest/reader.h"

namespace cbpipe::ingest_internal {

// Off: CSV readers opened afterwards parse every row with the reference
// parser alone, not its 64-byte fast path. For the tests and the fuzzer
// that compare the two; not thread-safe.
void SetCsvFastPathForTest(bool enabled);

// Reads the header row at once, so a header problem fails here.
StatusOr<std::unique_ptr<RecordReader>> MakeCsvReader(
    std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
    const ReaderLimits& limits);

std::unique_ptr<RecordReader> MakeJsonLinesReader(
    std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
    const ReaderLimits& limits);

std::unique_ptr<RecordReader> MakeJsonArrayReader(
    std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
    const ReaderLimits& limits);

}  // namespace cbpipe::ingest_internal
