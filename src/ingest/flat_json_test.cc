#include "ingest/flat_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ingest/input_buffer.h"

namespace cbpipe::ingest_internal {
namespace {

std::string Describe(const RawRecord& r) {
  std::string s = "position=" + std::to_string(r.position);
  for (int i = 0; i < kFieldCount; ++i) {
    if (!r.present[i] && r.values[i].empty()) continue;
    s += " " + std::string(FieldName(static_cast<Field>(i))) + "=" +
         (r.present[i] ? "" : "(absent)") + "'" + r.values[i] + "'";
  }
  for (const std::string& f : r.sensitive_fields) s += " sensitive:" + f;
  if (!r.malformed.empty()) {
    s += " malformed='" + r.malformed + "' field='" + r.malformed_field + "'";
  }
  return s;
}

bool Same(const RawRecord& a, const RawRecord& b) {
  return a.position == b.position && a.values == b.values &&
         a.present == b.present && a.sensitive_fields == b.sensitive_fields &&
         a.malformed == b.malformed && a.malformed_field == b.malformed_field;
}

FieldMapping TestMapping() {
  FieldMapping m = FieldMapping::Default();
  m.Set(Field::kMerchantId, "Shop");
  return m;
}

// Three independent parsers, as the fuzzer does: fast path alone, simdjson
// alone, and both as the readers combine them. Separate instances also keep
// each path's key cache to itself, so a key decoded differently would show.
class Differential {
 public:
  explicit Differential(const ReaderLimits& limits = {})
      : fast_(MakeJsonObjectParserForTest(TestMapping(), limits)),
        slow_(MakeJsonObjectParserForTest(TestMapping(), limits)),
        both_(MakeJsonObjectParserForTest(TestMapping(), limits)) {}

  // Whether the fast path accepted `text`; fails the test on any difference.
  bool Check(const std::string& text) {
    RawRecord fast, slow, both;
    fast.position = slow.position = both.position = 7;
    const bool accepted = fast_->ParseFlatOnly(text, &fast);
    slow_->ParseSimdjsonOnly(text, &slow);
    both_->Parse(text, &both);
    if (accepted) {
      EXPECT_TRUE(Same(fast, slow))
          << "text: " << text << "\n fast: " << Describe(fast)
          << "\n simdjson: " << Describe(slow);
      // The fast path only takes what simdjson reads cleanly.
      EXPECT_TRUE(slow.malformed.empty()) << text;
    }
    EXPECT_TRUE(Same(both, slow))
        << "text: " << text << "\n combined: " << Describe(both)
        << "\n simdjson: " << Describe(slow);
    return accepted;
  }

 private:
  std::unique_ptr<JsonObjectParserForTest> fast_, slow_, both_;
};

TEST(FlatJson, AcceptsFlatObjectsExactlyAsSimdjson) {
  const std::vector<std::string> lines = {
      R"({})",
      R"( {  } )",
      R"({"case_id":"CB1","amount":12.50,"currency":"EUR"})",
      "{\"case_id\" :\t\"CB1\" ,\r\n \"amount\" : \"7\" }",
      // Every escape, in values and keys.
      R"({"case_id":"a\"b\\c\/d\be\ff\ng\rh\ti"})",
      R"({"merchant_name":"caf\u00e9 \u20AC \uD83D\uDE00 \u00E9"})",
      R"({"merchant_name":"nul\u0000byte","reason_text":"\u001f"})",
      R"({"am\u006Funt":1,"Case\u0020Number":"X"})",
      R"({"\u0063ase_id":"K","c\u0076v":"123"})",
      // Numbers of every form stay as written.
      R"({"amount":0,"mcc":-0,"transaction_amount":-0.0})",
      R"({"amount":1e5,"mcc":1E+5,"transaction_amount":-1.5e-10})",
      R"({"amount":123456789012345678901234567890.000000001})",
      R"({"amount":0.10,"mcc":9E0,"transaction_amount":10e-0})",
      // Literals: true/false as text, null absent.
      R"({"status":true,"stage":false,"reason_code":null})",
      R"({"status":null,"unknown":null,"x":true,"y":false,"z":1})",
      // Raw UTF-8.
      R"({"merchant_name":"Müller & Söhne GmbH","reason_text":"😀 ok"})",
      // Aliases and explicit mapping.
      R"({"Case Number":"A","shop":"M1","mid":"no","dispute_amount":"3"})",
      // Sensitive keys: name only, empty and null do not count.
      R"({"case_id":"A","CVV":"4321","track2":"","pin":null})",
      R"({"case_id":"B","cvc":5678,"track1":true,"cvv2":"\u0031"})",
      R"({"case_id":"B","track2":"\"\"","pan":"4111"})",
      // Unknown keys of every scalar kind, escaped strings included.
      R"({"extra":"x\ny","n":-1.0e3,"e":"","case_id":"Q"})",
      R"({"":"empty key","case_id":""})",
      // Same key names, different raw spelling: two keys, not duplicates.
      R"({"x":1,"\u0078":2})",
  };
  Differential diff;
  for (const std::string& line : lines) {
    EXPECT_TRUE(diff.Check(line)) << "declined: " << line;
  }
  // Twice: the second round runs on warm key caches and key order.
  for (const std::string& line : lines) EXPECT_TRUE(diff.Check(line)) << line;
}

TEST(FlatJson, DeclinesAnythingElse) {
  const std::vector<std::string> lines = {
      "",
      "   ",
      "not json",
      "[1,2]",
      R"("string")",
      R"(42)",
      // Nesting, in known, unknown and sensitive keys.
      R"({"case_id":"B","amount":{"v":1}})",
      R"({"x":[1,2],"case_id":"A"})",
      R"({"cvv":{"a":1}})",
      // Duplicates and two keys for one field: simdjson's messages.
      R"({"case_id":"C","case_id":"D"})",
      R"({"case_id":"E","dispute_id":"F"})",
      R"({"x":1,"x":2})",
      R"({"amount":1,"am\u006Funt":2})",
      R"({"cvv":"1","cvv":"2"})",
      // Trailing content, broken structure.
      R"({"case_id":"G"} {"x":1})",
      R"({"case_id":"G"}})",
      R"({"case_id":"G"},)",
      R"({"case_id":"I")",
      R"({"case_id":"I",})",
      R"({,"case_id":"I"})",
      R"({"case_id" "I"})",
      R"({"case_id":"I" "x":1})",
      R"({case_id:"I"})",
      R"({'case_id':'I'})",
      R"({"case_id":})",
      R"({"case_id")",
      R"({"case_id":"unterminated})",
      // Numbers outside the grammar.
      R"({"amount":1.2.3})",
      R"({"amount":01})",
      R"({"amount":+1})",
      R"({"amount":.5})",
      R"({"amount":1.})",
      R"({"amount":1e})",
      R"({"amount":1e+})",
      R"({"amount":-})",
      R"({"amount":-a})",
      R"({"amount":1x})",
      R"({"amount":NaN})",
      R"({"amount":Infinity})",
      R"({"x":0x10})",
      // Literals.
      R"({"status":tru})",
      R"({"status":True})",
      R"({"status":nul})",
      R"({"status":nullx})",
      R"({"status":falsey})",
      // Escapes: unknown, short, lone surrogates, in values and keys.
      R"({"case_id":"a\x"})",
      R"({"case_id":"a\u12"})",
      R"({"case_id":"a\u12G4"})",
      R"({"case_id":"\uD800"})",
      R"({"case_id":"\uD800x"})",
      R"({"case_id":"\uD800\u0041"})",
      R"({"case_id":"\uDC00"})",
      R"({"case_id":"\uDBFF\uDBFF"})",
      R"({"x":"\q"})",
      R"({"cvv":"\uD800"})",
      R"({"ca\qse_id":"A"})",
      R"({"\uDC00":"A"})",
      "{\"case_id\":\"a\\",
      // Raw control characters in strings.
      "{\"case_id\":\"a\tb\"}",
      "{\"case_id\":\"a\nb\"}",
      "{\"ca\x01se_id\":\"a\"}",
      "{\"x\":\"\x1f\"}",
  };
  Differential diff;
  for (const std::string& line : lines) {
    EXPECT_FALSE(diff.Check(line)) << "accepted: " << line;
  }
}

TEST(FlatJson, KeyGuessesNeverChangeTheResult) {
  // Keys are guessed from the previous record's order: gaps, reorderings,
  // a guess that is a prefix of the real key or the real key a prefix of
  // the guess, and escaped keys, must all read as if nothing was guessed.
  const std::vector<std::string> lines = {
      R"({"case_id":"1","network":"visa","amount":"1","stage":"x"})",
      R"({"case_id":"2","amount":"2","stage":"y"})",
      R"({"case_id":"3","network":"mc","amount":"3","stage":"z"})",
      R"({"stage":"z","case_id":"4","amount":"4"})",
      R"({"case":"5","case_id":"5","amount":"5"})",
      R"({"case_id":"6","case":"6","amount":"6"})",
      R"({"case_idx":"7","case_id":"7"})",
      R"({"case_id":"8","amount":"8"})",
      R"({"case_id":"9","amount":"9"})",
      R"({"case_id":"9","amount":"9","amount":"9"})",
      R"({"case_id":"10","am"ount":"10"})",
      R"({"case_id":"11","am"ount":"11"})",
      R"({"case_id":"12","am"ount"":"12"})",
      R"({"case_id":"13","cvv":"1","cvv":"2"})",
      R"({"case_id":"14","cvv":"1"})",
  };
  Differential diff;
  for (int round = 0; round < 3; ++round) {
    for (const std::string& line : lines) diff.Check(line);
  }
}

TEST(FlatJson, FieldLimitDeclines) {
  ReaderLimits limits;
  limits.max_field_bytes = 8;
  Differential diff(limits);
  EXPECT_TRUE(diff.Check(R"({"case_id":"12345678","amount":12345678})"));
  EXPECT_FALSE(diff.Check(R"({"case_id":"123456789"})"));
  EXPECT_FALSE(diff.Check(R"({"amount":123456789})"));
  // Eight escaped bytes decode to eight: within the limit.
  EXPECT_TRUE(diff.Check(R"({"case_id":"\u00e9\u00e9\u00e9\u00e9"})"));
  EXPECT_FALSE(diff.Check(R"({"case_id":"\u00e9\u00e9\u00e9\u00e9x"})"));
  // Values not kept are not limited, as in the simdjson path.
  EXPECT_TRUE(diff.Check(R"({"x":"1234567890","cvv":"1234567890"})"));
}

TEST(FlatJson, DecodeJsonString) {
  std::string out = "junk";
  ASSERT_TRUE(DecodeJsonString(R"(a\"\\\/\b\f\n\r\tz)", &out));
  EXPECT_EQ(out, "a\"\\/\b\f\n\r\tz");
  ASSERT_TRUE(DecodeJsonString(R"(\u0041\u00e9\u20ac\uD83D\uDE00)", &out));
  EXPECT_EQ(out, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  ASSERT_TRUE(DecodeJsonString(R"(\uDBFF\uDFFF)", &out));
  EXPECT_EQ(out, "\xF4\x8F\xBF\xBF");
  ASSERT_TRUE(DecodeJsonString("", &out));
  EXPECT_EQ(out, "");
  for (const char* bad :
       {R"(\)", R"(\a)", R"(\u)", R"(\u00)", R"(\u00G0)", R"(\uD800)",
        R"(\uD800\n)", R"(\uD800\uD800)", R"(\uDFFF)", R"(\U0041)"}) {
    EXPECT_FALSE(DecodeJsonString(bad, &out)) << bad;
  }
}

TEST(FlatJson, FindStringSpecialMatchesByteLoop) {
  std::mt19937 rng(42);
  const std::string alphabet = std::string("abc\"\\\x01\x1f \x7f\x80\xff", 11);
  for (int round = 0; round < 2000; ++round) {
    std::string s(rng() % 40, 'x');
    for (char& c : s) {
      if (rng() % 6 == 0) c = alphabet[rng() % alphabet.size()];
    }
    for (size_t from = 0; from <= s.size(); ++from) {
      const char* begin = s.data() + from;
      const char* end = s.data() + s.size();
      const char* want = begin;
      while (want != end && *want != '"' && *want != '\\' &&
             static_cast<unsigned char>(*want) >= 0x20) {
        ++want;
      }
      ASSERT_EQ(FindStringSpecial(begin, end) - s.data(), want - s.data())
          << "from " << from;
    }
  }
}

// Builds plausible records, then damages some of them.
class LineGenerator {
 public:
  explicit LineGenerator(uint32_t seed) : rng_(seed) {}

  std::string Line() {
    std::string s = Space() + "{" + Space();
    const int members = static_cast<int>(Pick(8));
    for (int i = 0; i < members; ++i) {
      if (i > 0) s += Space() + "," + Space();
      s += Key() + Space() + ":" + Space() + Value();
    }
    s += Space() + "}" + Space();
    if (Pick(3) == 0) Mutate(&s);
    return s;
  }

 private:
  size_t Pick(size_t n) { return rng_() % n; }

  std::string Space() {
    static const char* const kSpaces[] = {"",  "",   "",     "",
                                          " ", "\t", "\r\n", "  "};
    return kSpaces[Pick(8)];
  }

  std::string Key() {
    static const char* const kKeys[] = {"case_id",
                                        "amount",
                                        "currency",
                                        "network",
                                        "stage",
                                        "status",
                                        "mcc",
                                        "transaction_amount",
                                        "Case Number",
                                        "shop",
                                        "mid",
                                        "dispute_amount",
                                        "cvv",
                                        "CVV",
                                        "track2",
                                        "pin",
                                        "x",
                                        "extra",
                                        "",
                                        "am\\u006Funt",
                                        "\\u0063ase_id",
                                        "c\\u0076v",
                                        "k\\n",
                                        "\\uD83D\\uDE00"};
    if (Pick(10) == 0) return "\"" + Text() + "\"";
    return std::string("\"") + kKeys[Pick(std::size(kKeys))] + "\"";
  }

  std::string Text() {
    static const char* const kPieces[] = {"a",
                                          "Z",
                                          "0",
                                          " ",
                                          "é",
                                          "€",
                                          "😀",
                                          "\\\"",
                                          "\\\\",
                                          "\\/",
                                          "\\b",
                                          "\\f",
                                          "\\n",
                                          "\\r",
                                          "\\t",
                                          "\\u0041",
                                          "\\u00e9",
                                          "\\u20AC",
                                          "\\uD83D\\uDE00",
                                          "\\u0000",
                                          "\\uD800",
                                          "\\uDC00",
                                          "\\x",
                                          "\t",
                                          "'"};
    std::string s;
    const size_t n = Pick(12);
    for (size_t i = 0; i < n; ++i) {
      // Mostly plain characters, like real data.
      s += Pick(4) == 0 ? kPieces[Pick(std::size(kPieces))]
                        : std::string(1, static_cast<char>('a' + Pick(26)));
    }
    return s;
  }

  std::string Number() {
    std::string s;
    if (Pick(3) == 0) s += "-";
    if (Pick(4) == 0) {
      s += "0";
    } else {
      s += static_cast<char>('1' + Pick(9));
      for (size_t n = Pick(6); n > 0; --n)
        s += static_cast<char>('0' + Pick(10));
    }
    if (Pick(2) == 0) {
      s += ".";
      for (size_t n = 1 + Pick(4); n > 0; --n) {
        s += static_cast<char>('0' + Pick(10));
      }
    }
    if (Pick(5) == 0) {
      s += Pick(2) ? "e" : "E";
      if (Pick(2) == 0) s += Pick(2) ? "+" : "-";
      for (size_t n = 1 + Pick(3); n > 0; --n) {
        s += static_cast<char>('0' + Pick(10));
      }
    }
    return s;
  }

  std::string Value() {
    switch (Pick(12)) {
      case 0: return "true";
      case 1: return "false";
      case 2: return "null";
      case 3:
      case 4: return Number();
      case 5: return Pick(4) == 0 ? "{\"a\":" + Value() + "}" : "[1,2]";
      default: return "\"" + Text() + "\"";
    }
  }

  void Mutate(std::string* s) {
    static const std::string kBytes = "{}[]\":,\\ u0123456789abcdefeE+-.tnrl\t";
    for (size_t n = 1 + Pick(3); n > 0; --n) {
      const size_t at = Pick(s->size() + 1);
      switch (Pick(3)) {
        case 0: s->insert(at, 1, kBytes[Pick(kBytes.size())]); break;
        case 1:
          if (at < s->size()) s->erase(at, 1);
          break;
        default:
          if (at < s->size()) (*s)[at] = kBytes[Pick(kBytes.size())];
          break;
      }
    }
  }

  std::mt19937 rng_;
};

TEST(FlatJson, RandomLinesMatchSimdjsonWheneverAccepted) {
  LineGenerator gen(20240611);
  ReaderLimits limits;
  limits.max_field_bytes = 24;  // so the limit is met now and then
  Differential diff(limits);
  int checked = 0, accepted = 0;
  for (int i = 0; i < 6000; ++i) {
    const std::string line = gen.Line();
    // The readers only ever parse clean UTF-8 without NUL (InputBuffer
    // rejects the rest), and a mutation can split a character.
    const auto* bytes = reinterpret_cast<const unsigned char*>(line.data());
    if (FindInvalidUtf8(bytes, line.size()) != line.size() ||
        line.find('\0') != std::string::npos) {
      continue;
    }
    ++checked;
    if (diff.Check(line)) ++accepted;
    if (::testing::Test::HasFailure()) break;
  }
  // Both sides of the split must be well exercised.
  EXPECT_GT(accepted, checked / 5) << accepted << " of " << checked;
  EXPECT_LT(accepted, checked * 4 / 5) << accepted << " of " << checked;
}

}  // namespace
}  // namespace cbpipe::ingest_internal
