#include "workflow/input_scan.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdio>
#include <iterator>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "domain/pan.h"

namespace cbpipe {
namespace {

// The scan's work comes in three kinds: reading a chunk of the input into
// RawRecords (in order, one chunk at a time), validating a chunk (any chunk
// that has been read), and consuming a chunk: `accept` (routing,
// formatting, writing) and `reject`, in input order, on the caller's
// thread. Each costs about a third. Two threads share them, the caller's
// and one more, each taking whatever can be done next, so both cores stay
// busy whatever the stages cost. (With a thread per stage, three threads
// shared two cores unevenly and one core idled a quarter of the time.)
// Chunks keep the locking rare, and only a few exist, allocated once and
// reused, so memory stays flat whatever the size of the input.
//
// The duplicate-case check runs where chunks are consumed, in input order:
// every lookup in the set of ids seen is a cache miss, and with a chunk's
// ids known up front the loads are started well ahead of their use.
constexpr size_t kPrefetchAhead = 16;
constexpr size_t kChunkRecords = 1024;
constexpr size_t kSlots = 4;

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

void ReadChunk(RecordReader& reader, RawChunk& chunk) {
  chunk.bytes_read.clear();
  chunk.last = false;
  chunk.read_error = OkStatus();
  while (chunk.bytes_read.size() < kChunkRecords) {
    StatusOr<bool> more = reader.Next(&chunk.records[chunk.bytes_read.size()]);
    if (!more.ok() || !*more) {
      chunk.last = true;
      chunk.read_error = more.status();
      chunk.end_bytes = reader.bytes_read();
      return;
    }
    chunk.bytes_read.push_back(reader.bytes_read());
  }
}

void ValidateChunk(Validator& validator, const RawChunk& raw, Chunk& chunk) {
  chunk.items.clear();
  chunk.errors.clear();
  for (size_t i = 0; i < raw.bytes_read.size(); ++i) {
    Chunk::Item& item = chunk.items.emplace_back();
    item.first_error = static_cast<uint32_t>(chunk.errors.size());
    item.valid = validator.ValidateAllButDuplicate(
        raw.records[i], &chunk.records[i], &chunk.errors, &item.duplicate);
    item.end_error = static_cast<uint32_t>(chunk.errors.size());
    item.bytes_read = raw.bytes_read[i];
  }
  chunk.last = raw.last;
  chunk.read_error = raw.read_error;
  chunk.bytes_read = raw.end_bytes;
}

// One chunk of the input on its way: read into `raw`, validated into
// `validated`, consumed, free again.
struct Slot {
  enum class State {
    kFree,
    kReading,
    kRead,
    kValidating,
    kValidated,
    kConsuming
  };
  State state = State::kFree;
  uint64_t seq = 0;  // chunk number in the input
  RawChunk raw;
  Chunk validated;
};

// Hands out the scan's work to the two threads.
class ScanSchedule {
 public:
  enum class Task { kNone, kRead, kValidate, kConsume };
  struct Job {
    Task task = Task::kNone;
    Slot* slot = nullptr;
  };

  // Waits for work this thread may do. The caller's thread consumes first
  // (it holds back everything else), then validates, then reads; the
  // helper reads first (it feeds everything else), then validates. kNone
  // once stopped, and for the helper once nothing is left to read or
  // validate.
  Job Next(bool caller) {
    std::unique_lock lock(mu_);
    while (true) {
      if (stopped_) return {};
      Slot& head = slots_[next_consume_ % kSlots];
      if (caller && head.state == Slot::State::kValidated &&
          head.seq == next_consume_) {
        head.state = Slot::State::kConsuming;
        return {Task::kConsume, &head};
      }
      Job job = caller ? TakeValidate() : TakeRead();
      if (job.task == Task::kNone) job = caller ? TakeRead() : TakeValidate();
      if (job.task != Task::kNone) return job;
      if (!caller && read_done_ && !AnyIn(Slot::State::kRead)) return {};
      cv_.wait(lock);
    }
  }

  void Done(const Job& job) {
    {
      std::lock_guard lock(mu_);
      switch (job.task) {
        case Task::kRead:
          job.slot->state = Slot::State::kRead;
          reading_ = false;
          if (job.slot->raw.last) read_done_ = true;
          break;
        case Task::kValidate: job.slot->state = Slot::State::kValidated; break;
        case Task::kConsume:
          job.slot->state = Slot::State::kFree;
          ++next_consume_;
          break;
        case Task::kNone: break;
      }
    }
    cv_.notify_all();
  }

  // The caller gives up early (an accept or reject failure), or is done.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }

 private:
  Job TakeRead() {
    if (reading_ || read_done_) return {};
    Slot& slot = slots_[next_read_ % kSlots];
    if (slot.state != Slot::State::kFree) return {};
    slot.state = Slot::State::kReading;
    slot.seq = next_read_++;
    reading_ = true;
    return {Task::kRead, &slot};
  }
  // The oldest chunk read: the one consumed soonest.
  Job TakeValidate() {
    Slot* oldest = nullptr;
    for (Slot& slot : slots_) {
      if (slot.state == Slot::State::kRead &&
          (oldest == nullptr || slot.seq < oldest->seq)) {
        oldest = &slot;
      }
    }
    if (oldest == nullptr) return {};
    oldest->state = Slot::State::kValidating;
    return {Task::kValidate, oldest};
  }
  bool AnyIn(Slot::State state) const {
    for (const Slot& slot : slots_) {
      if (slot.state == state) return true;
    }
    return false;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::array<Slot, kSlots> slots_;
  uint64_t next_read_ = 0, next_consume_ = 0;
  bool reading_ = false;    // a thread is reading a chunk
  bool read_done_ = false;  // the reader returned its last chunk
  bool stopped_ = false;
};

// Bytes in `path` when it is a regular file, else 0: with the first
// chunk's bytes per record, how many records to expect. (For a gzip file
// that guess is low by the compression ratio; the duplicate set then moves
// to its shards when the guess is passed, as with any wrong guess.)
uint64_t InputFileSize(const std::string& path) {
  struct stat st;
  if (path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return 0;
  }
  return static_cast<uint64_t>(st.st_size);
}

std::string FormatRatio(double ratio) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", ratio);
  return text;
}

void ScanRecords(const std::string& path, const Config& config,
                 int64_t now_epoch_seconds, size_t keep_errors,
                 const AcceptFn& accept, const RejectFn& reject,
                 InputScan* scan, RawBytesObserver observe) {
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
  Validator validator(options);

  ScanSchedule schedule;
  // The helper thread reads and validates with a Validator of its own.
  std::thread helper([&reader, &schedule, options] {
    Validator own(options);
    while (true) {
      const ScanSchedule::Job job = schedule.Next(/*caller=*/false);
      if (job.task == ScanSchedule::Task::kRead) {
        ReadChunk(reader, job.slot->raw);
      } else if (job.task == ScanSchedule::Task::kValidate) {
        ValidateChunk(own, job.slot->raw, job.slot->validated);
      } else {
        return;
      }
      schedule.Done(job);
    }
  });
  // Ends the helper on every way out of the loop below.
  struct StopOnExit {
    ScanSchedule& schedule;
    std::thread& helper;
    ~StopOnExit() {
      schedule.Stop();
      helper.join();
    }
  } stop_on_exit{schedule, helper};

  std::vector<RecordError> errors;
  DuplicateSet seen;
  const RejectThresholds& thresholds = config.reject_thresholds;
  uint64_t invalid = 0;  // records the validator rejected
  const uint64_t input_size = InputFileSize(path);
  while (true) {
    const ScanSchedule::Job job = schedule.Next(/*caller=*/true);
    if (job.task == ScanSchedule::Task::kRead) {
      ReadChunk(reader, job.slot->raw);
      schedule.Done(job);
      continue;
    }
    if (job.task == ScanSchedule::Task::kValidate) {
      ValidateChunk(validator, job.slot->raw, job.slot->validated);
      schedule.Done(job);
      continue;
    }
    if (job.task != ScanSchedule::Task::kConsume) return;  // not reached
    Chunk* chunk = &job.slot->validated;
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
        if (!errors.empty())
          ++scan->undeliverable[static_cast<int>(record.network)];
      } else if (++invalid > thresholds.max_rejected_records) {
        // One broken export must not fill the disk with its rejects.
        ++scan->rejected;
        scan->input_error = ResourceExhaustedError(
            "input rejected as a whole: more than " +
            std::to_string(thresholds.max_rejected_records) +
            " records rejected (input.max_rejected_records); reading "
            "stopped at record " +
            std::to_string(scan->records) + ", nothing of it is delivered");
        scan->error_position = item.bytes_read;
        scan->bytes_read = item.bytes_read;
        return;
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
      scan->bytes_read = chunk->bytes_read;
      if (!chunk->read_error.ok()) {
        scan->input_error = chunk->read_error;
        scan->error_position = chunk->bytes_read;
      } else if (scan->records >= RejectThresholds::kRatioMinRecords &&
                 static_cast<double>(invalid) >
                     thresholds.max_rejected_ratio *
                         static_cast<double>(scan->records)) {
        scan->input_error = ResourceExhaustedError(
            "input rejected as a whole: " + std::to_string(invalid) + " of " +
            std::to_string(scan->records) +
            " records rejected, more than input.max_rejected_ratio (" +
            FormatRatio(thresholds.max_rejected_ratio) +
            "); nothing of it is delivered");
        scan->error_position = chunk->bytes_read;
      }
      return;
    }
    schedule.Done(job);
  }
}

}  // namespace

uint64_t InputScan::undeliverable_total() const {
  uint64_t total = 0;
  for (uint64_t n : undeliverable) total += n;
  return total;
}

void ScanInput(const std::string& path, const Config& config,
               int64_t now_epoch_seconds, size_t keep_errors,
               const AcceptFn& accept, const RejectFn& reject, InputScan* scan,
               RawBytesObserver observe) {
  ScanRecords(path, config, now_epoch_seconds, keep_errors, accept, reject,
              scan, std::move(observe));
  // A whole-input error names the file (which may be named after a card
  // number) and may quote a header cell: masked before it goes anywhere.
  scan->input_error = MaskCardNumbersInStatus(scan->input_error);
}

}  // namespace cbpipe
