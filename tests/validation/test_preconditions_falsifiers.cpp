// Registry v2 on the fixed result set: a failed validity precondition makes a part INVALID (never
// a pass, and the claim cannot be reproduced), every deciding part fails on its own falsifier
// except the one fixture rule built to be useless (which is reported and judged INVALID), and the
// loader rejects a deciding part without face or falsifier and a precondition without on_fail.
#include "rbk/validation/registry.h"
#include "rbk/validation/result_store.h"
#include "rbk/validation/verdict.h"

#include "validation_test_util.h"

#include <gtest/gtest.h>

#include <cstdio>

using namespace rbk::validation;
using namespace rbk::validation::test;
using nlohmann::json;

namespace {

const std::string kData = RBK_VALIDATION_TEST_DATA;

ClaimVerdict judge_fixture(const std::string& id, Registry* reg_out = nullptr) {
  const Registry reg = load_registry(kData + "/registry.json");
  ResultStore store(kData + "/tree", kData + "/fresh_build", reg);
  VerdictEngine engine(reg, store);
  const ClaimVerdict v = engine.judge(*reg.find(id));
  for (const auto& p : v.parts) {
    std::printf("  %s [%s] %s: %s %s\n", p.part_id.c_str(), p.face.c_str(), to_string(p.outcome).c_str(),
                p.comparison.c_str(), p.reason.c_str());
  }
  if (reg_out) *reg_out = reg;
  return v;
}

std::string registry_error(const json& doc) {
  try {
    parse_registry(doc, "reg.json");
  } catch (const RegistryError& e) {
    std::printf("%s\n", e.what());
    return e.what();
  }
  return "";
}

json minimal_v2() {
  return json::parse(R"({"schema":"rbk.claims_registry/2","preset_preference":["cpu"],
    "experiments":{"e":{"sources":["experiments/e"]}},
    "claims":[{"id":"X1","title":"t","source":"s","paper_value":"v","audit":{"code":"H","finding":"f"},
    "parts":[{"id":"X1.a","statement":"s","face":"corrected",
              "rule":{"experiment":"e","value":"/summary/x","op":">","target":1,
                      "requires":{"value":"/summary/ok","op":"bool","expect":true,"on_fail":"invalid","why":"w"}},
              "falsifier":{"outcome":"x is 0.5","value":0.5}}]}]})");
}

}  // namespace

TEST(ValidationPreconditions, FailedValidityCheckMakesThePartInvalid) {
  const ClaimVerdict v = judge_fixture("T09");
  ASSERT_EQ(v.parts.size(), 3u);
  // T09.speed: x = 1.05 > 1 would pass, but its equal-work check (flag must be false) fails.
  EXPECT_EQ(v.parts[0].outcome, Outcome::Invalid);
  EXPECT_NE(v.parts[0].reason.find("precondition failed"), std::string::npos) << v.parts[0].reason;
  EXPECT_NE(v.parts[0].reason.find("both timed outputs match fp64"), std::string::npos) << v.parts[0].reason;
  EXPECT_TRUE(v.parts[0].comparison.empty());  // never evaluated, so never a pass
  EXPECT_EQ(v.parts[1].outcome, Outcome::Pass);
  // The only other corrected part holds, yet the claim is not reproduced: the invalid part blocks it,
  // and the reason line names it.
  EXPECT_EQ(v.corrected.verdict, Verdict::PartlyReproduced);
  EXPECT_NE(v.corrected.reason.find("1 invalid"), std::string::npos) << v.corrected.reason;
  EXPECT_NE(v.corrected.reason.find("invalid: T09.speed (precondition failed: needs /summary/flag is false, found true)"),
            std::string::npos)
      << v.corrected.reason;
  // The compat face is judged on its own part.
  EXPECT_EQ(v.parts[2].outcome, Outcome::Pass);
  EXPECT_EQ(v.compat.verdict, Verdict::Reproduced);
  // The audit check carries its reason for not deciding.
  ASSERT_EQ(v.audit_checks.size(), 1u);
  EXPECT_EQ(v.audit_checks[0].why_not_deciding, "true by construction");
}

TEST(ValidationPreconditions, CombineCountsInvalidApart) {
  using O = Outcome;
  std::string why;
  EXPECT_EQ(combine({O::Pass, O::Invalid}, &why), Verdict::PartlyReproduced);
  EXPECT_NE(why.find("1 invalid"), std::string::npos) << why;
  EXPECT_EQ(combine({O::Invalid, O::Invalid}, nullptr), Verdict::NotYetMeasured);
  EXPECT_EQ(combine({O::Fail, O::Invalid}, nullptr), Verdict::NotReproduced);
}

TEST(ValidationFalsifiers, EveryFixturePartFailsOnItsFalsifierExceptTheUselessOne) {
  const Registry reg = load_registry(kData + "/registry.json");
  std::size_t checked = 0;
  for (const auto& c : reg.claims) {
    for (const auto& p : c.parts) {
      if (!p.falsifier.present) continue;
      const RuleResult f = evaluate_falsifier(p, p.rule.op == "paired_ttest" ? 2 : 0);
      std::printf("%-16s %-6s %s\n", p.id.c_str(), to_string(f.outcome).c_str(), f.comparison.c_str());
      ++checked;
      if (p.id == "T10.weak") {
        EXPECT_EQ(f.outcome, Outcome::Pass) << "the fixture's useless falsifier (0.5 > 0) must pass";
      } else {
        EXPECT_EQ(f.outcome, Outcome::Fail) << p.id << " does not fail on its falsifier";
      }
    }
  }
  EXPECT_EQ(checked, 19u);
  // The registry-wide check reports exactly the useless one.
  const auto problems = check_falsifiers(reg);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].part_id, "T10.weak");
}

TEST(ValidationFalsifiers, UselessFalsifierMakesThePartInvalid) {
  const ClaimVerdict v = judge_fixture("T10");
  ASSERT_EQ(v.parts.size(), 1u);
  EXPECT_EQ(v.parts[0].outcome, Outcome::Invalid);  // 1.05 > 0 holds, but so does the falsifier
  EXPECT_NE(v.parts[0].reason.find("does not fail on its own falsifier"), std::string::npos) << v.parts[0].reason;
  EXPECT_EQ(v.compat.verdict, Verdict::NotYetMeasured);
  EXPECT_NE(v.compat.verdict, Verdict::Reproduced);
}

TEST(ValidationFalsifiers, PointerTargetAndPairedTest) {
  const Registry reg = load_registry(kData + "/registry.json");
  const Claim* t08 = reg.find("T08");
  ASSERT_NE(t08, nullptr);
  // x <= /summary/n with x = 5000 and n = 4096 (target_value) fails; with n = 9999 it would pass.
  ClaimPart p = t08->parts[0];
  EXPECT_EQ(evaluate_falsifier(p, 0).outcome, Outcome::Fail);
  p.falsifier.target_value = 9999;
  EXPECT_EQ(evaluate_falsifier(p, 0).outcome, Outcome::Pass);
}

TEST(ValidationRegistry, V2RejectsMissingFaceFalsifierOnFail) {
  EXPECT_EQ(registry_error(minimal_v2()), "");
  json doc = minimal_v2();
  doc["claims"][0]["parts"][0].erase("face");
  std::string e = registry_error(doc);
  EXPECT_NE(e.find("reg.json: /claims/0/parts/0: missing required 'face'"), std::string::npos) << e;
  doc = minimal_v2();
  doc["claims"][0]["parts"][0]["face"] = "upstream";
  e = registry_error(doc);
  EXPECT_NE(e.find("/claims/0/parts/0/face: 'upstream' is not one of corrected, compat"), std::string::npos) << e;
  doc = minimal_v2();
  doc["claims"][0]["parts"][0].erase("falsifier");
  e = registry_error(doc);
  EXPECT_NE(e.find("/claims/0/parts/0: missing required 'falsifier'"), std::string::npos) << e;
  doc = minimal_v2();
  doc["claims"][0]["parts"][0]["rule"]["requires"].erase("on_fail");
  e = registry_error(doc);
  EXPECT_NE(e.find("/claims/0/parts/0/rule/requires: missing required 'on_fail'"), std::string::npos) << e;
  doc = minimal_v2();
  doc["claims"][0]["parts"][0]["rule"]["requires"] = json::array({doc["claims"][0]["parts"][0]["rule"]["requires"]});
  doc["claims"][0]["parts"][0]["rule"]["requires"][0]["on_fail"] = "ignore";
  e = registry_error(doc);
  EXPECT_NE(e.find("/claims/0/parts/0/rule/requires/0/on_fail: 'ignore' is not one of invalid, not_measured"),
            std::string::npos)
      << e;
  doc = minimal_v2();
  doc["claims"][0]["parts"][0]["rule"]["target"] = {{"pointer", "/summary/n"}};
  e = registry_error(doc);
  EXPECT_NE(e.find("/claims/0/parts/0/falsifier/target_value"), std::string::npos) << e;
  doc = minimal_v2();
  doc["experiments"].erase("e");
  e = registry_error(doc);
  EXPECT_NE(e.find("/claims/0/parts/0/rule/experiment: experiment 'e' has no entry in /experiments"),
            std::string::npos)
      << e;
  doc = minimal_v2();
  doc["schema"] = "rbk.claims_registry/1";
  e = registry_error(doc);
  EXPECT_NE(e.find("reg.json: /schema: found 'rbk.claims_registry/1', expected 'rbk.claims_registry/2'"),
            std::string::npos)
      << e;
  // An audit check needs neither face nor falsifier.
  doc = minimal_v2();
  doc["claims"][0]["audit_checks"] = json::array({{{"id", "X1.c"}, {"statement", "s"},
                                                   {"why_not_deciding", "true by construction"},
                                                   {"rule", {{"experiment", "e"}, {"value", "/summary/y"},
                                                             {"op", "not_null"}}}}});
  EXPECT_EQ(registry_error(doc), "");
}

// Every deciding part of the project's registry must fail on its own falsifier.
TEST(ValidationRealRegistry, EveryDecidingPartFailsOnItsFalsifier) {
  if (real_registry_is_v1()) GTEST_SKIP() << kSkipV1;
  const Registry reg = load_registry(std::string(RBK_SOURCE_DIR) + "/validation/claims_registry.json");
  std::map<std::string, std::size_t> families;
  for (const auto& c : reg.claims) {
    for (const auto* list : {&c.parts, &c.audit_checks}) {
      for (const auto& p : *list) {
        if (p.rule.op == "paired_ttest") ++families[p.rule.family];
      }
    }
  }
  std::size_t checked = 0;
  for (const auto& c : reg.claims) {
    for (const auto& p : c.parts) {
      if (!p.rule.cannot_measure.empty()) continue;
      ASSERT_TRUE(p.falsifier.present) << p.id;
      const RuleResult f = evaluate_falsifier(p, families[p.rule.family]);
      std::printf("%-36s %-6s %s\n", p.id.c_str(), to_string(f.outcome).c_str(),
                  f.comparison.empty() ? f.reason.c_str() : f.comparison.c_str());
      EXPECT_EQ(f.outcome, Outcome::Fail) << p.id << ": falsifier '" << p.falsifier.outcome << "' gives "
                                          << to_string(f.outcome) << " " << f.comparison << f.reason;
      ++checked;
    }
  }
  std::printf("%zu deciding parts checked\n", checked);
  EXPECT_GT(checked, 0u);
}
