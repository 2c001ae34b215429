// deploy/aws/cbpipe.yaml and the runtime agree on each function's
// environment: every CBPIPE_* variable the template sets is one the
// handler reads (LambdaVariablesOf), every one it requires is set, and each
// names the kind of resource the runtime takes it for. The YAML is read by
// PyYAML (cfn-lint's dependency: in the image and CI) into JSON.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "lambda/function.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

// Per Lambda function: its Handler, per variable the Type of the resource
// its value refers to ("" for a parameter or a literal), looking through
// Fn::If, and its /tmp in MiB (a parameter's default for a Ref; Lambda's
// 512 when not set); the parameters' defaults; the number of DynamoDB
// tables.
constexpr char kScript[] = R"PY(
import json, sys, yaml
class Loader(yaml.SafeLoader): pass
Loader.add_multi_constructor('!', lambda l, s, n: None)
t = yaml.load(open(sys.argv[1]), Loader=Loader)
res = t['Resources']
def kind(v):
    if isinstance(v, dict):
        if 'Ref' in v: return res.get(v['Ref'], {}).get('Type', '')
        if 'Fn::GetAtt' in v: return res.get(v['Fn::GetAtt'][0], {}).get('Type', '')
        if 'Fn::If' in v:
            kinds = [kind(x) for x in v['Fn::If'][1:]]
            return next((k for k in kinds if k), '')
    return ''
params = {k: p.get('Default') for k, p in t.get('Parameters', {}).items()}
def value(v):
    return params.get(v['Ref']) if isinstance(v, dict) and 'Ref' in v else v
out = {'functions': [], 'tables': 0, 'parameters': params}
for name, r in res.items():
    if r['Type'] == 'AWS::DynamoDB::Table': out['tables'] += 1
    if r['Type'] != 'AWS::Lambda::Function': continue
    p = r['Properties']
    env = p.get('Environment', {}).get('Variables', {})
    tmp = value(p.get('EphemeralStorage', {}).get('Size', 512))
    out['functions'].append({'resource': name, 'handler': p['Handler'],
                             'vars': {k: kind(v) for k, v in env.items()},
                             'tmp_mib': int(tmp)})
print(json.dumps(out))
)PY";

json ReadTemplate() {
  const std::string script_path =
      ::testing::TempDir() + "/cbpipe_template_env_" +
      std::to_string(::getpid()) + ".py";
  FILE* f = std::fopen(script_path.c_str(), "w");
  EXPECT_NE(f, nullptr);
  if (!f) return json();
  std::fputs(kScript, f);
  std::fclose(f);
  const std::string command = "python3 " + script_path + " " +
                              CBPIPE_SOURCE_DIR "/deploy/aws/cbpipe.yaml";
  FILE* p = ::popen(command.c_str(), "r");
  EXPECT_NE(p, nullptr);
  if (!p) return json();
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << "python3 with PyYAML is needed: " << command;
  std::remove(script_path.c_str());
  return json::parse(text, nullptr, false);
}

// The resource type each variable's value must be (by name).
std::string ExpectedKind(const std::string& var) {
  if (var.ends_with("_BUCKET")) return "AWS::S3::Bucket";
  if (var == "CBPIPE_STATE_TABLE") return "AWS::DynamoDB::Table";
  if (var == "CBPIPE_NOTIFICATION_TOPIC_ARN") return "AWS::SNS::Topic";
  if (var == "CBPIPE_STATE_MACHINE_ARN")
    return "AWS::StepFunctions::StateMachine";
  if (var.starts_with("CBPIPE_DESTINATION_") && var.ends_with("_SECRET"))
    return "AWS::SecretsManager::Secret";
  return "";  // parameters: URLs, limits
}

TEST(LambdaTemplateTest, EveryFunctionGetsWhatItsHandlerReads) {
  const json t = ReadTemplate();
  ASSERT_TRUE(t.is_object()) << "the template could not be read";
  std::set<std::string> handled;
  for (const json& fn : t["functions"]) {
    const std::string resource = fn["resource"];
    const std::string handler = fn["handler"];
    SCOPED_TRACE(resource + " (_HANDLER " + handler + ")");
    const std::vector<std::string> handlers = LambdaHandlerNames();
    EXPECT_NE(std::find(handlers.begin(), handlers.end(), handler),
              handlers.end())
        << "no such handler";
    handled.insert(handler);
    std::map<std::string, bool> reads;
    for (const LambdaConfigVariable& v : LambdaVariablesOf(handler))
      reads[v.name] = v.required;
    for (const auto& [var, kind] : fn["vars"].items()) {
      if (!var.starts_with("CBPIPE_")) continue;
      EXPECT_TRUE(reads.count(var)) << var << " is set but never read";
      EXPECT_EQ(kind.get<std::string>(), ExpectedKind(var))
          << var << " refers to the wrong kind of resource";
    }
    // The template gives every function its config by variables: it must
    // not also give CBPIPE_CONFIG (an init error).
    EXPECT_FALSE(fn["vars"].contains("CBPIPE_CONFIG"));
    for (const auto& [var, required] : reads) {
      if (required) {
        EXPECT_TRUE(fn["vars"].contains(var)) << var << " missing";
      }
    }
  }
  for (const std::string& h : LambdaHandlerNames())
    EXPECT_TRUE(handled.count(h)) << "no function for the handler " << h;
  // The run store and the ledger share one table (dynamodb://TABLE).
  EXPECT_EQ(t["tables"], 1);
}

// The test above can fail: a variable nobody reads is caught.
TEST(LambdaTemplateTest, AStepReadsNoStateMachineButStartDoes) {
  auto names = [](const std::string& handler) {
    std::set<std::string> out;
    for (const LambdaConfigVariable& v : LambdaVariablesOf(handler))
      out.insert(v.name);
    return out;
  };
  EXPECT_FALSE(names("scan").count("CBPIPE_STATE_MACHINE_ARN"));
  EXPECT_TRUE(names("start").count("CBPIPE_STATE_MACHINE_ARN"));
  EXPECT_FALSE(names("start").count("CBPIPE_PROCESSED_BUCKET"));
  EXPECT_TRUE(names("deliver").count("CBPIPE_DESTINATION_DISCOVER_SECRET"));
}

// Lambda's /tmp (ephemeral storage) is 512 MiB unless the function says
// otherwise, and a step that runs out of it fails the run. With the
// template's defaults: scan holds the input's copy, the files it writes
// and the rejects at once (each at most about the input's size); verify a
// batch's files; deliver one file.
TEST(LambdaTemplateTest, EachStepsTmpHoldsWhatItWritesAtTheDefaultLimits) {
  const json t = ReadTemplate();
  ASSERT_TRUE(t.is_object()) << "the template could not be read";
  const json& params = t["parameters"];
  const double mib = 1024.0 * 1024.0;
  const double input = params["MaxInputBytes"].get<double>() / mib;
  const double file = params["MaxFileBytes"].get<double>() / mib;
  const double batch = params["MaxFilesPerBatch"].get<double>() * file;
  std::map<std::string, double> needs = {
      {"scan", 3 * input}, {"verify", batch}, {"deliver", file}};
  for (const json& fn : t["functions"]) {
    const std::string handler = fn["handler"];
    if (!needs.count(handler)) continue;
    EXPECT_GE(fn["tmp_mib"].get<double>(), needs[handler])
        << handler << ": " << fn["tmp_mib"] << " MiB of /tmp";
    needs.erase(handler);
  }
  EXPECT_TRUE(needs.empty()) << "a step has no function";
}

}  // namespace
}  // namespace cbpipe
