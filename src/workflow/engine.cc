#include "workflow/engine.h"

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/crash_point.h"
#include "common/retry.h"
#include "domain/pan.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

constexpr char kInputRecord[] = "$input";

// An error on its way up: its ASL name, cause, and where a redrive of the
// run resumes (set by the innermost state that says so).
struct StateError {
  std::string name;
  std::string cause;
  std::string redrive_from;

  json ToJson() const {
    json j = {{"Error", name}, {"Cause", cause}};
    if (!redrive_from.empty()) j["RedriveFrom"] = redrive_from;
    return j;
  }
  static StateError FromJson(const json& j) {
    StateError e;
    if (j.is_object()) {
      e.name = j.value("Error", std::string("INTERNAL"));
      e.cause = j.value("Cause", std::string());
      e.redrive_from = j.value("RedriveFrom", std::string());
    } else {
      e.name = "INTERNAL";
      e.cause = "unreadable error checkpoint";
    }
    return e;
  }
  std::string ToString() const { return name + ": " + cause; }
};

StateError Internal(std::string cause) {
  return {"INTERNAL", std::move(cause), ""};
}

// What running a state or a chain of states came to.
struct Result {
  enum Kind { kOk, kFailed, kInterrupted } kind = kOk;
  json output;
  StateError error;       // kFailed; kInterrupted by a store error
  std::string end_state;  // a cbpipe end_state met on the way
  // The error caught last (the run's error when it ends in a Fail state).
  std::optional<StateError> caught;

  static Result Ok(json out) {
    Result r;
    r.output = std::move(out);
    return r;
  }
  static Result Failed(StateError e) {
    Result r;
    r.kind = kFailed;
    r.error = std::move(e);
    return r;
  }
  static Result Interrupted(std::string why = "") {
    Result r;
    r.kind = kInterrupted;
    r.error.cause = std::move(why);
    return r;
  }
};

// Parameters / ItemSelector: keys ending in ".$" take a path into the
// input ("$.x") or the context ("$$.Map.Item.Value").
StatusOr<json> ApplyTemplate(const json& tmpl, const json& input,
                             const json& context) {
  if (!tmpl.is_object()) return tmpl;
  json out = json::object();
  for (auto it = tmpl.begin(); it != tmpl.end(); ++it) {
    const std::string& key = it.key();
    if (key.size() > 2 && key.compare(key.size() - 2, 2, ".$") == 0) {
      if (!it->is_string())
        return InternalError("template field " + key + ": not a path");
      std::string path = it->get<std::string>();
      const json* from = &input;
      if (path.rfind("$$", 0) == 0) {
        path = path.substr(1);
        from = &context;
      }
      CBPIPE_ASSIGN_OR_RETURN(JsonPath p, JsonPath::Parse(path));
      const json* value = p.Find(*from);
      if (!value)
        return InternalError("template field " + key + ": nothing at " +
                             it->get<std::string>());
      out[key.substr(0, key.size() - 2)] = *value;
    } else {
      CBPIPE_ASSIGN_OR_RETURN(out[key], ApplyTemplate(*it, input, context));
    }
  }
  return out;
}

bool ChoiceMatches(const ChoiceRule& c, const json& input) {
  const json* v = c.variable.Find(input);
  if (c.op == "IsPresent") return (v != nullptr) == c.value.get<bool>();
  if (!v) return false;
  if (c.op == "StringEquals") return v->is_string() && *v == c.value;
  if (c.op == "BooleanEquals") return v->is_boolean() && *v == c.value;
  if (!v->is_number()) return false;
  const double a = v->get<double>(), b = c.value.get<double>();
  return c.op == "NumericEquals" ? a == b : a > b;
}

// The rules of `state` with the overrides of cbpipe.retry_from_input: a
// RetryPolicy (common/retry.h) as JSON, {interval_seconds, backoff_rate,
// max_attempts (all attempts, the first included), max_delay_seconds,
// full_jitter}; a field it leaves out keeps the rule's value.
StatusOr<std::vector<RetryRule>> RetryRules(const State& state,
                                            const json& input) {
  std::vector<RetryRule> rules = state.retry;
  if (!state.retry_from_input) return rules;
  const json* o = state.retry_from_input->Find(input);
  if (!o) return rules;  // the rules as written
  if (!o->is_object())
    return InternalError("retry_from_input " +
                         state.retry_from_input->ToString() +
                         ": not an object");
  for (auto it = o->begin(); it != o->end(); ++it) {
    const std::string& k = it.key();
    const bool number = it->is_number();
    for (RetryRule& r : rules) {
      if (k == "interval_seconds" && number && *it >= 0) {
        r.interval_seconds = it->get<double>();
      } else if (k == "backoff_rate" && number && *it >= 1) {
        r.backoff_rate = it->get<double>();
      } else if (k == "max_attempts" && it->is_number_integer() && *it >= 1 &&
                 *it <= 1001) {
        r.max_attempts = it->get<int>() - 1;
      } else if (k == "max_delay_seconds" && number && *it >= 0) {
        r.max_delay_seconds = it->get<double>();
      } else if (k == "full_jitter" && it->is_boolean()) {
        r.full_jitter = it->get<bool>();
      } else {
        return InternalError("retry_from_input: bad or unknown field " + k +
                             " = " + it->dump());
      }
    }
  }
  return rules;
}

// Whether `path` names a checkpoint this definition can write: "scan",
// "batches", "batches/0", "batches/0/verify", ...
bool IsStatePath(const StateMachine& m, std::string_view path) {
  const size_t slash = path.find('/');
  const State* s = m.Find(std::string(path.substr(0, slash)));
  if (!s) return false;
  if (slash == std::string_view::npos) return true;
  if (s->type != StateType::kMap || !s->processor) return false;
  std::string_view rest = path.substr(slash + 1);
  const size_t end = rest.find('/');
  const std::string_view index = rest.substr(0, end);
  if (index.empty() ||
      index.find_first_not_of("0123456789") != std::string_view::npos)
    return false;
  if (end == std::string_view::npos) return true;
  return IsStatePath(*s->processor, rest.substr(end + 1));
}

// Joins every thread it holds when it goes out of scope.
class ThreadGroup {
 public:
  ~ThreadGroup() {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  void Add(std::thread t) { threads_.push_back(std::move(t)); }

 private:
  std::vector<std::thread> threads_;
};

}  // namespace

// One Resume call: the run's checkpoints and how to run its states.
class WorkflowEngine::Run {
 public:
  Run(WorkflowEngine* e, std::string run_id, const std::atomic<bool>* stop)
      : e_(e), run_id_(std::move(run_id)), stop_(stop) {}

  RunOutcome Go(const json& first_input);

 private:
  bool Stopped() const { return stop_ && stop_->load(); }

  const StepRecord* Record(const std::string& path) const {
    auto it = records_.find(path);
    if (it == records_.end()) return nullptr;
    if (it->second.state != "succeeded" && it->second.state != "failed")
      return nullptr;
    return &it->second;
  }

  Status Save(StepRecord record) {
    return e_->store_->SaveStep(run_id_, record);
  }

  // EngineOptions::checkpoint_retry_waits.
  void SaveRetryWait(const std::string& path, const Result& failed,
                     int attempts, int64_t started_ms, double wait_seconds,
                     const json& input) {
    const int64_t now = e_->env_->NowMs();
    json strings = json::object();
    if (input.is_object()) {
      for (const auto& [key, value] : input.items())
        if (value.is_string()) strings[key] = value;
    }
    StepRecord record;
    record.name = path;
    record.state = "retrying";
    record.attempts = attempts;
    record.started_ms = started_ms;
    record.finished_ms = now;
    record.error = failed.error.ToString();
    record.output_json =
        json{{"retry_at_ms", now + static_cast<int64_t>(wait_seconds * 1000)},
             {"error", failed.error.ToJson()},
             {"input", std::move(strings)}}
            .dump();
    (void)Save(std::move(record));
  }

  // `first`, when not null, is the start state's result, already run and
  // checkpointed (a prefetched first Task).
  Result RunMachine(const StateMachine& m, const std::string& prefix,
                    json input, bool top, const Result* first = nullptr);
  Result RunTask(const State& s, const std::string& path, const json& input);
  // Records `r` under `path` (its output or its error) before the run goes
  // on; a store error makes it kInterrupted.
  Result Checkpoint(const std::string& path, Result r, int attempts,
                    int64_t started_ms);
  Result CallStep(const State& s, const json& input);
  Result RunMap(const State& s, const std::string& path, const json& input);
  StatusOr<json> ItemInput(const State& s, const json& map_input,
                           const json& items, size_t i);

  bool HasFailedUnder(const std::string& prefix) const;
  Status Discard(const std::string& path, bool with_children);
  Status DiscardForRedrive(const StateMachine& m, const std::string& prefix,
                           const std::vector<std::string>& redo);

  // Notes the redrive points of the failed items a Map tolerated (its
  // output's entries with error.RedriveFrom).
  void NoteTolerated(const json& map_output);

  WorkflowEngine* e_;
  const std::string run_id_;
  const std::atomic<bool>* stop_;
  std::map<std::string, StepRecord> records_;  // read-only while running
  std::mutex tolerated_mu_;
  // Where the failed items of tolerating Maps would have had the run
  // redriven (verify: "scan"); a failed run redrives from the earliest.
  std::vector<std::string> tolerated_redrive_;
};

void WorkflowEngine::Run::NoteTolerated(const json& map_output) {
  if (!map_output.is_array()) return;
  std::lock_guard<std::mutex> lock(tolerated_mu_);
  for (const json& entry : map_output) {
    if (!entry.is_object() || !entry.contains("error")) continue;
    const std::string from =
        StateError::FromJson(entry["error"]).redrive_from;
    if (!from.empty()) tolerated_redrive_.push_back(from);
  }
}

Result WorkflowEngine::Run::CallStep(const State& s, const json& input) {
  Status in_ok = s.input_schema.Check(input);
  if (!in_ok.ok())
    return Result::Failed(
        Internal("input of " + s.name +
                 " does not match its input_schema: " + in_ok.message()));
  StatusOr<json> out = CallStepGuarded(
      s.name, [&] { return e_->runner_(s.name, input); });
  if (!out.ok())
    return Result::Failed({std::string(StatusCodeName(out.status().code())),
                           out.status().message(), ""});
  Status out_ok = s.output_schema.Check(*out);
  if (!out_ok.ok())
    return Result::Failed(
        Internal("output of " + s.name +
                 " does not match its output_schema: " + out_ok.message()));
  return Result::Ok(std::move(*out));
}

Result WorkflowEngine::Run::RunTask(const State& s, const std::string& path,
                                    const json& state_input) {
  const int64_t started_ms = e_->env_->NowMs();
  int attempts = 0;
  Result r;
  json input = state_input;
  if (!s.parameters.is_null()) {
    StatusOr<json> p = ApplyTemplate(s.parameters, state_input,
                                     {{"Execution", {{"Id", run_id_}}}});
    if (!p.ok()) r = Result::Failed(Internal(p.status().message()));
    if (p.ok()) input = std::move(*p);
  }
  StatusOr<std::vector<RetryRule>> rules = RetryRules(s, input);
  if (!rules.ok()) r = Result::Failed(Internal(rules.status().message()));
  if (r.kind == Result::kOk) {
    std::vector<int> retries(rules->size(), 0);
    for (;;) {
      if (Stopped()) return Result::Interrupted();
      ++attempts;
      if (attempts > 1 && e_->options_.on_retry) {
        try {
          e_->options_.on_retry({s.name, input, attempts, r.error.ToString()});
        } catch (...) {
          // An observer's failure is not the step's.
        }
      }
      r = CallStep(s, input);
      if (r.kind != Result::kFailed) break;
      size_t i = 0;
      while (i < rules->size() &&
             !ErrorMatches((*rules)[i].error_equals, r.error.name))
        ++i;
      if (i == rules->size() || retries[i] >= (*rules)[i].max_attempts) break;
      const RetryRule& rule = (*rules)[i];
      const RetryPolicy policy{rule.interval_seconds, rule.backoff_rate,
                               rule.max_attempts + 1, rule.max_delay_seconds,
                               rule.full_jitter};
      ++retries[i];
      const double wait = RetryDelaySeconds(
          policy, retries[i], rule.full_jitter ? e_->env_->Random01() : 0);
      if (e_->options_.checkpoint_retry_waits)
        SaveRetryWait(path, r, attempts, started_ms, wait, input);
      if (!e_->env_->SleepFor(wait, stop_)) return Result::Interrupted();
    }
  }
  if (r.kind == Result::kFailed && r.error.redrive_from.empty())
    r.error.redrive_from = s.redrive_from;
  CrashPoint("step.before_checkpoint");
  return Checkpoint(path, std::move(r), attempts, started_ms);
}

Result WorkflowEngine::Run::Checkpoint(const std::string& path, Result r,
                                       int attempts, int64_t started_ms) {
  StepRecord record;
  record.name = path;
  record.attempts = attempts;
  record.started_ms = started_ms;
  record.finished_ms = e_->env_->NowMs();
  record.state = r.kind == Result::kOk ? "succeeded" : "failed";
  record.output_json =
      r.kind == Result::kOk ? r.output.dump() : r.error.ToJson().dump();
  if (r.kind == Result::kFailed) record.error = r.error.ToString();
  Status saved = Save(std::move(record));
  if (!saved.ok()) return Result::Interrupted(saved.ToString());
  return r;
}

StatusOr<json> WorkflowEngine::Run::ItemInput(const State& s,
                                              const json& map_input,
                                              const json& items, size_t i) {
  if (s.item_selector.is_null()) return items[i];
  const json context = {
      {"Map", {{"Item", {{"Value", items[i]}, {"Index", i}}}}},
      {"Execution", {{"Id", run_id_}}}};
  return ApplyTemplate(s.item_selector, map_input, context);
}

Result WorkflowEngine::Run::RunMap(const State& s, const std::string& path,
                                   const json& input) {
  const json* found = s.items_path.Find(input);
  if (!found || !found->is_array())
    return Result::Failed(Internal("Map " + s.name + ": ItemsPath " +
                                   s.items_path.ToString() +
                                   " is not an array"));
  const json items = *found;
  const size_t n = items.size();
  int64_t limit = s.max_concurrency;
  if (s.max_concurrency_path) {
    const json* v = s.max_concurrency_path->Find(input);
    if (!v || !v->is_number_integer() || *v < 0)
      return Result::Failed(Internal("Map " + s.name + ": MaxConcurrencyPath " +
                                     s.max_concurrency_path->ToString() +
                                     " is not an integer >= 0"));
    limit = v->get<int64_t>();
  }
  if (limit == 0) limit = static_cast<int64_t>(n);
  limit = std::min<int64_t>(
      {limit, e_->options_.max_map_threads, static_cast<int64_t>(n)});
  limit = std::max<int64_t>(limit, 1);

  std::vector<json> outputs(n);
  std::vector<std::optional<StateError>> errors(n);
  std::mutex mu;  // guards the fields below
  size_t next = 0, failed = 0;
  bool abort = false;
  std::string interrupted;  // "" or why ("stop" for the stop flag)
  auto over_tolerance = [&] {
    return static_cast<double>(failed) * 100.0 >
           s.tolerated_failure_percentage * static_cast<double>(n);
  };
  auto item_path = [&](size_t i) { return path + "/" + std::to_string(i); };
  auto run_item = [&](size_t i, const Result* first) -> Result {
    if (const StepRecord* rec = Record(item_path(i))) {
      json out = json::parse(rec->output_json, nullptr, false);
      if (rec->state == "succeeded") return Result::Ok(std::move(out));
      return Result::Failed(StateError::FromJson(out));
    }
    StatusOr<json> item_input = ItemInput(s, input, items, i);
    Result r = item_input.ok()
                   ? RunMachine(*s.processor, item_path(i) + "/",
                                std::move(*item_input), false, first)
                   : Result::Failed(Internal(item_input.status().message()));
    if (r.kind == Result::kInterrupted) return r;
    return Checkpoint(item_path(i), std::move(r), 1, e_->env_->NowMs());
  };
  // Item i's first Task alone (prefetch_first_task), checkpointed like any
  // Task; nullopt when there is nothing to prefetch (the item or its first
  // Task already has a checkpoint, which run_item then uses).
  auto first_task = [&](size_t i) -> std::optional<Result> {
    const State* start = s.processor->Find(s.processor->start_at);
    const std::string task_path = item_path(i) + "/" + s.processor->start_at;
    if (Record(item_path(i)) || Record(task_path)) return std::nullopt;
    StatusOr<json> item_input = ItemInput(s, input, items, i);
    if (!item_input.ok()) return std::nullopt;
    try {
      return RunTask(*start, task_path, *item_input);
    } catch (const std::exception& ex) {
      return Result::Failed(Internal("Map " + s.name + " item " +
                                     std::to_string(i) + ": " + ex.what()));
    }
  };
  // Records item i's result.
  auto finish = [&](size_t i, Result r) {
    std::lock_guard<std::mutex> lock(mu);
    if (r.kind == Result::kInterrupted) {
      if (interrupted.empty() || interrupted == "stop")
        interrupted = r.error.cause.empty() ? "stop" : r.error.cause;
    } else if (r.kind == Result::kFailed) {
      errors[i] = r.error;
      ++failed;
      if (over_tolerance()) abort = true;
    } else {
      outputs[i] = std::move(r.output);
    }
  };
  auto run_caught = [&](size_t i, const Result* first) {
    try {
      return run_item(i, first);
    } catch (const std::exception& ex) {
      return Result::Failed(Internal("Map " + s.name + " item " +
                                     std::to_string(i) + ": " + ex.what()));
    }
  };
  // Takes the next item; false when no more are to run.
  auto take = [&](size_t* i) {
    std::lock_guard<std::mutex> lock(mu);
    if (abort || !interrupted.empty() || next >= n) return false;
    if (Stopped()) {
      interrupted = "stop";
      return false;
    }
    *i = next++;
    return true;
  };
  auto worker = [&] {
    size_t i;
    while (take(&i)) finish(i, run_caught(i, nullptr));
  };
  // One item at a time: item i's first Task, then (when it succeeded) item
  // i+1's first Task on a thread of its own while item i's later states
  // run.
  auto prefetching_worker = [&] {
    std::optional<Result> prefetched;
    size_t i;
    while (take(&i)) {
      if (!prefetched) prefetched = first_task(i);
      if (prefetched && prefetched->kind == Result::kInterrupted) {
        finish(i, std::move(*prefetched));
        return;
      }
      std::optional<Result> ahead;
      {
        ThreadGroup look_ahead;
        // After a failed first Task the item usually fails the Map: the
        // next one is not started on speculation.
        if (i + 1 < n && (!prefetched || prefetched->kind == Result::kOk)) {
          try {
            look_ahead.Add(std::thread([&] { ahead = first_task(i + 1); }));
          } catch (const std::exception&) {
            // No thread: item i+1 runs its first Task itself.
          }
        }
        finish(i, run_caught(i, prefetched ? &*prefetched : nullptr));
      }  // joined
      // An interrupted prefetch is not a result: the item runs its first
      // Task itself (take() notices a stop first).
      prefetched = std::move(ahead);
      if (prefetched && prefetched->kind == Result::kInterrupted)
        prefetched.reset();
    }
  };
  if (s.prefetch_first_task && limit == 1) {
    prefetching_worker();
  } else {
    ThreadGroup threads;
    try {
      for (int64_t t = 1; t < limit; ++t) threads.Add(std::thread(worker));
    } catch (const std::exception& ex) {
      std::lock_guard<std::mutex> lock(mu);
      interrupted = std::string("cannot start a Map thread: ") + ex.what();
    }
    worker();
  }  // joined
  if (!interrupted.empty())
    return Result::Interrupted(interrupted == "stop" ? "" : interrupted);
  Result r;
  if (over_tolerance()) {
    for (size_t i = 0; i < n; ++i) {
      if (errors[i]) {
        r = Result::Failed(*errors[i]);
        break;
      }
    }
    if (r.error.redrive_from.empty()) r.error.redrive_from = s.redrive_from;
  } else {
    json array = json::array();
    for (size_t i = 0; i < n; ++i) {
      if (!errors[i]) {
        array.push_back(std::move(outputs[i]));
        continue;
      }
      StatusOr<json> item = ItemInput(s, input, items, i);
      json entry = item.ok() && item->is_object()
                       ? std::move(*item)
                       : json{{"input", item.ok() ? *item : json()}};
      entry["error"] = errors[i]->ToJson();
      array.push_back(std::move(entry));
    }
    NoteTolerated(array);
    r = Result::Ok(std::move(array));
  }
  return Checkpoint(path, std::move(r), 1, e_->env_->NowMs());
}

Result WorkflowEngine::Run::RunMachine(const StateMachine& m,
                                       const std::string& prefix, json input,
                                       bool top, const Result* first) {
  std::string name = m.start_at;
  std::string end_state;
  std::optional<StateError> caught;
  for (;;) {
    if (Stopped()) return Result::Interrupted();
    const State* s = m.Find(name);
    if (!s) return Result::Failed(Internal("no state named " + name));
    if (top) {
      Status st = e_->store_->SetState(run_id_, "running", name, "");
      if (!st.ok()) return Result::Interrupted(st.ToString());
    }
    Result r;
    switch (s->type) {
      case StateType::kSucceed: {
        r = Result::Ok(std::move(input));
        r.end_state = s->end_state.empty() ? end_state : s->end_state;
        return r;
      }
      case StateType::kFail: {
        StateError e = caught ? *caught : StateError{};
        if (!s->error.empty()) e = {s->error, s->cause, e.redrive_from};
        if (e.name.empty()) e.name = "States.Fail";
        return Result::Failed(std::move(e));
      }
      case StateType::kChoice: {
        std::string to = s->default_next;
        for (const ChoiceRule& c : s->choices) {
          if (ChoiceMatches(c, input)) {
            to = c.next;
            break;
          }
        }
        if (to.empty())
          return Result::Failed(Internal("Choice " + name + ": no match"));
        name = to;
        continue;
      }
      case StateType::kPass: {
        json result = s->result ? *s->result : input;
        if (!s->parameters.is_null()) {
          StatusOr<json> p = ApplyTemplate(s->parameters, input, json());
          if (!p.ok()) return Result::Failed(Internal(p.status().message()));
          result = std::move(*p);
        }
        r = Result::Ok(std::move(result));
        break;
      }
      case StateType::kTask:
      case StateType::kMap: {
        const std::string path = prefix + name;
        if (first && name == m.start_at) {
          r = *first;
          first = nullptr;
        } else if (const StepRecord* rec = Record(path)) {
          json out = json::parse(rec->output_json, nullptr, false);
          if (s->type == StateType::kMap && rec->state == "succeeded")
            NoteTolerated(out);
          r = rec->state == "succeeded" && !out.is_discarded()
                  ? Result::Ok(std::move(out))
                  : Result::Failed(StateError::FromJson(out));
        } else if (s->type == StateType::kTask) {
          r = RunTask(*s, path, input);
        } else {
          r = RunMap(*s, path, input);
        }
        break;
      }
    }
    if (r.kind == Result::kInterrupted) return r;
    if (r.kind == Result::kOk) {
      StatusOr<json> out = s->result_path.Put(input, std::move(r.output));
      if (!out.ok())
        r = Result::Failed(Internal(name + ": " + out.status().message()));
      if (out.ok()) {
        input = std::move(*out);
        if (!s->end_state.empty()) end_state = s->end_state;
        if (s->end) {
          Result done = Result::Ok(std::move(input));
          done.end_state = end_state;
          done.caught = caught;
          return done;
        }
        name = s->next;
        continue;
      }
    }
    // Failed: the first matching Catch, or up to the caller.
    if (r.error.redrive_from.empty()) r.error.redrive_from = s->redrive_from;
    if (top && r.error.redrive_from.empty()) r.error.redrive_from = name;
    const CatchRule* handler = nullptr;
    for (const CatchRule& c : s->catches) {
      if (ErrorMatches(c.error_equals, r.error.name)) {
        handler = &c;
        break;
      }
    }
    if (!handler) return r;
    StatusOr<json> caught_input = handler->result_path.Put(
        input, {{"Error", r.error.name}, {"Cause", r.error.cause}});
    if (!caught_input.ok())
      return Result::Failed(
          Internal(name + ": " + caught_input.status().message()));
    input = std::move(*caught_input);
    caught = r.error;
    name = handler->next;
  }
}

bool WorkflowEngine::Run::HasFailedUnder(const std::string& prefix) const {
  for (auto it = records_.lower_bound(prefix);
       it != records_.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    if (it->second.state == "failed") return true;
  }
  return false;
}

Status WorkflowEngine::Run::Discard(const std::string& path,
                                    bool with_children) {
  const std::string children = path + "/";
  for (auto& [name, rec] : records_) {
    const bool hit =
        name == path || (with_children && name.rfind(children, 0) == 0);
    if (!hit || rec.state == "discarded") continue;
    rec.state = "discarded";
    CBPIPE_RETURN_IF_ERROR(Save(rec));
  }
  return OkStatus();
}

// Discards what a redrive from `redo` must run again: every state reachable
// from `redo`, except that a Map in `redo` keeps its items that succeeded
// with nothing failed inside them.
Status WorkflowEngine::Run::DiscardForRedrive(
    const StateMachine& m, const std::string& prefix,
    const std::vector<std::string>& redo) {
  std::vector<std::string> reach;
  for (const std::string& r : redo) {
    for (std::string& s : m.ReachableFrom(r)) {
      if (std::find(reach.begin(), reach.end(), s) == reach.end())
        reach.push_back(std::move(s));
    }
  }
  for (const std::string& name : reach) {
    const State* s = m.Find(name);
    const std::string path = prefix + name;
    const bool entry = std::find(redo.begin(), redo.end(), name) != redo.end();
    if (s->type != StateType::kMap || !entry) {
      CBPIPE_RETURN_IF_ERROR(Discard(path, true));
      continue;
    }
    CBPIPE_RETURN_IF_ERROR(Discard(path, false));
    std::vector<std::string> items;
    for (auto it = records_.lower_bound(path + "/");
         it != records_.end() && it->first.rfind(path + "/", 0) == 0; ++it) {
      const std::string rest = it->first.substr(path.size() + 1);
      if (rest.find('/') == std::string::npos) items.push_back(it->first);
    }
    for (const std::string& item : items) {
      if (records_[item].state != "failed" && !HasFailedUnder(item + "/"))
        continue;
      CBPIPE_RETURN_IF_ERROR(Discard(item, false));
      std::vector<std::string> inner;
      for (const auto& [inner_name, inner_state] : s->processor->states) {
        const std::string p = item + "/" + inner_name;
        auto rec = records_.find(p);
        if ((rec != records_.end() && rec->second.state == "failed") ||
            HasFailedUnder(p + "/"))
          inner.push_back(inner_name);
      }
      CBPIPE_RETURN_IF_ERROR(
          DiscardForRedrive(*s->processor, item + "/", inner));
    }
  }
  return OkStatus();
}

RunOutcome WorkflowEngine::Run::Go(const json& first_input) {
  RunOutcome outcome;
  StatusOr<RunRecord> loaded = e_->store_->Get(run_id_);
  if (!loaded.ok()) {
    outcome.state = "interrupted";
    outcome.error = loaded.status().ToString();
    return outcome;
  }
  if (loaded->state == "succeeded" || loaded->state == "rejected") {
    outcome.state = loaded->state;
    return outcome;
  }
  for (StepRecord& rec : loaded->steps) records_[rec.name] = std::move(rec);
  const StateMachine& root = e_->def_->root();

  // Checkpoints without the "$input" record, which this engine saves
  // before any other, and with a name that is no state of the definition
  // ("validate") were written by something else: serve's step-list engine
  // before the workflow definition. Some of their names are states here
  // ("notify", "settle") with other shapes, so none is used: all are
  // discarded and the run starts from StartAt with `first_input`.
  bool foreign = false;
  if (records_.find(kInputRecord) == records_.end()) {
    for (const auto& [name, rec] : records_) {
      if (rec.state != "discarded" && !IsStatePath(root, name)) foreign = true;
    }
  }
  // The records with other names go last: if the process dies half-way,
  // the next Resume still tells the run for what it is.
  for (const bool known_name : {true, false}) {
    if (!foreign) break;
    for (auto& [name, rec] : records_) {
      if (rec.state == "discarded" || IsStatePath(root, name) != known_name)
        continue;
      rec.state = "discarded";
      Status saved = Save(rec);
      if (!saved.ok()) {
        outcome.state = "interrupted";
        outcome.error = saved.ToString();
        return outcome;
      }
    }
  }

  json input = first_input;
  auto in = records_.find(kInputRecord);
  if (in != records_.end()) {
    input = json::parse(in->second.output_json, nullptr, false);
    if (input.is_discarded()) input = first_input;
  } else {
    StepRecord rec;
    rec.name = kInputRecord;
    rec.state = "succeeded";
    rec.output_json = first_input.dump();
    rec.started_ms = rec.finished_ms = e_->env_->NowMs();
    Status saved = Save(rec);
    if (!saved.ok()) {
      outcome.state = "interrupted";
      outcome.error = saved.ToString();
      return outcome;
    }
  }
  if (loaded->state == "failed") {
    const std::string from = !foreign && root.Find(loaded->current_step)
                                 ? loaded->current_step
                                 : root.start_at;
    Status st = DiscardForRedrive(root, "", {from});
    if (st.ok()) st = e_->store_->SetState(run_id_, "running", from, "");
    if (!st.ok()) {
      outcome.state = "interrupted";
      outcome.error = st.ToString();
      return outcome;
    }
  }

  Result r = RunMachine(root, "", std::move(input), true);
  if (r.kind == Result::kInterrupted) {
    outcome.state = "interrupted";
    outcome.error = r.error.cause;
    return outcome;
  }
  Status st;
  if (r.kind == Result::kOk) {
    outcome.state = r.end_state.empty() ? "succeeded" : r.end_state;
    outcome.output = std::move(r.output);
    if (outcome.state != "succeeded" && r.caught)
      outcome.error = r.caught->ToString();
    if (outcome.state == "failed" && r.caught)
      outcome.redrive_from = r.caught->redrive_from;
  } else {
    outcome.state = "failed";
    outcome.error = r.error.ToString();
    outcome.redrive_from = r.error.redrive_from;
  }
  if (outcome.state == "failed" && outcome.redrive_from.empty())
    outcome.redrive_from = root.start_at;
  if (outcome.state == "failed") {
    // A tolerated item that failed where a redrive must start earlier (a
    // batch failing verification is regenerated from scan) moves the
    // run's redrive point there.
    for (const std::string& from : tolerated_redrive_) {
      if (from == outcome.redrive_from || !root.Find(from)) continue;
      const std::vector<std::string> reach = root.ReachableFrom(from);
      if (std::find(reach.begin(), reach.end(), outcome.redrive_from) !=
          reach.end())
        outcome.redrive_from = from;
    }
  }
  st = e_->store_->SetState(run_id_, outcome.state, outcome.redrive_from,
                            outcome.error);
  if (!st.ok()) {
    outcome.state = "interrupted";
    outcome.error = st.ToString();
  }
  return outcome;
}

StatusOr<nlohmann::json> CallStepGuarded(
    std::string_view name,
    const std::function<StatusOr<nlohmann::json>()>& call) {
  const std::string step(name);
  try {
    CrashPoint("step.call");  // CBPIPE_CRASH_AT="step.call:n:throw"
    StatusOr<nlohmann::json> result = call();
    if (result.ok() && !result->is_object()) {
      return InternalError("step " + step + " returned a non-object: " +
                           std::string(result->type_name()));
    }
    return result;
  } catch (const std::exception& e) {
    return InternalError("step " + step + " threw: " +
                         MaskCardNumbers(e.what()));
  } catch (...) {
    return InternalError("step " + step +
                         " threw a non-standard exception");
  }
}

WorkflowEngine::WorkflowEngine(const WorkflowDefinition* definition,
                               RunStore* store, Env* env, StepRunner runner,
                               EngineOptions options)
    : def_(definition),
      store_(store),
      env_(env),
      runner_(std::move(runner)),
      options_(options) {}

RunOutcome WorkflowEngine::Resume(const std::string& run_id,
                                  const nlohmann::json& input,
                                  const std::atomic<bool>* stop) {
  try {
    Run run(this, run_id, stop);
    return run.Go(input);
  } catch (const std::exception& ex) {
    // A bug, not a step's failure: the run fails (a dead letter that can
    // be redriven once fixed) instead of looping.
    RunOutcome outcome;
    outcome.state = "failed";
    outcome.error = std::string("INTERNAL: workflow engine: ") + ex.what();
    outcome.redrive_from = def_->root().start_at;
    store_->SetState(run_id, "failed", outcome.redrive_from, outcome.error)
        .IgnoreError();
    return outcome;
  }
}

}  // namespace cbpipe
