// The table generator on the fixed result set: our column next to the paper's, multi-seed cells
// as mean ± CI, "not yet measured" for missing/unreadable results, provenance in the header, and
// LaTeX escaping of the seeds' symbols.
#include "rbk/validation/registry.h"
#include "rbk/validation/render.h"

#include <gtest/gtest.h>

#include <cstdio>

using namespace rbk::validation;

namespace {
const std::string kData = RBK_VALIDATION_TEST_DATA;
}

TEST(ValidationTables, MarkdownAndLatexOnFixedResults) {
  const Registry reg = load_registry(kData + "/registry.json");
  const TableSet set = load_tables(kData + "/tables.json", reg);
  ResultStore store(kData + "/tree", kData + "/fresh_build", reg);
  VerdictEngine engine(reg, store);
  std::map<std::string, ClaimVerdict> verdicts;
  for (const auto& c : reg.claims) verdicts[c.id] = engine.judge(c);
  RenderContext ctx{"rbk_validate (test)", "registry.json", "tables.json"};
  ASSERT_EQ(set.tables.size(), 1u);
  const std::string md = render_table_markdown(set.tables[0], store, verdicts, ctx);
  const std::string tex = render_table_latex(set.tables[0], store, verdicts, ctx);
  std::printf("%s\n----\n%s\n", md.c_str(), tex.c_str());
  // Row 1: fresh x and the gpu seeds' speedup as mean with its 95 % interval: mean 2.0, sd
  // sqrt(0.025), t(4, 0.975) = 2.776 -> half-width 0.196.
  EXPECT_NE(md.find("| fresh | 1.0 ± 0.1 | 1.05 | 2.00 [1.80, 2.20] × (n=5) |"), std::string::npos);
  EXPECT_NE(md.find("| flags | ✓ | ✓ | never |"), std::string::npos);
  EXPECT_NE(md.find("| missing | 2 | not yet measured | not yet measured |"), std::string::npos);
  EXPECT_NE(md.find("| broken | 1 | not yet measured (unreadable result file) | cannot be measured here: no such GPU |"),
            std::string::npos);
  EXPECT_NE(md.find("T01: method as described reproduced, authors' code not yet measured; T05: method as described "
                    "partly reproduced, authors' code not reproduced"),
            std::string::npos);
  // Provenance: the result files read, with their commits.
  EXPECT_NE(md.find("feedbeef00"), std::string::npos);
  EXPECT_NE(md.find("abcdef0123"), std::string::npos);
  EXPECT_NE(md.find("broken.cpu.json"), std::string::npos);
  EXPECT_NE(tex.find("1.0 $\\pm$ 0.1"), std::string::npos);
  EXPECT_NE(tex.find("\\checkmark{}"), std::string::npos);
  EXPECT_NE(tex.find("Demo \\& test"), std::string::npos);
  EXPECT_NE(tex.find("\\label{tab:demo_table1}"), std::string::npos);
}

TEST(ValidationTables, Escaping) {
  EXPECT_EQ(latex_escape("50% of x_1 & {y}"), "50\\% of x\\_1 \\& \\{y\\}");
  EXPECT_EQ(latex_escape("‖K‖ ≤ ½"), "$\\|$K$\\|$ $\\leq$ $\\frac12$");
  EXPECT_EQ(markdown_escape("a|b\nc"), "a\\|b<br>c");
}
