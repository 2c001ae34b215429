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

// The scan is a pipeline of three threads: reading (parsing the input into
// RawRecords), validating, and `accept` (routing, formatting, writing) on
// the caller's thread. Each costs about a third, so on two cores the scan
// takes about half the time of doing it all in one. They hand records over
// in chunks, to keep the locking rare, and only a few chunks exist,
// allocated once and reused, so memory stays flat whatever the size of the
// input.
//
// The duplicate-case check runs on the caller's thread, a chunk at a time:
// every lookup in the set of ids seen is a cache miss, and with a chunk's
// ids known up front the loads are started well ahead of their use.
constexpr size_t kPrefetchAhead = 16;
constexpr size_t kChunkRecords = 1024;
constexpr size_t kChunks = 4;

// Records as read. Slot i's strings keep their capacity from one chunk to
// the next.
struct RawChunk {
  std::vector<RawRecord> records = std::vector<RawRecord>(kChunkRecords);
  std::vector<uint64_t> bytes_read;  // reader position after records[i]
  bool last = false;                 // the reader is done after these records
  Status read_error;                 // why, when it failed (last only)
  uint64_t end_bytes = 0;            // reader position at the end (last only)
};

// Records as validated.
struct Chunk {
  struct Item {
    bool valid = false;        // the validator accepted records[i] (so far)
    DuplicateCheck duplicate;  // left to the consumer, in input order
    // This record's validation errors: errors[first_error, end_error).
    uint32_t first_error = 0, end_error = 0;
    uint64_t bytes_read = 0;  // reader position after the record
  };
  // Slot i belongs to items[i]; the validator fills it in place.
  std::vector<Record> records = std::vector<Record>(kChunkRecords);
  std::vector<Item> items;
  std::vector<RecordError> errors;
  bool last = false;        // the reader is done after these items
  Status read_error;        // why, when it failed (last only)
  uint64_t bytes_read = 0;  // reader position at the end (last only)
};

// Chunks go round between a producer and a consumer thread:
// free -> (producer fills) -> full -> (consumer drains) -> free.
template <typename T>
class ChunkQueue {
 public:
  ChunkQueue() {
    for (T& chunk : chunks_) free_.push_back(&chunk);
  }

  // nullptr once the queue is stopped.
  T* TakeFree() { return Take(free_, free_cv_); }
  T* TakeFull() { return Take(full_, full_cv_); }
  void PutFull(T* chunk) { Put(full_, full_cv_, chunk); }
  void PutFree(T* chunk) { Put(free_, free_cv_, chunk); }

  // Someone gives up early (an accept or reject failure): both sides stop
  // at their next Take.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    free_cv_.notify_all();
    full_cv_.notify_all();
  }

 private:
  T* Take(std::deque<T*>& from, std::condition_variable& cv) {
    std::unique_lock lock(mu_);
    cv.wait(lock, [&] { return stopped_ || !from.empty(); });
    if (stopped_) return nullptr;
    T* chunk = from.front();
    from.pop_front();
    return chunk;
  }
  void Put(std::deque<T*>& to, std::condition_variable& cv, T* chunk) {
    {
      std::lock_guard lock(mu_);
      to.push_back(chunk);
    }
    cv.notify_one();
  }

  std::array<T, kChunks> chunks_;
  std::mutex mu_;
  std::condition_variable free_cv_, full_cv_;
  std::deque<T*> free_, full_;
  bool stopped_ = false;
};

void ReadChunks(RecordReader& reader, ChunkQueue<RawChunk>& out) {
  while (RawChunk* chunk = out.TakeFree()) {
    chunk->bytes_read.clear();
    while (chunk->bytes_read.size() < kChunkRecords) {
      RawRecord& raw = chunk->records[chunk->bytes_read.size()];
      StatusOr<bool> more = reader.Next(&raw);
      if (!more.ok() || !*more) {
        chunk->last = true;
        chunk->read_error = more.status();
        chunk->end_bytes = reader.bytes_read();
        break;
      }
      chunk->bytes_read.push_back(reader.bytes_read());
    }
    const bool last = chunk->last;
    out.PutFull(chunk);
    if (last) return;
  }
}

void ValidateChunks(Validator& validator, ChunkQueue<RawChunk>& in,
                    ChunkQueue<Chunk>& out) {
  while (RawChunk* raw = in.TakeFull()) {
    Chunk* chunk = out.TakeFree();
    if (!chunk) break;
    chunk->items.clear();
    chunk->errors.clear();
    const size_t count = raw->bytes_read.size();
    for (size_t i = 0; i < count; ++i) {
      Chunk::Item& item = chunk->items.emplace_back();
      item.first_error = static_cast<uint32_t>(chunk->errors.size());
      item.valid = validator.ValidateAllButDuplicate(
          raw->records[i], &chunk->records[i], &chunk->errors, &item.duplicate);
      item.end_error = static_cast<uint32_t>(chunk->errors.size());
      item.bytes_read = raw->bytes_read[i];
    }
    const bool last = raw->last;
    chunk->last = last;
    chunk->read_error = raw->read_error;
    chunk->bytes_read = raw->end_bytes;
    in.PutFree(raw);
    out.PutFull(chunk);
    if (last) return;
  }
  // The consumer stopped: so does the reader.
  in.Stop();
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
               const AcceptFn& accept, const RejectFn& reject, InputScan* scan,
               RawBytesObserver observe) {
  StatusOr<std::unique_ptr<RecordReader>> opened =
      OpenReader(path, config.format, config.mapping, config.reader_limits,
                 std::move(observe));
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

  ChunkQueue<RawChunk> raw_queue;
  ChunkQueue<Chunk> queue;
  std::thread reading([&reader, &raw_queue] { ReadChunks(reader, raw_queue); });
  std::thread validating([&validator, &raw_queue, &queue] {
    ValidateChunks(validator, raw_queue, queue);
  });
  // Ends both threads on every way out of the loop below.
  struct StopOnExit {
    ChunkQueue<RawChunk>& raw_queue;
    ChunkQueue<Chunk>& queue;
    std::thread& reading;
    std::thread& validating;
    ~StopOnExit() {
      queue.Stop();
      raw_queue.Stop();
      validating.join();
      reading.join();
    }
  } stop_on_exit{raw_queue, queue, reading, validating};

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
