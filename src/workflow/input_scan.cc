#include "workflow/input_scan.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace cbpipe {
namespace {

// Reading and validating run on a thread of their own, ahead of `accept`
// (routing, formatting, writing), which runs on the caller's thread: the two
// halves cost about the same, so on two cores the scan takes about half the
// time. They hand records over in chunks, to keep the locking rare, and only
// a few chunks exist, allocated once and reused, so memory stays flat
// whatever the size of the input.
//
// The duplicate-case check runs on the caller's thread, a chunk at a time:
// every lookup in the set of ids seen is a cache miss, and with a chunk's
// ids known up front the loads are started well ahead of their use. It
// also takes a sixth of the work off the reading thread, the slower half.
constexpr size_t kPrefetchAhead = 16;
constexpr size_t kChunkRecords = 1024;
constexpr size_t kChunks = 4;

struct Chunk {
  struct Item {
    bool valid = false;        // the validator accepted records[i] (so far)
    DuplicateCheck duplicate;  // left to the consumer, in input order
    // This record's validation errors: errors[first_error, end_error).
    uint32_t first_error = 0, end_error = 0;
    uint64_t bytes_read = 0;  // reader position after the record
  };
  // Slot i belongs to items[i]; the validator fills it in place, so the
  // strings of a slot keep their capacity from one chunk to the next.
  std::vector<Record> records = std::vector<Record>(kChunkRecords);
  std::vector<Item> items;
  std::vector<RecordError> errors;
  bool last = false;        // the reader is done after these items
  Status read_error;        // why, when it failed (last only)
  uint64_t bytes_read = 0;  // reader position at the end (last only)
};

// Chunks go round: free -> (reader fills) -> full -> (caller drains) -> free.
class ChunkQueue {
 public:
  ChunkQueue() {
    for (Chunk& chunk : chunks_) free_.push_back(&chunk);
  }

  // nullptr once the consumer has stopped.
  Chunk* TakeFree() {
    std::unique_lock lock(mu_);
    free_cv_.wait(lock, [&] { return stopped_ || !free_.empty(); });
    if (stopped_) return nullptr;
    Chunk* chunk = free_.front();
    free_.pop_front();
    return chunk;
  }
  void PutFull(Chunk* chunk) {
    {
      std::lock_guard lock(mu_);
      full_.push_back(chunk);
    }
    full_cv_.notify_one();
  }
  Chunk* TakeFull() {
    std::unique_lock lock(mu_);
    full_cv_.wait(lock, [&] { return !full_.empty(); });
    Chunk* chunk = full_.front();
    full_.pop_front();
    return chunk;
  }
  void PutFree(Chunk* chunk) {
    {
      std::lock_guard lock(mu_);
      free_.push_back(chunk);
    }
    free_cv_.notify_one();
  }
  // The consumer gives up early (an accept or reject failure): the reader
  // stops at its next chunk.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    free_cv_.notify_one();
  }

 private:
  std::array<Chunk, kChunks> chunks_;
  std::mutex mu_;
  std::condition_variable free_cv_, full_cv_;
  std::deque<Chunk*> free_, full_;
  bool stopped_ = false;
};

void ReadAndValidate(RecordReader& reader, Validator& validator,
                     ChunkQueue& queue) {
  RawRecord raw;
  while (Chunk* chunk = queue.TakeFree()) {
    chunk->items.clear();
    chunk->errors.clear();
    while (chunk->items.size() < kChunkRecords) {
      StatusOr<bool> more = reader.Next(&raw);
      if (!more.ok() || !*more) {
        chunk->last = true;
        chunk->read_error = more.status();
        chunk->bytes_read = reader.bytes_read();
        break;
      }
      Chunk::Item& item = chunk->items.emplace_back();
      item.first_error = static_cast<uint32_t>(chunk->errors.size());
      item.valid = validator.ValidateAllButDuplicate(
          raw, &chunk->records[chunk->items.size() - 1], &chunk->errors,
          &item.duplicate);
      item.end_error = static_cast<uint32_t>(chunk->errors.size());
      item.bytes_read = reader.bytes_read();
    }
    const bool last = chunk->last;
    queue.PutFull(chunk);
    if (last) return;
  }
}

// Bytes in `path` when it is a plain (not gzip) regular file, else 0: with
// the first chunk's bytes per record, how many records to expect.
uint64_t PlainInputSize(const std::string& path) {
  if (path == "-") return 0;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  unsigned char magic[2] = {0, 0};
  const bool plain =
      ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      !(::pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b);
  ::close(fd);
  return plain ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

void ScanInput(const std::string& path, const Config& config,
               int64_t now_epoch_seconds, size_t keep_errors,
               const AcceptFn& accept, const RejectFn& reject,
               InputScan* scan) {
  StatusOr<std::unique_ptr<RecordReader>> opened =
      OpenReader(path, config.format, config.mapping, config.reader_limits);
  if (!opened.ok()) {
    scan->input_error = opened.status();
    return;
  }
  RecordReader& reader = **opened;
  scan->format_name = std::string(InputFormatName(reader.format()));

  ValidatorOptions options;
  options.pan_policy = config.pan_policy;
  options.extra_date_formats = config.date_formats;
  options.now_epoch_seconds = now_epoch_seconds;
  Validator validator(std::move(options));

  ChunkQueue queue;
  std::thread reading([&reader, &validator, &queue] {
    ReadAndValidate(reader, validator, queue);
  });
  // Ends the reading thread on every way out of the loop below.
  struct StopOnExit {
    ChunkQueue& queue;
    std::thread& thread;
    ~StopOnExit() {
      queue.Stop();
      thread.join();
    }
  } stop_on_exit{queue, reading};

  std::vector<RecordError> errors;
  DuplicateSet seen;
  const uint64_t input_size = PlainInputSize(path);
  while (true) {
    Chunk* chunk = queue.TakeFull();
    const size_t count = chunk->items.size();
    if (scan->records == 0 && count > 0 && !chunk->last && input_size > 0) {
      // Records to expect, from the first chunk's bytes per record (the
      // set takes up to 1.28 times its hint before it changes tables).
      const uint64_t per_record =
          std::max<uint64_t>(1, chunk->items.back().bytes_read / count);
      seen.Reserve(static_cast<size_t>(input_size / per_record));
    }
    for (size_t i = 0; i < std::min(count, kPrefetchAhead); ++i) {
      seen.Prefetch(chunk->items[i].duplicate.fingerprint);
    }
    for (size_t i = 0; i < count; ++i) {
      if (i + kPrefetchAhead < count) {
        seen.Prefetch(chunk->items[i + kPrefetchAhead].duplicate.fingerprint);
      }
      const Chunk::Item& item = chunk->items[i];
      const Record& record = chunk->records[i];
      ++scan->records;
      errors.assign(
          std::make_move_iterator(chunk->errors.begin() + item.first_error),
          std::make_move_iterator(chunk->errors.begin() + item.end_error));
      const bool unique =
          CheckDuplicate(item.duplicate, record, &seen, &errors);
      if (item.valid && unique) {
        Status st = accept(record, &errors);
        if (!st.ok()) {
          scan->input_error = st;
          scan->error_position = item.bytes_read;
          scan->bytes_read = item.bytes_read;
          return;
        }
      }
      if (errors.empty()) {
        ++scan->accepted;
        ++scan->by_network[static_cast<int>(record.network)];
        continue;
      }
      ++scan->rejected;
      for (RecordError& e : errors) {
        if (reject) {
          Status st = reject(e);
          if (!st.ok()) {
            scan->input_error = st;
            scan->error_position = item.bytes_read;
            return;
          }
        }
        if (scan->errors.size() < keep_errors) {
          scan->errors.push_back(std::move(e));
        } else {
          ++scan->errors_truncated;
        }
      }
    }
    if (chunk->last) {
      if (!chunk->read_error.ok()) {
        scan->input_error = chunk->read_error;
        scan->error_position = chunk->bytes_read;
      }
      scan->bytes_read = chunk->bytes_read;
      return;
    }
    queue.PutFree(chunk);
  }
}

}  // namespace cbpipe
