// Just enough XML for AWS answers (S3, SNS, the Query protocol's errors):
// the text of elements found by name. Not a general parser: no attributes,
// namespaces or CDATA, which AWS answers do not use where we read them.
//
//   std::string code = AwsXmlText(body, "Code");          // "" when absent
//   for (std::string_view item : AwsXmlElements(body, "Contents"))
//     keys.push_back(AwsXmlText(item, "Key"));
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cbpipe {

// The decoded text inside the first <tag>...</tag> (or "" for <tag/> and
// when there is none). Entities &lt; &gt; &amp; &quot; &apos; &#N; &#xN;
// are decoded.
std::string AwsXmlText(std::string_view xml, std::string_view tag);

// The raw inner XML of every <tag>...</tag> in document order (not nested
// in one another), as views into `xml`.
std::vector<std::string_view> AwsXmlElements(std::string_view xml,
                                             std::string_view tag);

// Decodes the five XML entities and numeric character references (UTF-8).
std::string AwsXmlDecode(std::string_view text);

}  // namespace cbpipe
