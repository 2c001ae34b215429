// The monitoring artifacts (issue 13), checked against the real thing:
// - deploy/prometheus/cbpipe-rules.yml: `promtool check rules` accepts it
//   and `promtool test rules cbpipe-rules.test.yml` passes (each alert
//   firing and not firing).
// - deploy/grafana/cbpipe-dashboard.json: a dashboard Grafana imports
//   (schema, the ${DS_PROMETHEUS} input, the destination variable).
// - Every metric and label the dashboard and the rules query exists in the
//   /metrics of a `cbpipe serve` that delivered files to real SFTP and FTPS
//   servers (one destination refused, so failures, retries and dead letters
//   have their series too); the scrape passes `promtool check metrics`.
// PromQL is read by a small tokenizer (promtool has no query parser CLI):
// selectors (metric{label op "value"}), grouping labels (by, on, ...),
// label_values(metric, label) of the dashboard's variables.
// Runs from the source tree (CTest's working directory). promtool comes
// from Debian's prometheus package (scripts/bootstrap); without it the
// promtool parts are skipped, except under CI (CI set), where they fail.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e/cli.h"
#include "e2e/destinations.h"
#include "e2e/serve_process.h"
#include "deploy/shell.h"
#include "servers/test_servers.h"
#include "telemetry/metrics.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr char kRules[] = "deploy/prometheus/cbpipe-rules.yml";
constexpr char kRulesTests[] = "deploy/prometheus/cbpipe-rules.test.yml";
constexpr char kDashboard[] = "deploy/grafana/cbpipe-dashboard.json";

// --- promtool

bool HavePromtool() { return RunShell("command -v promtool").rc == 0; }

// In CI promtool must be there (scripts/bootstrap installs it).
#define REQUIRE_PROMTOOL()                                                   \
  do {                                                                       \
    if (!HavePromtool()) {                                                   \
      if (std::getenv("CI") != nullptr) {                                    \
        FAIL() << "promtool not found (scripts/bootstrap installs Debian's " \
                  "prometheus package)";                                     \
      }                                                                      \
      GTEST_SKIP() << "promtool not found: run scripts/bootstrap";           \
    }                                                                        \
  } while (0)

// --- PromQL, as much as the checks need

struct Selector {
  std::string metric;
  std::set<std::string> labels;  // label names of its matchers
};

struct QueryUse {
  std::vector<Selector> selectors;
  // Labels named by by/without/on/ignoring/group_left/group_right and
  // label_values: each must be a label of one of the selectors' metrics.
  std::set<std::string> grouping;
};

bool IsNameStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool IsNameChar(char c) {
  return IsNameStart(c) || std::isdigit(static_cast<unsigned char>(c));
}

struct Token {
  enum Kind { kName, kString, kNumber, kPunct } kind;
  std::string text;
};

// Grafana's variables ($instance, ${destination}, $__rate_interval) are
// only in strings and ranges here; outside them they read as names.
std::vector<Token> Tokenize(const std::string& q) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < q.size()) {
    const char c = q[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '"' || c == '\'' || c == '`') {
      size_t j = i + 1;
      while (j < q.size() && q[j] != c) j += (q[j] == '\\' && c != '`') ? 2 : 1;
      out.push_back({Token::kString, q.substr(i + 1, j - i - 1)});
      i = j + 1;
    } else if (c == '[') {  // a range or subquery: [5m], [$__rate_interval]
      const size_t j = q.find(']', i);
      i = j == std::string::npos ? q.size() : j + 1;
    } else if (c == '$') {  // $name or ${name}: one variable token
      size_t j = i + 1;
      const bool braced = j < q.size() && q[j] == '{';
      if (braced) ++j;
      while (j < q.size() && IsNameChar(q[j])) ++j;
      if (braced && j < q.size() && q[j] == '}') ++j;
      out.push_back({Token::kName, q.substr(i, j - i)});
      i = j;
    } else if (IsNameStart(c)) {
      size_t j = i + 1;
      while (j < q.size() && IsNameChar(q[j])) ++j;
      out.push_back({Token::kName, q.substr(i, j - i)});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      size_t j = i + 1;
      while (j < q.size() && (std::isalnum(static_cast<unsigned char>(q[j])) ||
                              q[j] == '.'))
        ++j;
      out.push_back({Token::kNumber, q.substr(i, j - i)});
      i = j;
    } else {
      // Two-character operators first.
      static const char* const kOps[] = {"=~", "!~", "!=", "==", ">=", "<="};
      std::string op(1, c);
      for (const char* two : kOps)
        if (q.compare(i, 2, two) == 0) op = two;
      out.push_back({Token::kPunct, op});
      i += op.size();
    }
  }
  return out;
}

const std::set<std::string>& Keywords() {
  static const std::set<std::string> k = {
      "and", "or", "unless", "bool", "offset", "by", "without", "on",
      "ignoring", "group_left", "group_right", "inf", "nan", "atan2",
      // aggregations, which may come before their parentheses:
      // sum by (x) (...)
      "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk",
      "bottomk", "quantile", "count_values", "group"};
  return k;
}

// Reads a label list "( a, b )" starting at tokens[*i] == "(".
std::vector<std::string> LabelList(const std::vector<Token>& t, size_t* i) {
  std::vector<std::string> names;
  if (*i >= t.size() || t[*i].text != "(") return names;
  for (++*i; *i < t.size() && t[*i].text != ")"; ++*i)
    if (t[*i].kind == Token::kName) names.push_back(t[*i].text);
  if (*i < t.size()) ++*i;
  return names;
}

QueryUse ParseQuery(const std::string& q) {
  QueryUse use;
  const std::vector<Token> t = Tokenize(q);
  size_t i = 0;
  auto next_is = [&](size_t k, const char* s) {
    return k < t.size() && t[k].kind == Token::kPunct && t[k].text == s;
  };
  while (i < t.size()) {
    const Token& tok = t[i];
    if (tok.kind != Token::kName) {
      ++i;
      continue;
    }
    if (tok.text == "by" || tok.text == "without" || tok.text == "on" ||
        tok.text == "ignoring" || tok.text == "group_left" ||
        tok.text == "group_right") {
      ++i;
      for (std::string& l : LabelList(t, &i)) use.grouping.insert(l);
      continue;
    }
    // A selector: metric, then its matchers' label names.
    auto selector = [&] {
      Selector s;
      s.metric = t[i].text;
      ++i;
      if (next_is(i, "{")) {
        for (++i; i < t.size() && !next_is(i, "}"); ++i) {
          // name op "value": the names are the tokens before an operator.
          if (t[i].kind == Token::kName && i + 1 < t.size() &&
              t[i + 1].kind == Token::kPunct && t[i + 1].text != ",")
            s.labels.insert(t[i].text);
        }
        ++i;
      }
      use.selectors.push_back(std::move(s));
    };
    if (tok.text == "label_values" && next_is(i + 1, "(")) {
      // Grafana's label_values(metric{...}, label) or label_values(label).
      i += 2;
      if (i < t.size() && next_is(i + 1, ")")) {
        use.grouping.insert(t[i].text);
      } else if (i < t.size()) {
        selector();
        if (next_is(i, ",") && i + 1 < t.size())
          use.grouping.insert(t[i + 1].text);
      }
      while (i < t.size() && !next_is(i, ")")) ++i;
      continue;
    }
    if (Keywords().count(tok.text) || tok.text[0] == '$' ||
        next_is(i + 1, "(")) {
      ++i;  // a keyword, a variable, a function or an aggregation
      continue;
    }
    selector();
  }
  return use;
}

// --- the queries of the artifacts

struct Query {
  std::string where;  // "dashboard panel \"...\"", "rule CbpipeX"
  std::string expr;
};

std::vector<Query> DashboardQueries(const json& dash) {
  std::vector<Query> out;
  std::function<void(const json&)> panels = [&](const json& list) {
    for (const json& p : list) {
      if (p.contains("panels")) panels(p["panels"]);
      for (const json& t : p.value("targets", json::array()))
        out.push_back({"dashboard panel \"" + p.value("title", "") + "\"",
                       t.value("expr", "")});
    }
  };
  panels(dash["panels"]);
  for (const json& v : dash["templating"]["list"]) {
    const json& q = v["query"];
    out.push_back({"dashboard variable " + v.value("name", ""),
                   q.is_object() ? q.value("query", "") : q.get<std::string>()});
  }
  return out;
}

// The `expr:` of each rule: on its line, or the block scalar (>-, |)
// indented below it.
std::vector<Query> RuleQueries(const std::string& yaml) {
  std::vector<Query> out;
  std::vector<std::string> lines;
  for (size_t start = 0; start <= yaml.size();) {
    size_t end = yaml.find('\n', start);
    if (end == std::string::npos) end = yaml.size();
    lines.push_back(yaml.substr(start, end - start));
    start = end + 1;
  }
  static const std::regex kAlert(R"(^\s*- alert:\s*(\S+)\s*$)");
  static const std::regex kExpr(R"(^(\s*)expr:\s*(.*)$)");
  std::string alert;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    if (std::regex_match(lines[i], m, kAlert)) alert = m[1];
    if (!std::regex_match(lines[i], m, kExpr)) continue;
    std::string expr = m[2];
    const size_t indent = m[1].length();
    if (!expr.empty() && (expr[0] == '>' || expr[0] == '|')) {
      expr.clear();
      while (i + 1 < lines.size() &&
             (lines[i + 1].find_first_not_of(' ') > indent ||
              lines[i + 1].find_first_not_of(' ') == std::string::npos)) {
        expr += lines[++i] + "\n";
      }
    }
    out.push_back({"rule " + alert, expr});
  }
  return out;
}

// --- the scrape

// Series name -> the label names its samples carry. A family the scrape
// declares (# TYPE) without a sample yet (a labelled gauge no code has set
// at this moment) is served too: its series names map to the label names
// PipelineMetricSpecs() declares for it, the exporter's source of truth.
using Scrape = std::map<std::string, std::set<std::string>>;

Scrape ParseScrape(const std::string& text) {
  Scrape out;
  std::map<std::string, std::string> families;  // name -> type
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      const size_t sp = line.find(' ', 7);
      families[line.substr(7, sp - 7)] = line.substr(sp + 1);
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    size_t i = 0;
    while (i < line.size() && IsNameChar(line[i])) ++i;
    std::set<std::string>& labels = out[line.substr(0, i)];
    if (i < line.size() && line[i] == '{') {
      // name="value" pairs; values escape \ " and newline.
      while (++i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        labels.insert(line.substr(i, eq - i));
        i = eq + 2;
        while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
        ++i;  // past the closing quote; at ',' or '}'
        if (i < line.size() && line[i] == '}') break;
      }
    }
  }
  for (const auto& [name, type] : families) {
    const std::vector<std::string> names =
        type == "histogram"
            ? std::vector<std::string>{name + "_bucket", name + "_sum",
                                       name + "_count"}
            : std::vector<std::string>{name};
    if (out.count(names[0])) continue;
    std::set<std::string> declared;
    for (const MetricSpec& spec : PipelineMetricSpecs())
      if (spec.name == name)
        declared.insert(spec.label_names.begin(), spec.label_names.end());
    if (type == "histogram") declared.insert("le");
    for (const std::string& n : names) out[n] = declared;
  }
  return out;
}

// What Prometheus adds to every scraped series, and its own series.
const std::set<std::string>& TargetLabels() {
  static const std::set<std::string> l = {"job", "instance"};
  return l;
}

// The problems of `q` against `scrape`: each selector's metric must be a
// series of the scrape ("up" is Prometheus's own, per target) and each of
// its labels on that series; each grouping label on one of them.
std::vector<std::string> CheckQuery(const Query& q, const Scrape& scrape) {
  std::vector<std::string> problems;
  const QueryUse use = ParseQuery(q.expr);
  if (use.selectors.empty())
    problems.push_back(q.where + ": no metric found in `" + q.expr + "`");
  std::set<std::string> known = TargetLabels();
  for (const Selector& s : use.selectors) {
    std::set<std::string> labels = TargetLabels();
    if (s.metric != "up") {
      auto it = scrape.find(s.metric);
      if (it == scrape.end()) {
        problems.push_back(q.where + ": metric " + s.metric +
                           " is not in /metrics");
        continue;
      }
      labels.insert(it->second.begin(), it->second.end());
    }
    for (const std::string& l : s.labels) {
      if (!labels.count(l))
        problems.push_back(q.where + ": " + s.metric + " has no label " + l);
    }
    known.insert(labels.begin(), labels.end());
  }
  for (const std::string& l : use.grouping) {
    if (!known.count(l))
      problems.push_back(q.where + ": no queried metric has label " + l);
  }
  return problems;
}

// --- tests of the reader itself (a check that cannot fail proves nothing)

TEST(PromQlReaderTest, FindsSelectorsLabelsAndGrouping) {
  const QueryUse u = ParseQuery(
      "histogram_quantile(0.95, sum by (destination, le) (rate("
      "cbpipe_delivery_latency_seconds_bucket{instance=~\"$instance\", "
      "destination=~\"$destination\"}[$__rate_interval]))) > 0 unless on "
      "(job) absent(up{job=\"cbpipe\"}) or cbpipe_up == bool 0");
  ASSERT_EQ(u.selectors.size(), 3u);
  EXPECT_EQ(u.selectors[0].metric, "cbpipe_delivery_latency_seconds_bucket");
  EXPECT_EQ(u.selectors[0].labels,
            (std::set<std::string>{"instance", "destination"}));
  EXPECT_EQ(u.selectors[1].metric, "up");
  EXPECT_EQ(u.selectors[1].labels, (std::set<std::string>{"job"}));
  EXPECT_EQ(u.selectors[2].metric, "cbpipe_up");
  EXPECT_EQ(u.grouping, (std::set<std::string>{"destination", "le", "job"}));

  const QueryUse v =
      ParseQuery("label_values(cbpipe_files_delivered_total, destination)");
  ASSERT_EQ(v.selectors.size(), 1u);
  EXPECT_EQ(v.selectors[0].metric, "cbpipe_files_delivered_total");
  EXPECT_EQ(v.grouping, (std::set<std::string>{"destination"}));
}

TEST(PromQlReaderTest, ReportsWhatTheScrapeLacks) {
  const Scrape scrape = ParseScrape(
      "# TYPE cbpipe_files_delivered_total counter\n"
      "cbpipe_files_delivered_total{destination=\"a\\\"b,c\",status=\"ok\"} "
      "1\n"
      "cbpipe_queue_depth 3\n");
  EXPECT_EQ(scrape.at("cbpipe_files_delivered_total"),
            (std::set<std::string>{"destination", "status"}));
  EXPECT_TRUE(scrape.at("cbpipe_queue_depth").empty());
  // Declared, no sample yet: the declared labels.
  const Scrape declared = ParseScrape(
      "# HELP cbpipe_delivery_latency_seconds x\n"
      "# TYPE cbpipe_delivery_latency_seconds histogram\n");
  EXPECT_EQ(declared.at("cbpipe_delivery_latency_seconds_bucket"),
            (std::set<std::string>{"destination", "le"}));
  EXPECT_TRUE(
      CheckQuery({"ok", "sum by (destination) (cbpipe_files_delivered_total"
                        "{status=\"failed\", instance=~\"$i\"}) or "
                        "up{job=\"cbpipe\"}"},
                 scrape)
          .empty());
  EXPECT_THAT(CheckQuery({"q", "cbpipe_nope_total"}, scrape),
              ::testing::ElementsAre("q: metric cbpipe_nope_total is not in "
                                     "/metrics"));
  EXPECT_THAT(CheckQuery({"q", "cbpipe_queue_depth{destination=\"x\"}"},
                         scrape),
              ::testing::ElementsAre("q: cbpipe_queue_depth has no label "
                                     "destination"));
  EXPECT_THAT(CheckQuery({"q", "sum by (network) (cbpipe_queue_depth)"},
                         scrape),
              ::testing::ElementsAre("q: no queried metric has label network"));
}

TEST(PromQlReaderTest, ReadsEveryRuleExpression) {
  const std::string yaml = ReadFile(kRules);
  ASSERT_FALSE(yaml.empty()) << kRules;
  const std::vector<Query> rules = RuleQueries(yaml);
  size_t alerts = 0;
  for (size_t p = yaml.find("- alert:"); p != std::string::npos;
       p = yaml.find("- alert:", p + 1))
    ++alerts;
  EXPECT_EQ(rules.size(), alerts);
  for (const Query& q : rules)
    EXPECT_FALSE(ParseQuery(q.expr).selectors.empty()) << q.where << q.expr;
}

// --- the artifacts

TEST(MonitoringArtifactsTest, PromtoolChecksAndTestsTheRules) {
  REQUIRE_PROMTOOL();
  Command check = RunShell("promtool check rules " + std::string(kRules));
  EXPECT_EQ(check.rc, 0) << check.out;
  EXPECT_THAT(check.out, ::testing::HasSubstr("SUCCESS"));
  const fs::path tests(kRulesTests);
  Command test = RunShell("cd " + ShellQuote(tests.parent_path().string()) +
                          " && promtool test rules " +
                          ShellQuote(tests.filename().string()));
  EXPECT_EQ(test.rc, 0) << test.out;
  EXPECT_THAT(test.out, ::testing::HasSubstr("SUCCESS"));
}

TEST(MonitoringArtifactsTest, DashboardImportsWithItsDatasourceInput) {
  const json dash = json::parse(ReadFile(kDashboard));
  EXPECT_GE(dash["schemaVersion"].get<int>(), 36);
  EXPECT_TRUE(dash["id"].is_null());  // importable anywhere
  ASSERT_EQ(dash["__inputs"].size(), 1u);
  EXPECT_EQ(dash["__inputs"][0]["name"], "DS_PROMETHEUS");
  EXPECT_EQ(dash["__inputs"][0]["pluginId"], "prometheus");
  std::set<std::string> variables;
  for (const json& v : dash["templating"]["list"]) {
    variables.insert(v["name"].get<std::string>());
    EXPECT_EQ(v["datasource"]["uid"], "${DS_PROMETHEUS}") << v["name"];
  }
  EXPECT_TRUE(variables.count("destination"));
  std::set<int> ids;
  int queried = 0;
  for (const json& p : dash["panels"]) {
    EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << p["title"];
    if (p["type"] == "row") continue;
    EXPECT_EQ(p["datasource"]["uid"], "${DS_PROMETHEUS}") << p["title"];
    EXPECT_FALSE(p["targets"].empty()) << p["title"];
    for (const json& t : p["targets"]) {
      EXPECT_EQ(t["datasource"]["uid"], "${DS_PROMETHEUS}") << p["title"];
      ++queried;
    }
    // Panels over destinations follow the variable.
    for (const json& t : p["targets"]) {
      const std::string expr = t["expr"];
      if (expr.find("destination") != std::string::npos &&
          expr.find("{") != std::string::npos) {
        EXPECT_THAT(expr, ::testing::HasSubstr("$destination")) << p["title"];
      }
    }
  }
  EXPECT_GT(queried, 10);
  // What the issue lists, by metric.
  std::string all;
  for (const Query& q : DashboardQueries(dash)) all += q.expr + "\n";
  for (const char* metric :
       {"cbpipe_files_delivered_total", "cbpipe_delivery_retries_total",
        "cbpipe_queue_dead_letters", "cbpipe_step_duration_seconds_bucket",
        "cbpipe_records_accepted_total", "cbpipe_queue_depth",
        "cbpipe_queue_oldest_message_age_seconds", "cbpipe_build_info",
        "cbpipe_up", "cbpipe_destination_up"})
    EXPECT_THAT(all, ::testing::HasSubstr(metric));
}

// A served run to real servers, then the live /metrics against every query.
class LiveMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to start sshd/vsftpd";
    dir_ = std::make_unique<TempDir>("monitoring_live");
    Status started = StartCardServers(dir_->path(), &sftp_, &ftps_);
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  std::unique_ptr<TempDir> dir_;
  std::optional<SshServer> sftp_;
  std::optional<FtpServer> ftps_;
};

TEST_F(LiveMetricsTest, EveryQueriedMetricAndLabelIsServed) {
  auto admin_port = FindFreePort();
  ASSERT_TRUE(admin_port.ok());
  // visa's server refuses connections (nothing listens on its port): its
  // attempts fail, are retried, and end as a dead letter.
  auto closed_port = FindFreePort();
  ASSERT_TRUE(closed_port.ok());
  const std::string retry = FastRetry(2);
  std::string config =
      "[output]\nwork_dir = \"" + *dir_ / "work" +
      "\"\n\n[service]\nsettle_ms = 50\npoll_interval_ms = 50\n"
      "visibility_seconds = 2\nworkers = 2\nadmin_listen = \"127.0.0.1:" +
      std::to_string(*admin_port) + "\"\nshutdown_timeout_seconds = 10\n";
  config += SftpDestination(*sftp_, "visa", retry, *closed_port);
  config += SftpDestination(*sftp_, "mastercard", retry);
  for (const char* net : {"amex", "discover"})
    config += FtpsDestination(*ftps_, net, "env:CBPIPE_TEST_FTPS_PASSWORD",
                              retry);
  WriteFile(*dir_ / "serve.toml", config);
  fs::create_directories(*dir_ / "work/inbox");
  ASSERT_EQ(RunCli("gen-sample --records 400 --invalid-ratio 0.05 --seed 13 "
                   "--output " +
                   ShellQuote(*dir_ / "in.csv"))
                .exit_code,
            0);
  fs::rename(*dir_ / "in.csv", *dir_ / "work/inbox/in.csv");
  const std::string log = *dir_ / "serve.log";
  ServeProcess serve(*dir_ / "serve.toml", log,
                     {"CBPIPE_TEST_FTPS_PASSWORD=" + ftps_->password()});
  // Done when visa's delivery is a dead letter (after its retries) and the
  // other three destinations have their files.
  httplib::Client api("127.0.0.1", *admin_port);
  std::string text;
  for (int waited = 0; waited < 60000; waited += 100) {
    auto metrics = api.Get("/metrics");
    if (metrics && metrics->status == 200) text = metrics->body;
    if (text.find("cbpipe_queue_dead_letters 1\n") != std::string::npos &&
        text.find("cbpipe_inputs_total{outcome=\"failed\"} 1\n") !=
            std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_THAT(text, ::testing::HasSubstr("cbpipe_queue_dead_letters 1\n"))
      << ReadFile(log);
  const Scrape scrape = ParseScrape(text);
  // What the run must have produced for the check to mean something.
  for (const char* series :
       {"cbpipe_files_delivered_total", "cbpipe_delivery_retries_total",
        "cbpipe_step_duration_seconds_bucket", "cbpipe_build_info"})
    EXPECT_TRUE(scrape.count(series)) << series << "\n" << text;
  EXPECT_THAT(text, ::testing::HasSubstr("cbpipe_up 1\n"));

  std::vector<Query> queries =
      DashboardQueries(json::parse(ReadFile(kDashboard)));
  for (Query& q : RuleQueries(ReadFile(kRules))) queries.push_back(q);
  ASSERT_GT(queries.size(), 20u);
  for (const Query& q : queries) {
    for (const std::string& problem : CheckQuery(q, scrape))
      ADD_FAILURE() << problem << "\n  in: " << q.expr;
  }

  // The exposition itself, by Prometheus's own linter.
  if (HavePromtool()) {
    const std::string path = *dir_ / "scrape.txt";
    WriteFile(path, text);
    Command lint = RunShell("promtool check metrics < " + ShellQuote(path));
    EXPECT_EQ(lint.rc, 0) << lint.out;
  } else if (std::getenv("CI") != nullptr) {
    ADD_FAILURE() << "promtool not found";
  }
}

}  // namespace
}  // namespace cbpipe::testing
