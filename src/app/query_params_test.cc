#include "app/query_params.h"

#include <gtest/gtest.h>

namespace cbpipe {
namespace {

TEST(QueryParamsTest, QueryOfTarget) {
  EXPECT_EQ(QueryOf("/api/runs"), "");
  EXPECT_EQ(QueryOf("/api/runs?"), "");
  EXPECT_EQ(QueryOf("/api/runs?limit=2&offset=4"), "limit=2&offset=4");
  EXPECT_EQ(QueryOf("/api/runs?limit=2#frag"), "limit=2");
}

TEST(QueryParamsTest, ParsesWellFormedPairs) {
  StatusOr<QueryParams> q = ParseQueryParams("limit=2&offset=40&state=failed",
                                             {"state", "limit", "offset"});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->size(), 3u);
  EXPECT_EQ(q->at("limit"), "2");
  EXPECT_EQ(q->at("offset"), "40");
  EXPECT_EQ(q->at("state"), "failed");

  q = ParseQueryParams("", {"limit"});
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(q->empty());

  q = ParseQueryParams("state=", {"state"});  // empty values are the
  ASSERT_TRUE(q.ok());                        // handler's to judge
  EXPECT_EQ(q->at("state"), "");

  q = ParseQueryParams("after=a%2Db+c&li%6Dit=%31", {"after", "limit"});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->at("after"), "a-b c");
  EXPECT_EQ(q->at("limit"), "1");
}

TEST(QueryParamsTest, RefusesWhatALenientParserWouldGuess) {
  for (const char* bad :
       {"limit=1=1", "limit=3&=", "limit=3&", "&limit=3", "limit=3&&offset=1",
        "&", "=", "=3", "limit", "limit=3&offset", "limit=%3", "limit=%zz",
        "limit=%", "limit=1&limit=2", "limit=1&li%6Dit=2", "colour=red",
        "LIMIT=1", "limit=1%0a", "limit=%1b[2J"}) {
    StatusOr<QueryParams> q = ParseQueryParams(bad, {"limit", "offset"});
    EXPECT_FALSE(q.ok()) << bad;
    if (!q.ok()) {
      EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(QueryParamsTest, MessagesNameTheProblem) {
  StatusOr<QueryParams> q = ParseQueryParams("colour=red", {"limit"});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "unknown query parameter \"colour\"");
  q = ParseQueryParams("limit=1&limit=2", {"limit"});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "query parameter \"limit\" given more than once");
  q = ParseQueryParams("x%1b%5d0%3bpwned=1", {"limit"});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message().find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace cbpipe
