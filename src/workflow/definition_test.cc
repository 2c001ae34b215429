#include "workflow/definition.h"

#include <gtest/gtest.h>

#include <string>

namespace cbpipe {
namespace {

using json = nlohmann::json;

// A valid two-state definition that each case breaks in one place.
json Valid() {
  return json::parse(R"({
    "StartAt": "a",
    "States": {
      "a": {"Type": "Task", "Next": "m",
            "Retry": [{"ErrorEquals": ["UNAVAILABLE"], "MaxAttempts": 2}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "f",
                       "ResultPath": "$.error"}]},
      "m": {"Type": "Map", "ItemsPath": "$.items", "End": true,
            "ItemProcessor": {"StartAt": "b",
                              "States": {"b": {"Type": "Task", "End": true}}}},
      "f": {"Type": "Fail"}
    }})");
}

std::string ErrorOf(const json& doc) {
  StatusOr<WorkflowDefinition> def = WorkflowDefinition::FromJson(doc);
  EXPECT_FALSE(def.ok()) << doc.dump();
  return def.ok() ? "" : def.status().message();
}

TEST(WorkflowDefinitionTest, AcceptsTheValidBase) {
  StatusOr<WorkflowDefinition> def = WorkflowDefinition::FromJson(Valid());
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  const State* a = def->root().Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->retry.at(0).max_attempts, 2);
  EXPECT_EQ(a->retry.at(0).interval_seconds, 1);  // ASL default
  EXPECT_EQ(a->catches.at(0).result_path.ToString(), "$.error");
  EXPECT_NE(def->root().Find("m")->processor->Find("b"), nullptr);
}

TEST(WorkflowDefinitionTest, RejectsNotJson) {
  StatusOr<WorkflowDefinition> def = WorkflowDefinition::Parse("{");
  ASSERT_FALSE(def.ok());
  EXPECT_NE(def.status().message().find("not valid JSON"), std::string::npos);
}

TEST(WorkflowDefinitionTest, StartAtMustNameAState) {
  json d = Valid();
  d["StartAt"] = "nowhere";
  EXPECT_NE(ErrorOf(d).find("StartAt: no state named \"nowhere\""),
            std::string::npos);
  d.erase("StartAt");
  EXPECT_NE(ErrorOf(d).find("StartAt: missing"), std::string::npos);
}

TEST(WorkflowDefinitionTest, UnknownNextIsNamed) {
  json d = Valid();
  d["States"]["a"]["Next"] = "typo";
  EXPECT_NE(ErrorOf(d).find("States.a.Next: no state named \"typo\""),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, UnknownCatchNextIsNamed) {
  json d = Valid();
  d["States"]["a"]["Catch"][0]["Next"] = "typo";
  EXPECT_NE(ErrorOf(d).find("States.a.Catch[0].Next: no state named"),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, NextInsideAMapCannotLeaveIt) {
  json d = Valid();
  d["States"]["m"]["ItemProcessor"]["States"]["b"] = {{"Type", "Task"},
                                                      {"Next", "a"}};
  EXPECT_NE(ErrorOf(d).find(
                "States.m.ItemProcessor.States.b.Next: no state named \"a\""),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, NeedsNextOrEndButNotBoth) {
  json d = Valid();
  d["States"]["a"].erase("Next");
  EXPECT_NE(ErrorOf(d).find("States.a.Next: missing"), std::string::npos);
  d = Valid();
  d["States"]["a"]["End"] = true;
  EXPECT_NE(ErrorOf(d).find("pick one"), std::string::npos);
}

TEST(WorkflowDefinitionTest, UnknownTypeAndUnknownFields) {
  json d = Valid();
  d["States"]["a"]["Type"] = "Parallel";
  EXPECT_NE(ErrorOf(d).find("unknown type Parallel"), std::string::npos);
  d = Valid();
  d["States"]["a"]["Retyr"] = json::array();
  EXPECT_NE(ErrorOf(d).find("States.a.Retyr: unknown field"),
            std::string::npos);
  d = Valid();
  d["States"]["a"]["cbpipe"] = {{"redrive_form", "a"}};
  EXPECT_NE(ErrorOf(d).find("States.a.cbpipe.redrive_form: unknown field"),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, UnreachableStateIsAnError) {
  json d = Valid();
  d["States"]["lost"] = {{"Type", "Succeed"}};
  EXPECT_NE(ErrorOf(d).find("States.lost: unreachable"), std::string::npos);
}

TEST(WorkflowDefinitionTest, BadRetryRules) {
  auto with = [](const char* key, json value) {
    json d = Valid();
    d["States"]["a"]["Retry"][0][key] = std::move(value);
    return ErrorOf(d);
  };
  EXPECT_NE(with("BackoffRate", 0.5).find("Retry[0].BackoffRate: must be >= 1"),
            std::string::npos);
  EXPECT_NE(with("MaxAttempts", -1).find("Retry[0].MaxAttempts"),
            std::string::npos);
  EXPECT_NE(with("MaxAttempts", 1.5).find("Retry[0].MaxAttempts"),
            std::string::npos);
  EXPECT_NE(with("IntervalSeconds", -1).find("IntervalSeconds: must be >= 0"),
            std::string::npos);
  EXPECT_NE(with("MaxDelaySeconds", "x").find("must be a number"),
            std::string::npos);
  EXPECT_NE(with("JitterStrategy", "HALF").find("FULL or NONE"),
            std::string::npos);
  EXPECT_NE(with("ErrorEquals", json::array()).find("non-empty array"),
            std::string::npos);
  EXPECT_NE(with("ErrorEquals", {"Unavailable"}).find("unknown error name"),
            std::string::npos);
  EXPECT_NE(with("ErrorEquals", {"States.ALL", "UNAVAILABLE"})
                .find("States.ALL must appear alone"),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, StatesAllMustBeTheLastRule) {
  json d = Valid();
  d["States"]["a"]["Catch"].insert(
      d["States"]["a"]["Catch"].begin(),
      json{{"ErrorEquals", {"States.ALL"}}, {"Next", "f"}});
  EXPECT_NE(ErrorOf(d).find("Catch[0].ErrorEquals: States.ALL must be the "
                            "last rule"),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, BadMapFields) {
  json d = Valid();
  d["States"]["m"].erase("ItemProcessor");
  EXPECT_NE(ErrorOf(d).find("States.m.ItemProcessor: missing"),
            std::string::npos);
  d = Valid();
  d["States"]["m"]["MaxConcurrency"] = -2;
  EXPECT_NE(ErrorOf(d).find("MaxConcurrency"), std::string::npos);
  d = Valid();
  d["States"]["m"]["ToleratedFailurePercentage"] = 101;
  EXPECT_NE(ErrorOf(d).find("ToleratedFailurePercentage"), std::string::npos);
  d = Valid();
  d["States"]["m"]["ItemsPath"] = "items";
  EXPECT_NE(ErrorOf(d).find("States.m.ItemsPath: path \"items\""),
            std::string::npos);
  d = Valid();
  d["States"]["m"]["Retry"] = json::array();
  EXPECT_NE(ErrorOf(d).find("States.m.Retry: unknown field for a Map"),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, StateNamesAreUniqueAndPathSafe) {
  json d = Valid();
  d["States"]["m"]["ItemProcessor"]["States"] = {
      {"a", {{"Type", "Task"}, {"End", true}}}};
  d["States"]["m"]["ItemProcessor"]["StartAt"] = "a";
  EXPECT_NE(ErrorOf(d).find("unique"), std::string::npos);
  d = Valid();
  d["States"]["a/b"] = {{"Type", "Succeed"}};
  EXPECT_NE(ErrorOf(d).find("States.a/b: a state name"), std::string::npos);
  d = Valid();
  d["States"]["7"] = {{"Type", "Succeed"}};
  EXPECT_NE(ErrorOf(d).find("not only digits"), std::string::npos);
}

TEST(WorkflowDefinitionTest, CbpipeExtensionsAreChecked) {
  json d = Valid();
  d["States"]["a"]["cbpipe"] = {{"redrive_from", "b"}};  // not top-level
  EXPECT_NE(ErrorOf(d).find("cbpipe.redrive_from: no top-level state"),
            std::string::npos);
  d = Valid();
  d["States"]["a"]["cbpipe"] = {{"end_state", "done"}};
  EXPECT_NE(ErrorOf(d).find("end_state"), std::string::npos);
  d = Valid();
  d["States"]["f"] = {{"Type", "Task"},
                      {"End", true},
                      {"cbpipe", {{"retry_from_input", "$.retry"}}}};
  EXPECT_NE(ErrorOf(d).find("only for a Task with Retry rules"),
            std::string::npos);
  d = Valid();
  d["States"]["a"]["cbpipe"] = {
      {"input_schema", {{"properties", {{"x", {{"type", "date"}}}}}}}};
  EXPECT_NE(ErrorOf(d).find("input_schema.properties.x.type"),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, ChoiceNeedsRulesWithKnownTargets) {
  json d = Valid();
  d["States"]["a"]["Next"] = "c";
  d["States"]["c"] = {{"Type", "Choice"}, {"Choices", json::array()}};
  EXPECT_NE(ErrorOf(d).find("States.c.Choices: must be a non-empty array"),
            std::string::npos);
  d["States"]["c"]["Choices"] = {
      {{"Variable", "$.x"}, {"NumericEquals", "1"}, {"Next", "m"}}};
  EXPECT_NE(ErrorOf(d).find("wrong type of value"), std::string::npos);
  d["States"]["c"]["Choices"] = {
      {{"Variable", "$.x"}, {"NumericEquals", 1}, {"Next", "zz"}}};
  EXPECT_NE(ErrorOf(d).find("Choices[0].Next: no state named \"zz\""),
            std::string::npos);
}

TEST(WorkflowDefinitionTest, SchemaCheckNamesTheField) {
  JsonSchema s;
  s.present = true;
  s.required = {"run"};
  s.types = {{"run", "object"}, {"n", "integer"}};
  EXPECT_TRUE(s.Check({{"run", json::object()}, {"n", 3}}).ok());
  EXPECT_EQ(s.Check({{"n", 3}}).message(), "missing run");
  EXPECT_EQ(s.Check({{"run", json::object()}, {"n", "3"}}).message(),
            "n: not of type integer");
  EXPECT_EQ(s.Check(json::array()).message(), "not an object");
}

TEST(WorkflowDefinitionTest, JsonPathPutsAndFinds) {
  StatusOr<JsonPath> p = JsonPath::Parse("$.a.b");
  ASSERT_TRUE(p.ok());
  StatusOr<json> doc = p->Put({{"x", 1}}, 7);
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(*doc, json::parse(R"({"x":1,"a":{"b":7}})"));
  EXPECT_EQ(*p->Find(*doc), 7);
  EXPECT_FALSE(p->Put({{"a", 3}}, 7).ok());  // a is not an object
  EXPECT_FALSE(JsonPath::Parse("$.a[0]").ok());
  EXPECT_FALSE(JsonPath::Parse("$..a").ok());
  StatusOr<JsonPath> discard = JsonPath::Parse(nullptr);
  ASSERT_TRUE(discard.ok());
  EXPECT_EQ(*discard->Put({{"x", 1}}, 7), json({{"x", 1}}));
}

TEST(WorkflowDefinitionTest, CbpipeWorkflowLoadsAndHasTheAgreedSteps) {
  StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  const StateMachine& root = def->root();
  EXPECT_EQ(root.start_at, "scan");
  for (const char* task :
       {"scan", "notify", "settle", "reject_input", "record_failure"})
    EXPECT_EQ(root.Find(task)->type, StateType::kTask) << task;
  const State* batches = root.Find("batches");
  ASSERT_EQ(batches->type, StateType::kMap);
  EXPECT_EQ(batches->processor->Find("verify")->redrive_from, "scan");
  const State* dests = batches->processor->Find("destinations");
  ASSERT_EQ(dests->type, StateType::kMap);
  EXPECT_EQ(dests->tolerated_failure_percentage, 100);
  const State* deliver = dests->processor->Find("deliver");
  ASSERT_NE(deliver, nullptr);
  EXPECT_TRUE(deliver->retry_from_input.has_value());
  EXPECT_EQ(root.Find("settle")->redrive_from, "batches");
  EXPECT_EQ(root.Find("reject_input")->end_state, "rejected");
  EXPECT_EQ(root.Find("failed")->type, StateType::kFail);
  EXPECT_EQ(root.Find("scan")->catches.at(0).next, "reject_input");
}

TEST(WorkflowDefinitionTest, FromKeepsOnlyWhatFollows) {
  StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
  ASSERT_TRUE(def.ok());
  StatusOr<WorkflowDefinition> replay = def->From("batches");
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  EXPECT_EQ(replay->root().start_at, "batches");
  EXPECT_EQ(replay->root().Find("scan"), nullptr);
  EXPECT_EQ(replay->root().Find("reject_input"), nullptr);
  EXPECT_NE(replay->root().Find("settle"), nullptr);
  EXPECT_FALSE(def->From("nope").ok());
}

}  // namespace
}  // namespace cbpipe
