#include "deliver/deliverer.h"

#include <unistd.h>

#include <cmath>
#include <mutex>
#include <random>
#include <set>

#include "common/crash_point.h"
#include "telemetry/log.h"

namespace cbpipe {
namespace {

// "visa_001.csv" -> "visa_001-2.csv": the name tried for on_conflict=rename.
// Built by appending: GCC 12 at -O3 reports a false -Wrestrict overlap in
// the inlined `"-" + std::to_string(n)` (GCC bug 105651).
std::string AlternativeName(const std::string& name, int n) {
  const size_t dot = name.rfind('.');
  const size_t stem =
      (dot == std::string::npos || dot == 0) ? name.size() : dot;
  std::string out;
  out.reserve(name.size() + 12);
  out.append(name, 0, stem);
  out.push_back('-');
  out.append(std::to_string(n));
  out.append(name, stem, std::string::npos);
  return out;
}

// A check the server refused (kPermissionDenied from RemoteSize): delivery
// goes on without it, as on a write_only destination.
bool IsRefusedCheck(const Status& status) {
  return status.code() == StatusCode::kPermissionDenied;
}

// Logs, once per destination and process, what cannot be verified there.
void LogUnverifiable(const DestinationConfig& destination,
                     const std::string& why) {
  static std::mutex mu;
  static std::set<std::string> logged;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!logged.insert(destination.name).second) return;
  }
  Log().Warn(
      LogContext{.destination = destination.name}, "delivery.unverifiable",
      why +
          ": whether a file exists on the server and its size cannot be "
          "verified; delivery stays exactly once through the ledger claim "
          "before the upload, the temporary name, a rename that never "
          "overwrites, and the ledger record after it (docs/interop.md)");
}

// 16 random hex digits: what makes a temporary name or a claim's owner
// unique per attempt.
std::string RandomTag() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string tag(16, '0');
  uint64_t bits = rng();
  for (char& c : tag) {
    c = kHex[bits & 0xf];
    bits >>= 4;
  }
  return tag;
}

// A file the ledger already has as delivered: this run's own delivery (an
// earlier try of its deliver step) or an earlier run's.
DeliveryOutcome Prior(const LedgerEntry& known, const FileToDeliver& file) {
  return !file.run_id.empty() && known.run_id == file.run_id
             ? DeliveryOutcome::kDelivered
             : DeliveryOutcome::kAlreadyDelivered;
}

}  // namespace

std::string TemporaryUploadName(const std::string& name,
                                const std::string& suffix) {
  return "." + name + "." + RandomTag() + suffix;
}

std::string_view DeliveryOutcomeName(DeliveryOutcome o) {
  switch (o) {
    case DeliveryOutcome::kDelivered: return "delivered";
    case DeliveryOutcome::kAlreadyDelivered: return "already_delivered";
    case DeliveryOutcome::kFailed: return "failed";
  }
  return "failed";
}

bool IsTransientDeliveryError(const Status& status) {
  return status.IsTransient();
}

FileDeliverer::FileDeliverer(const DestinationConfig& destination,
                             Transport* transport, DeliveryLedger* ledger,
                             Env* env, int64_t claim_lease_ms,
                             const std::atomic<bool>* stop)
    : destination_(destination),
      transport_(transport),
      ledger_(ledger),
      env_(env),
      claim_lease_ms_(claim_lease_ms),
      stop_(stop) {}

DeliveryResult FileDeliverer::Deliver(const FileToDeliver& file) {
  DeliveryResult result;
  result.remote_name = file.name;
  const int max_attempts = std::max(1, destination_.retry.max_attempts);
  for (int attempt = 1;; ++attempt) {
    std::string remote_name = file.name;
    DeliveryOutcome outcome = DeliveryOutcome::kFailed;
    bool earlier_try = false;
    Status st = AttemptOnce(file, &remote_name, &outcome, &earlier_try);
    if (st.ok()) {
      result.outcome = outcome;
      result.earlier_try = earlier_try;
      result.remote_name = remote_name;
      return result;
    }
    const bool transient = IsTransientDeliveryError(st);
    result.attempts.push_back(
        {env_->NowSeconds(), transient ? "transient" : "permanent",
         std::string(StatusCodeName(st.code())), st.message(), file.run_id});
    result.error = st;
    if (!transient || attempt >= max_attempts) break;
    if (!env_->SleepFor(
            RetryDelaySeconds(destination_.retry, attempt, env_->Random01()),
            stop_)) {
      break;  // stopping: the failure is recorded, a later attempt resumes
    }
  }
  result.outcome = DeliveryOutcome::kFailed;
  LedgerEntry entry{destination_.name,  file.name,     file.size,
                    file.sha256,        file.batch_id, "failed",
                    env_->NowSeconds(), false, "", file.run_id};
  Status logged = ledger_->RecordFailure(entry, result.attempts);
  if (!logged.ok()) {
    result.error = Status(result.error.code(),
                          result.error.message() +
                              " (and the failure could not be recorded: " +
                              logged.message() + ")");
  }
  return result;
}

Status FileDeliverer::ResolveConflict(const FileToDeliver& file,
                                      std::string* remote_name, bool* replace,
                                      bool* already) {
  switch (destination_.on_conflict) {
    case OnConflict::kFail:
      return AlreadyExistsError(
          transport_->Describe() + "/" + file.name +
          " already exists with other content; not overwritten (set "
          "on_conflict = \"replace\" or \"rename\" to allow it)");
    case OnConflict::kReplace: *replace = true; return OkStatus();
    case OnConflict::kRename:
      for (int n = 2; n < 1000; ++n) {
        const std::string candidate = AlternativeName(file.name, n);
        // A re-run finds its own earlier delivery under the new name.
        CBPIPE_ASSIGN_OR_RETURN(std::optional<LedgerEntry> known,
                                ledger_->Find(destination_.name, candidate));
        if (known && known->sha256 == file.sha256) {
          *remote_name = candidate;
          *already = known->state == "delivered";
          if (*already) return OkStatus();
          if (!known->temp_name.empty())
            transport_->Remove(known->temp_name).IgnoreError();
        }
        CBPIPE_ASSIGN_OR_RETURN(std::optional<uint64_t> size,
                                transport_->RemoteSize(candidate));
        if (!size) {
          *remote_name = candidate;
          return OkStatus();
        }
      }
      return AlreadyExistsError("no free alternative name for " + file.name);
  }
  return InternalError("unknown on_conflict");
}

Status FileDeliverer::AttemptOnce(const FileToDeliver& file,
                                  std::string* remote_name,
                                  DeliveryOutcome* outcome,
                                  bool* earlier_try) {
  // Delivered already: nothing to claim (the common case of a re-run).
  CBPIPE_ASSIGN_OR_RETURN(std::optional<LedgerEntry> known,
                          ledger_->Find(destination_.name, file.name));
  if (!file.replay && known && known->state == "delivered" &&
      known->sha256 == file.sha256) {
    *outcome = Prior(*known, file);
    *earlier_try = *outcome == DeliveryOutcome::kDelivered;
    return OkStatus();
  }
  const std::string owner =
      "pid" + std::to_string(::getpid()) + "-" + RandomTag();
  CBPIPE_ASSIGN_OR_RETURN(
      bool claimed, ledger_->ClaimDelivery(destination_.name, file.name, owner,
                                           claim_lease_ms_));
  if (!claimed) {
    return UnavailableError(
        transport_->Describe() + "/" + file.name +
        " is being delivered by another worker (its claim in the ledger "
        "lasts up to " +
        std::to_string(claim_lease_ms_ / 1000) +
        " s); not uploaded twice, retried later");
  }
  Status st = AttemptClaimed(file, remote_name, outcome, earlier_try, owner);
  // Best effort: a claim not released runs out with its lease.
  ledger_->ReleaseDeliveryClaim(destination_.name, file.name, owner)
      .IgnoreError();
  return st;
}

Status FileDeliverer::AttemptClaimed(const FileToDeliver& file,
                                     std::string* remote_name,
                                     DeliveryOutcome* outcome,
                                     bool* earlier_try,
                                     const std::string& owner) {
  LedgerEntry entry{destination_.name,  file.name,     file.size,
                    file.sha256,        file.batch_id, "",
                    env_->NowSeconds(), false, "", file.run_id};
  entry.replay = file.replay;
  CBPIPE_ASSIGN_OR_RETURN(std::optional<LedgerEntry> known,
                          ledger_->Find(destination_.name, file.name));
  if (file.replay && known && known->sha256 == file.sha256) {
    // A replay of our own delivery: the ledger's record proves the content.
    known.reset();
  }
  if (known && known->state == "delivered" && known->sha256 == file.sha256) {
    *outcome = Prior(*known, file);
    *earlier_try = *outcome == DeliveryOutcome::kDelivered;
    return OkStatus();
  }
  if (known && known->state == "intent" && !known->temp_name.empty()) {
    // An earlier attempt that crashed or failed may have left its
    // temporary file: the ledger knows its name, on every transport.
    transport_->Remove(known->temp_name).IgnoreError();
  }

  bool replace = false, already = false;
  if (known && known->state == "delivered") {
    // Same name, other content: the config or the input changed since.
    CBPIPE_RETURN_IF_ERROR(
        ResolveConflict(file, remote_name, &replace, &already));
  }
  if (already) {
    *outcome = DeliveryOutcome::kAlreadyDelivered;
    return OkStatus();
  }
  // On a write-only server (declared, or found refusing STAT/SIZE) nothing
  // about the remote side can be verified: the ledger decides alone.
  bool verifiable = !destination_.write_only;
  if (!verifiable) {
    LogUnverifiable(destination_, "destination is write_only");
  }
  std::optional<uint64_t> existing;
  if (verifiable) {
    StatusOr<std::optional<uint64_t>> size = transport_->RemoteSize(file.name);
    if (size.ok()) {
      existing = *size;
    } else if (IsRefusedCheck(size.status())) {
      verifiable = false;
      LogUnverifiable(destination_, size.status().message());
    } else {
      return size.status();
    }
  }
  if (existing && *remote_name == file.name) {
    // Ours if the ledger meant to put exactly this there (a crash between
    // upload and ledger write), or a local file hashes the same.
    bool ours = known && known->sha256 == file.sha256 &&
                *existing == file.size;
    if (!ours && *existing == file.size) {
      StatusOr<std::optional<std::string>> sha =
          transport_->RemoteSha256(file.name);
      ours = sha.ok() && sha->has_value() && **sha == file.sha256;
    }
    if (ours) {
      CBPIPE_RETURN_IF_ERROR(ledger_->MarkDelivered(entry));
      *outcome = DeliveryOutcome::kAlreadyDelivered;
      return OkStatus();
    }
    CBPIPE_RETURN_IF_ERROR(
        ResolveConflict(file, remote_name, &replace, &already));
    if (already) {
      *outcome = DeliveryOutcome::kAlreadyDelivered;
      return OkStatus();
    }
  }
  entry.remote_name = *remote_name;

  // Unique per attempt: two uploaders never write or rename each other's
  // temporary file.
  const std::string temp =
      TemporaryUploadName(*remote_name, destination_.temp_suffix);
  entry.temp_name = temp;
  CBPIPE_RETURN_IF_ERROR(ledger_->RecordIntent(entry));
  Status st = transport_->Upload(file.local_path, temp);
  if (st.ok()) {
    DurablePoint("deliver.upload");
    CrashPoint("deliver.after_upload");
    // The upload may have outlasted the lease: rename only while the
    // claim is still ours.
    StatusOr<bool> still_ours = ledger_->RenewDeliveryClaim(
        destination_.name, file.name, owner, claim_lease_ms_);
    if (!still_ours.ok()) {
      st = still_ours.status();
    } else if (!*still_ours) {
      st = UnavailableError(transport_->Describe() + "/" + file.name +
                            ": another worker took the delivery over during "
                            "the upload; not renamed, retried later");
    }
  }
  if (st.ok()) {
    st = transport_->Rename(temp, *remote_name, replace);
    if (st.ok()) DurablePoint("deliver.rename");
  }
  if (!st.ok()) {
    transport_->Remove(temp).IgnoreError();  // best effort
    if (st.code() == StatusCode::kAlreadyExists && !verifiable && known &&
        known->sha256 == file.sha256 && *remote_name == file.name) {
      // Unverifiable server, and the ledger claimed exactly this file under
      // this name: an earlier attempt renamed it and stopped before the
      // ledger record. It is ours.
      CBPIPE_RETURN_IF_ERROR(ledger_->MarkDelivered(entry));
      *outcome = DeliveryOutcome::kAlreadyDelivered;
      return OkStatus();
    }
    if (st.code() == StatusCode::kAlreadyExists) {
      // Someone else put a file there between our check and the rename.
      return AlreadyExistsError(transport_->Describe() + "/" + *remote_name +
                                " appeared during the upload; not "
                                "overwritten");
    }
    return st;
  }
  if (verifiable) {
    StatusOr<std::optional<uint64_t>> size =
        transport_->RemoteSize(*remote_name);
    if (!size.ok() && !IsRefusedCheck(size.status())) return size.status();
    if (size.ok() && (!*size || **size != file.size)) {
      return DataLossError(
          transport_->Describe() + "/" + *remote_name + " has " +
          (*size ? std::to_string(**size) : std::string("no")) +
          " bytes after upload, expected " + std::to_string(file.size));
    }
  }
  CrashPoint("deliver.before_ledger");
  CBPIPE_RETURN_IF_ERROR(ledger_->MarkDelivered(entry));
  CrashPoint("deliver.after_ledger");
  *outcome = DeliveryOutcome::kDelivered;
  return OkStatus();
}

}  // namespace cbpipe
