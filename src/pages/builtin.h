// Internal: the templates of src/pages/templates/, embedded at build time by
// embed_templates.cmake into a generated builtin_templates.cpp.
#pragma once

#include <cstddef>
#include <string_view>

namespace pc::pages::detail {

struct BuiltinTemplate {
  std::string_view name;  // file name, e.g. "rule_block.en.html"
  std::string_view text;
};

extern const BuiltinTemplate kBuiltinTemplates[];
extern const std::size_t kBuiltinTemplateCount;

}  // namespace pc::pages::detail
