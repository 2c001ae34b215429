#include "secrets/aws_secrets_manager.h"

#include <utility>

#include "nlohmann/json.hpp"

namespace cbpipe {
namespace {

using json = nlohmann::json;

// The secret's JSON text as a SecretString; the parsed copy is wiped too.
StatusOr<SecretString> KeyOf(const SecretString& whole,
                             const AwsSecretReference& ref,
                             std::string_view reference) {
  // No exceptions: a parse error's text would quote the secret.
  json object = json::parse(whole.value(), nullptr, /*allow_exceptions=*/false);
  auto wipe = [&object] {
    if (!object.is_object()) return;
    for (auto& [k, v] : object.items()) {
      if (v.is_string()) WipeString(v.get_ref<std::string&>());
    }
  };
  if (!object.is_object()) {
    return FailedPreconditionError(
        std::string(reference) +
        ": the secret's SecretString is not a JSON object, so it has no "
        "key \"" + ref.json_key + "\" (drop \"#" + ref.json_key +
        "\" to use the whole string)");
  }
  auto it = object.find(ref.json_key);
  if (it == object.end()) {
    wipe();
    return NotFoundError(std::string(reference) + ": the secret " +
                         ref.secret_id + " has no key \"" + ref.json_key +
                         "\"");
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    wipe();
    return FailedPreconditionError(std::string(reference) + ": key \"" +
                                   ref.json_key +
                                   "\" of the secret is not a non-empty "
                                   "string");
  }
  SecretString value(std::move(it->get_ref<std::string&>()));
  wipe();
  return value;
}

}  // namespace

StatusOr<AwsSecretReference> ParseAwsSecretReference(
    std::string_view reference) {
  if (!reference.starts_with(kAwsSecretsManagerScheme)) {
    return InvalidArgumentError(
        reference.empty()
            ? std::string("empty secret reference")
            : std::string("not an aws-sm: secret reference (the value itself "
                          "is not shown in case it is a secret)"));
  }
  std::string_view rest = reference.substr(kAwsSecretsManagerScheme.size());
  AwsSecretReference out;
  const size_t hash = rest.find('#');
  out.secret_id = std::string(rest.substr(0, hash));
  if (hash != std::string_view::npos) {
    out.json_key = std::string(rest.substr(hash + 1));
    if (out.json_key.empty()) {
      return InvalidArgumentError(std::string(reference) +
                                  ": nothing after '#' (aws-sm:SECRET_ID#key)");
    }
  }
  if (out.secret_id.empty()) {
    return InvalidArgumentError(std::string(reference) +
                                ": no secret id (aws-sm:SECRET_ID#key)");
  }
  return out;
}

AwsSecretsManagerStore::AwsSecretsManagerStore(
    std::shared_ptr<AwsClient> client, AwsSecretsManagerOptions options)
    : client_(std::move(client)),
      options_(options),
      env_(options.env != nullptr ? options.env : Env::Default()) {}

AwsSecretsManagerStore::~AwsSecretsManagerStore() = default;

StatusOr<SecretString> AwsSecretsManagerStore::Resolve(
    std::string_view reference) {
  CBPIPE_ASSIGN_OR_RETURN(AwsSecretReference ref,
                          ParseAwsSecretReference(reference));
  CBPIPE_ASSIGN_OR_RETURN(SecretString whole, Secret(ref.secret_id, reference));
  if (ref.json_key.empty()) return whole;
  return KeyOf(whole, ref, reference);
}

StatusOr<std::string> AwsSecretsManagerStore::KeyFilePath(
    std::string_view reference) {
  CBPIPE_ASSIGN_OR_RETURN(SecretString key, Resolve(reference));
  return key_files_.Write(reference, key.value());
}

bool AwsSecretsManagerStore::Invalidate(std::string_view reference) {
  StatusOr<AwsSecretReference> ref = ParseAwsSecretReference(reference);
  if (!ref.ok()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.erase(ref->secret_id) > 0;
}

int64_t AwsSecretsManagerStore::fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetches_;
}

StatusOr<SecretString> AwsSecretsManagerStore::Secret(
    const std::string& id, std::string_view reference) {
  const int64_t now = env_->NowMs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(id);
    if (it != cache_.end() && options_.cache_ttl_ms > 0 &&
        now - it->second.fetched_ms < options_.cache_ttl_ms &&
        now >= it->second.fetched_ms) {
      return SecretString(std::string(it->second.value.value()));
    }
  }
  // Outside the lock: two threads may both fetch; the later one wins.
  CBPIPE_ASSIGN_OR_RETURN(SecretString fetched, Fetch(id, reference));
  SecretString copy(std::string(fetched.value()));
  std::lock_guard<std::mutex> lock(mu_);
  Cached& slot = cache_[id];
  slot.value = std::move(copy);
  slot.fetched_ms = now;
  return fetched;
}

StatusOr<SecretString> AwsSecretsManagerStore::Fetch(
    const std::string& id, std::string_view reference) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++fetches_;
  }
  const std::string request = json({{"SecretId", id}}).dump();
  StatusOr<std::string> answer = client_->CallJson(
      "secretsmanager", "secretsmanager.GetSecretValue", request,
      std::string(reference));
  if (!answer.ok()) {
    // AWS: 400 ResourceNotFoundException, moto: 404; both kNotFound here.
    return Status(answer.status().code(),
                  std::string(reference) + ": " + answer.status().message());
  }
  json body = json::parse(*answer, nullptr, /*allow_exceptions=*/false);
  WipeString(*answer);
  if (!body.is_object()) {
    return InternalError(std::string(reference) +
                         ": Secrets Manager answered something that is not "
                         "JSON");
  }
  auto it = body.find("SecretString");
  if (it == body.end() || !it->is_string()) {
    const bool binary = body.contains("SecretBinary");
    return FailedPreconditionError(
        std::string(reference) +
        (binary ? ": the secret holds SecretBinary only; cbpipe reads "
                  "SecretString"
                : ": the answer has no SecretString"));
  }
  SecretString value(std::move(it->get_ref<std::string&>()));
  if (value.empty()) {
    return FailedPreconditionError(std::string(reference) +
                                   ": the secret's SecretString is empty");
  }
  return value;
}

}  // namespace cbpipe
