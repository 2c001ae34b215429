// JSON Lines and JSON array readers. Each record (a line, or one element of
// the top-level array) is cut out of the input window by hand and parsed
// alone, so only one record is ever in memory: by the flat-object fast path
// of flat_json.h when it accepts the text, else with simdjson On Demand.

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "domain/pan.h"
#include "ingest/flat_json.h"
#include "ingest/readers.h"
#include "simdjson.h"

namespace cbpipe::ingest_internal {
namespace {

namespace od = simdjson::ondemand;

// Keys seen once are resolved from then on without FieldFromName, which
// allocates. Bounded, because a hostile input can use a new key every line.
constexpr size_t kMaxCachedKeys = 1024;

bool IsJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view TrimJsonSpace(std::string_view s) {
  while (!s.empty() && IsJsonSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsJsonSpace(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 8259 number grammar. simdjson hands out the raw token without checking
// it, and the amount must stay the exact text that was written.
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i >= s.size()) return false;
  if (s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

// Finds where one array element ends, across refills of the window.
class ElementScanner {
 public:
  void Reset() { *this = ElementScanner(); }
  // Scans `s[0, n)`, the element so far (same start each call). Returns its
  // length once complete, or 0 when the window ends first.
  size_t Scan(const char* s, size_t n) {
    for (size_t i = pos_; i < n; ++i) {
      const char c = s[i];
      if (in_string_) {
        if (escape_) {
          escape_ = false;
        } else if (c == '\\') {
          escape_ = true;
        } else if (c == '"') {
          in_string_ = false;
          if (depth_ == 0) return i + 1;
        }
        continue;
      }
      switch (c) {
        case '"': in_string_ = true; break;
        case '{':
        case '[':
          // A counter, not a stack: depth costs no memory however deep.
          if (++depth_ > max_depth_) max_depth_ = depth_;
          break;
        case '}':
        case ']':
          if (depth_ == 0) return i;  // ends a bare scalar
          if (--depth_ == 0) return i + 1;
          break;
        case ',':
        case ' ':
        case '\t':
        case '\n':
        case '\r':
          if (depth_ == 0 && i > 0) return i;
          break;
        default: break;
      }
    }
    pos_ = n;
    return 0;
  }
  int64_t max_depth() const { return max_depth_; }

 private:
  size_t pos_ = 0;
  int64_t depth_ = 0;
  int64_t max_depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return std::hash<std::string_view>{}(s);
  }
};

struct KeyInfo {
  std::string raw;   // as written between the quotes, escapes included
  std::string name;  // unescaped, for messages and sensitive_fields
  int field = -1;
  bool sensitive = false;
  uint64_t seen_in = 0;  // record stamp, to spot duplicate keys
  bool escaped = false;  // raw holds a backslash
  // No raw control character in `raw`, so the fast path may match the key
  // by its bytes without scanning it (it declines such keys when scanning).
  bool predictable = false;
  // The key that followed this one last time. Records of one file list
  // their keys alike, and when one record lacks a key only the key after
  // the gap is a miss (a guess by position would miss for every key after
  // it, and again in the next record).
  KeyInfo* next = nullptr;
};

// The state of key guessing along one object.
struct KeyChain {
  KeyInfo* prev = nullptr;  // nullptr at the first key
  bool lost = false;        // the previous key was not cached: no guess
};

// Turns one JSON object into a RawRecord.
class ObjectParser {
 public:
  ObjectParser(const FieldMapping& mapping, const ReaderLimits& limits)
      : mapping_(mapping), limits_(limits) {
    // A failure here only means the parser allocates on first use.
    if (parser_.allocate(64 << 10,
                         std::max<size_t>(limits.max_json_depth, 2))) {
      return;
    }
  }

  // Problems with the object go to out->malformed; never fails as a whole.
  // `out` comes cleared but for its position.
  void Parse(std::string_view text, RawRecord* out) {
    if (ParseFlat(text, out)) return;
    // The fast path may have filled some fields before it declined.
    const uint64_t position = out->position;
    out->Clear();
    out->position = position;
    ParseSimdjson(text, out);
  }

  // The fast path: true when `text` is a flat object it has fully read into
  // `out`. It declines (false) on anything that could make simdjson's
  // result differ, including every record simdjson would call malformed.
  bool ParseFlat(std::string_view text, RawRecord* out);
  void ParseSimdjson(std::string_view text, RawRecord* out);

 private:
  const KeyInfo* Resolve(od::field& field, KeyChain* chain, bool* duplicate);
  // Both paths resolve keys here, so they map names alike and share the
  // cache. `unescape(std::string* name)` decodes the key, called only for an
  // escaped key not yet cached; false means a bad escape. `guessed`: the
  // caller has already found that `raw` is Guess(*chain)->raw.
  template <typename Unescape>
  const KeyInfo* ResolveRaw(std::string_view raw, bool escaped, KeyChain* chain,
                            bool guessed, bool* duplicate, Unescape unescape);
  KeyInfo* Guess(const KeyChain& chain) const {
    if (chain.lost) return nullptr;
    return chain.prev != nullptr ? chain.prev->next : first_key_;
  }
  // A key may be a card number: the message and field name are masked
  // here, where they leave the reader (domain/pan.h).
  static void Flag(RawRecord* out, std::string message,
                   std::string field = "") {
    out->malformed = std::move(message);
    out->malformed_field = std::move(field);
    MaskCardNumbersInPlace(&out->malformed);
    MaskCardNumbersInPlace(&out->malformed_field);
  }

  FieldMapping mapping_;
  ReaderLimits limits_;
  od::parser parser_{};
  std::unique_ptr<char[]> scratch_;
  size_t scratch_capacity_ = 0;
  std::unordered_map<std::string, std::unique_ptr<KeyInfo>, StringHash,
                     std::equal_to<>>
      cache_;
  KeyInfo* first_key_ = nullptr;  // the first key of the last object
  KeyInfo uncached_;
  std::unordered_set<std::string> uncached_seen_;
  uint64_t stamp_ = 0;
  const char* text_end_ = nullptr;  // end of the object in scratch_
  std::string decoded_;             // fast path: escaped keys, values not kept
};

const KeyInfo* ObjectParser::Resolve(od::field& field, KeyChain* chain,
                                     bool* duplicate) {
  // raw() points just after the opening quote; simdjson has already checked
  // that the string is closed.
  const char* k = field.key().raw();
  const char* e = static_cast<const char*>(std::memchr(k, '"', text_end_ - k));
  if (e == nullptr) return nullptr;
  const bool escaped = std::memchr(k, '\\', e - k) != nullptr;
  if (escaped) {
    // The first quote may be an escaped one: walk the escapes.
    e = k;
    while (e < text_end_ && *e != '"') {
      if (*e == '\\') ++e;
      ++e;
    }
    if (e >= text_end_) return nullptr;
  }
  return ResolveRaw(std::string_view(k, e - k), escaped, chain,
                    /*guessed=*/false, duplicate, [&field](std::string* name) {
                      std::string_view unescaped;
                      if (field.unescaped_key().get(unescaped)) return false;
                      name->assign(unescaped);
                      return true;
                    });
}

template <typename Unescape>
const KeyInfo* ObjectParser::ResolveRaw(std::string_view raw, bool escaped,
                                        KeyChain* chain, bool guessed,
                                        bool* duplicate, Unescape unescape) {
  KeyInfo* info = Guess(*chain);
  if (info != nullptr && (guessed || info->raw == raw)) {
    // Objects in one file nearly always list their keys in the same order.
  } else if (auto it = cache_.find(raw); it != cache_.end()) {
    info = it->second.get();
  } else {
    std::string name(raw);
    if (escaped && !unescape(&name)) return nullptr;
    KeyInfo fresh;
    fresh.raw.assign(raw);
    fresh.escaped = escaped;
    fresh.predictable = std::none_of(raw.begin(), raw.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20;
    });
    fresh.sensitive = IsSensitiveFieldName(name);
    if (!fresh.sensitive) {
      if (std::optional<Field> f = mapping_.Lookup(name)) {
        fresh.field = static_cast<int>(*f);
      }
    }
    fresh.name = std::move(name);
    if (cache_.size() >= kMaxCachedKeys) {
      uncached_ = std::move(fresh);
      chain->lost = true;
      *duplicate = !uncached_seen_.insert(uncached_.raw).second;
      return &uncached_;
    }
    auto owned = std::make_unique<KeyInfo>(std::move(fresh));
    info = owned.get();
    cache_.emplace(info->raw, std::move(owned));
  }
  if (!chain->lost)
    (chain->prev != nullptr ? chain->prev->next : first_key_) = info;
  chain->prev = info;
  chain->lost = false;
  *duplicate = info->seen_in == stamp_;
  info->seen_in = stamp_;
  return info;
}

bool ObjectParser::ParseFlat(std::string_view text, RawRecord* out) {
  using Kind = FlatJsonCursor::Kind;
  FlatJsonCursor cursor(text);
  if (!cursor.Begin()) return false;
  ++stamp_;
  if (!uncached_seen_.empty()) uncached_seen_.clear();
  uint32_t fields_seen = 0;
  FlatJsonCursor::String key_text;
  FlatJsonCursor::Value value;
  KeyChain chain;
  while (true) {
    FlatJsonCursor::String expect;
    if (KeyInfo* guess = Guess(chain); guess != nullptr && guess->predictable) {
      expect.raw = guess->raw;
      expect.escaped = guess->escaped;
    }
    bool guessed = false;
    switch (cursor.NextKey(&key_text, expect)) {
      case FlatJsonCursor::Step::kExpected: guessed = true; break;
      case FlatJsonCursor::Step::kMember: break;
      case FlatJsonCursor::Step::kEnd: return true;
      case FlatJsonCursor::Step::kBail: return false;
    }
    // Decoded even when cached: a bad escape must decline every time.
    if (key_text.escaped && !DecodeJsonString(key_text.raw, &decoded_)) {
      return false;
    }
    bool duplicate = false;
    const KeyInfo* key =
        ResolveRaw(key_text.raw, key_text.escaped, &chain, guessed, &duplicate,
                   [this](std::string* name) {
                     name->assign(decoded_);
                     return true;
                   });
    // Duplicates and clashes are malformed records: simdjson's to word.
    if (key == nullptr || duplicate || !cursor.NextValue(&value)) return false;
    const bool is_string = value.kind == Kind::kString;
    if (key->field < 0 || key->sensitive) {
      // Not kept, but a bad escape in it must still decline.
      if (is_string && value.text.escaped &&
          !DecodeJsonString(value.text.raw, &decoded_)) {
        return false;
      }
      // As the simdjson path: non-empty unless null or "".
      if (key->sensitive && value.kind != Kind::kNull &&
          !(is_string && value.text.raw.empty())) {
        out->sensitive_fields.push_back(key->name);
      }
      continue;
    }
    const uint32_t bit = 1u << key->field;
    if (fields_seen & bit) return false;
    fields_seen |= bit;
    std::string& dst = out->values[key->field];
    switch (value.kind) {
      case Kind::kString:
        if (value.text.escaped) {
          if (!DecodeJsonString(value.text.raw, &dst)) return false;
          if (dst.size() > limits_.max_field_bytes) return false;
          break;
        }
        [[fallthrough]];
      case Kind::kNumber:
        if (value.text.raw.size() > limits_.max_field_bytes) return false;
        // clear + append is assign without its aliasing checks, which
        // showed in profiles.
        dst.clear();
        dst.append(value.text.raw);
        break;
      case Kind::kTrue: dst.assign("true"); break;
      case Kind::kFalse: dst.assign("false"); break;
      case Kind::kNull: continue;  // null is absent
    }
    out->present[key->field] = true;
  }
}

void ObjectParser::ParseSimdjson(std::string_view text, RawRecord* out) {
  // A private padded copy: simdjson may read past the end of the text.
  const size_t need = text.size() + simdjson::SIMDJSON_PADDING;
  if (need > scratch_capacity_) {
    scratch_capacity_ = std::max(need, scratch_capacity_ * 2);
    scratch_.reset(new char[scratch_capacity_]);
  }
  std::memcpy(scratch_.get(), text.data(), text.size());
  std::memset(scratch_.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  text_end_ = scratch_.get() + text.size();

  ++stamp_;
  if (!uncached_seen_.empty()) uncached_seen_.clear();
  od::document doc;
  if (auto err = parser_.iterate(scratch_.get(), text.size(), scratch_capacity_)
                     .get(doc)) {
    return Flag(out,
                std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  od::object object;
  if (auto err = doc.get_object().get(object)) {
    if (err == simdjson::INCORRECT_TYPE) {
      return Flag(out, "not a JSON object");
    }
    return Flag(out,
                std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  uint32_t fields_seen = 0;
  KeyChain chain;
  for (auto field_or : object) {
    od::field field;
    if (auto err = std::move(field_or).get(field)) {
      return Flag(out,
                  std::string("invalid JSON: ") + simdjson::error_message(err));
    }
    bool duplicate = false;
    const KeyInfo* key = Resolve(field, &chain, &duplicate);
    if (key == nullptr) return Flag(out, "invalid JSON: bad key escape");
    // Built only for messages: this loop runs for every key of every record.
    auto field_name = [key] {
      return key->field >= 0
                 ? std::string(FieldName(static_cast<Field>(key->field)))
                 : key->name;
    };
    if (duplicate) {
      return Flag(out, "duplicate key \"" + key->name + "\"", field_name());
    }
    od::value value = field.value();
    od::json_type type;
    if (auto err = value.type().get(type)) {
      return Flag(out,
                  std::string("invalid JSON: ") + simdjson::error_message(err),
                  field_name());
    }
    if (key->sensitive) {
      // Decide "non-empty" from the raw token so the value is never copied,
      // not even into simdjson's string buffer.
      const std::string_view raw = TrimJsonSpace(value.raw_json_token());
      if (type != od::json_type::null && raw != "\"\"") {
        out->sensitive_fields.push_back(key->name);
      }
      continue;
    }
    if (key->field < 0) {
      // Unknown keys are skipped, but a nesting bomb under one still makes
      // the record malformed, as it would in a JSON array.
      if (type == od::json_type::object || type == od::json_type::array) {
        const char* start = value.raw_json_token().data();
        ElementScanner scanner;
        const size_t len = scanner.Scan(start, text_end_ - start);
        if (len == 0) return Flag(out, "invalid JSON: unclosed container");
        if (scanner.max_depth() + 1 >
            static_cast<int64_t>(limits_.max_json_depth)) {
          return Flag(out, "nesting deeper than max_json_depth (" +
                               std::to_string(limits_.max_json_depth) + ")");
        }
      }
      continue;
    }
    const uint32_t bit = 1u << key->field;
    if (fields_seen & bit) {
      return Flag(out,
                  "two keys map to field " + field_name() + " (second: \"" +
                      key->name + "\")",
                  field_name());
    }
    fields_seen |= bit;
    std::string& dst = out->values[key->field];
    switch (type) {
      case od::json_type::string: {
        std::string_view s;
        if (auto err = value.get_string().get(s)) {
          return Flag(out,
                      std::string("invalid JSON string: ") +
                          simdjson::error_message(err),
                      field_name());
        }
        if (s.size() > limits_.max_field_bytes) {
          return Flag(out, "field longer than max_field_bytes", field_name());
        }
        dst.assign(s);
        break;
      }
      case od::json_type::number: {
        // Never through a double: "12.50" must stay "12.50".
        const std::string_view raw = TrimJsonSpace(value.raw_json_token());
        if (!IsJsonNumber(raw)) {
          return Flag(out, "invalid JSON number", field_name());
        }
        if (raw.size() > limits_.max_field_bytes) {
          return Flag(out, "field longer than max_field_bytes", field_name());
        }
        dst.assign(raw);
        break;
      }
      case od::json_type::boolean: {
        bool b = false;
        if (value.get_bool().get(b)) {
          return Flag(out, "invalid JSON literal", field_name());
        }
        dst.assign(b ? "true" : "false");
        break;
      }
      case od::json_type::null: {
        bool is_null = false;
        if (value.is_null().get(is_null) || !is_null) {
          return Flag(out, "invalid JSON literal", field_name());
        }
        continue;  // null is absent
      }
      case od::json_type::object:
      case od::json_type::array:
        return Flag(out,
                    std::string("field holds a JSON ") +
                        (type == od::json_type::object ? "object" : "array") +
                        ", expected a scalar",
                    field_name());
    }
    out->present[key->field] = true;
  }
  // On Demand stops at the closing brace; anything after it is not ours.
  const char* after = nullptr;
  if (!doc.current_location().get(after)) {
    return Flag(out, "unexpected content after the JSON object");
  }
}

class JsonLinesReader final : public RecordReader {
 public:
  JsonLinesReader(std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
                  const ReaderLimits& limits)
      : in_(std::move(in)), limits_(limits), parser_(mapping, limits) {}

  StatusOr<bool> Next(RawRecord* out) override;
  InputFormat format() const override { return InputFormat::kJsonLines; }
  uint64_t bytes_read() const override { return in_->consumed(); }

 private:
  Status TooLong(uint64_t line) const {
    return ResourceExhaustedError(
        in_->name() + ": line " + std::to_string(line) +
        ": longer than max_record_bytes (" +
        std::to_string(limits_.max_record_bytes) + ")");
  }

  std::unique_ptr<InputBuffer> in_;
  ReaderLimits limits_;
  ObjectParser parser_;
  uint64_t line_ = 1;  // line number of the window start
};

StatusOr<bool> JsonLinesReader::Next(RawRecord* out) {
  while (true) {
    const char* p = in_->begin();
    const char* end = in_->end();
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (nl == nullptr) {
      if (!in_->eof()) {
        if (in_->size() > limits_.max_record_bytes) return TooLong(line_);
        CBPIPE_ASSIGN_OR_RETURN(bool more, in_->Fill());
        (void)more;
        continue;
      }
      if (p == end) return false;
      nl = end;  // last line without a newline
    }
    const size_t len = nl - p;
    if (len > limits_.max_record_bytes) return TooLong(line_);
    const uint64_t line = line_++;
    in_->Consume(nl == end ? len : len + 1);
    // The bytes stay in place until the next Fill, after Parse has copied.
    const std::string_view text = TrimJsonSpace(std::string_view(p, len));
    if (text.empty()) continue;
    out->Clear();
    out->position = line;
    parser_.Parse(text, out);
    return true;
  }
}

class JsonArrayReader final : public RecordReader {
 public:
  JsonArrayReader(std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
                  const ReaderLimits& limits)
      : in_(std::move(in)), limits_(limits), parser_(mapping, limits) {}

  StatusOr<bool> Next(RawRecord* out) override;
  InputFormat format() const override { return InputFormat::kJsonArray; }
  uint64_t bytes_read() const override { return in_->consumed(); }

 private:
  enum class State { kStart, kFirst, kAfterElement, kAfterComma, kDone };

  Status Error(const char* at, const std::string& what) const {
    return InvalidArgumentError(in_->name() + ": byte offset " +
                                std::to_string(in_->OffsetOf(at)) +
                                ": malformed JSON array: " + what);
  }

  std::unique_ptr<InputBuffer> in_;
  ReaderLimits limits_;
  ObjectParser parser_;
  ElementScanner scanner_;
  State state_ = State::kStart;
  uint64_t index_ = 0;
};

StatusOr<bool> JsonArrayReader::Next(RawRecord* out) {
  while (true) {
    const char* p = in_->begin();
    const char* end = in_->end();
    while (p != end && IsJsonSpace(*p)) ++p;
    in_->ConsumeTo(p);
    if (p == end) {
      if (!in_->eof()) {
        CBPIPE_ASSIGN_OR_RETURN(bool more, in_->Fill());
        (void)more;
        continue;
      }
      if (state_ == State::kDone) return false;
      return Error(p, state_ == State::kStart ? "expected '['"
                                              : "input ends before ']'");
    }
    const char c = *p;
    switch (state_) {
      case State::kStart:
        if (c != '[') return Error(p, "expected '['");
        in_->Consume(1);
        state_ = State::kFirst;
        continue;
      case State::kAfterElement:
        if (c == ',') {
          state_ = State::kAfterComma;
        } else if (c == ']') {
          state_ = State::kDone;
        } else {
          return Error(p, std::string("expected ',' or ']' after element ") +
                              std::to_string(index_ - 1));
        }
        in_->Consume(1);
        continue;
      case State::kDone: return Error(p, "content after the closing ']'");
      case State::kFirst:
        if (c == ']') {
          in_->Consume(1);
          state_ = State::kDone;
          continue;
        }
        break;
      case State::kAfterComma:
        if (c == ']') return Error(p, "trailing ',' before ']'");
        break;
    }
    if (c == ',' || c == ']' || c == '}' || c == ':') {
      return Error(p, std::string("unexpected '") + c + "'");
    }
    const size_t len = scanner_.Scan(p, end - p);
    if (len == 0) {
      if (in_->eof()) return Error(end, "input ends inside an element");
      if (in_->size() > limits_.max_record_bytes) {
        return ResourceExhaustedError(
            in_->name() + ": element " + std::to_string(index_) +
            " at byte offset " + std::to_string(in_->OffsetOf(p)) +
            ": longer than max_record_bytes (" +
            std::to_string(limits_.max_record_bytes) + ")");
      }
      CBPIPE_ASSIGN_OR_RETURN(bool more, in_->Fill());
      (void)more;
      continue;
    }
    if (len > limits_.max_record_bytes) {
      return ResourceExhaustedError(
          in_->name() + ": element " + std::to_string(index_) +
          " at byte offset " + std::to_string(in_->OffsetOf(p)) +
          ": longer than max_record_bytes (" +
          std::to_string(limits_.max_record_bytes) + ")");
    }
    out->Clear();
    out->position = index_++;
    // A non-object element is one bad record, not a bad file: the elements
    // around it are still well delimited.
    if (c != '{') {
      out->malformed = "array element is not a JSON object";
    } else if (scanner_.max_depth() >
               static_cast<int64_t>(limits_.max_json_depth)) {
      out->malformed = "nesting deeper than max_json_depth (" +
                       std::to_string(limits_.max_json_depth) + ")";
    } else {
      parser_.Parse(std::string_view(p, len), out);
    }
    in_->Consume(len);
    scanner_.Reset();
    state_ = State::kAfterElement;
    return true;
  }
}

class TestParser final : public JsonObjectParserForTest {
 public:
  TestParser(const FieldMapping& mapping, const ReaderLimits& limits)
      : parser_(mapping, limits) {}
  void Parse(std::string_view text, RawRecord* out) override {
    parser_.Parse(text, out);
  }
  bool ParseFlatOnly(std::string_view text, RawRecord* out) override {
    return parser_.ParseFlat(text, out);
  }
  void ParseSimdjsonOnly(std::string_view text, RawRecord* out) override {
    parser_.ParseSimdjson(text, out);
  }

 private:
  ObjectParser parser_;
};

}  // namespace

std::unique_ptr<JsonObjectParserForTest> MakeJsonObjectParserForTest(
    const FieldMapping& mapping, const ReaderLimits& limits) {
  return std::make_unique<TestParser>(mapping, limits);
}

std::unique_ptr<RecordReader> MakeJsonLinesReader(
    std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
    const ReaderLimits& limits) {
  return std::make_unique<JsonLinesReader>(std::move(in), mapping, limits);
}

std::unique_ptr<RecordReader> MakeJsonArrayReader(
    std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
    const ReaderLimits& limits) {
  return std::make_unique<JsonArrayReader>(std::move(in), mapping, limits);
}

}  // namespace cbpipe::ingest_internal
