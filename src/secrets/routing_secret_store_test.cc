#include "secrets/routing_secret_store.h"

#include <cstdlib>
#include <memory>

#include "gtest/gtest.h"
#include "secrets/memory_secret_store.h"

namespace cbpipe {
namespace {

// Counts Invalidate calls; caches nothing else.
class CachingStore : public InMemorySecretStore {
 public:
  bool Invalidate(std::string_view) override {
    ++invalidated;
    return true;
  }
  int invalidated = 0;
};

TEST(RoutingSecretStoreTest, EachSchemeGoesToItsStoreMadeAtFirstUse) {
  InMemorySecretStore fallback;
  fallback.Set("env:PW", "from-fallback");
  RoutingSecretStore routed(&fallback);
  int made = 0;
  CachingStore* vault = nullptr;
  routed.Route("aws-sm:", [&]() -> StatusOr<std::unique_ptr<SecretStore>> {
    ++made;
    auto store = std::make_unique<CachingStore>();
    store->Set("aws-sm:visa#pw", "from-vault");
    vault = store.get();
    return std::unique_ptr<SecretStore>(std::move(store));
  });
  EXPECT_EQ(routed.Resolve("env:PW")->value(), "from-fallback");
  EXPECT_FALSE(routed.Invalidate("env:PW"));
  EXPECT_EQ(made, 0);  // no aws-sm: reference yet: no store built
  EXPECT_EQ(routed.Resolve("aws-sm:visa#pw")->value(), "from-vault");
  EXPECT_EQ(routed.Resolve("aws-sm:visa#pw")->value(), "from-vault");
  EXPECT_EQ(made, 1);
  EXPECT_TRUE(routed.Invalidate("aws-sm:visa#pw"));
  EXPECT_EQ(vault->invalidated, 1);
  auto key = routed.KeyFilePath("aws-sm:visa#pw");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
}

TEST(RoutingSecretStoreTest, AFactoryErrorIsTheReferencesAndTriedAgain) {
  RoutingSecretStore routed(nullptr);  // fallback: env:/file:
  int tries = 0;
  routed.Route("aws-sm:", [&]() -> StatusOr<std::unique_ptr<SecretStore>> {
    ++tries;
    return InvalidArgumentError("[aws] has no region");
  });
  EXPECT_EQ(routed.Resolve("aws-sm:x").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(routed.Resolve("aws-sm:x").status().message(),
            "[aws] has no region");
  EXPECT_EQ(tries, 2);
  ::setenv("CBPIPE_ROUTING_TEST", "v", 1);
  EXPECT_EQ(routed.Resolve("env:CBPIPE_ROUTING_TEST")->value(), "v");
}

}  // namespace
}  // namespace cbpipe
