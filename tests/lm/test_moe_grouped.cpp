// The tiled sparse MoE dispatch (rbk::grouped_expert_mlp, issue 25) against the dispatch's
// definition, in fp64, outputs and gradients (the module's gradients against the gather dispatch's:
// LmRouters in test_lm_model.cpp). Tolerance 1e-12: fp64 outputs of
// O(1) differ only in the order of a handful of additions (~1e-15); a token sent to the wrong row,
// expert or weight, or a padding row that leaks, shows as O(0.1).
#include "rbk/moe.h"
#include "rbk/moe_grouped.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

constexpr double kFp64Tolerance = 1e-12;

rbk::Moe make_moe(rbk::RouterKind router, int64_t top_k, rbk::MoeDispatch dispatch, uint64_t seed) {
  rbk::MoeOptions o;
  o.d_model = 8;
  o.num_experts = 4;
  o.top_k = top_k;
  o.router = router;
  o.dispatch = dispatch;
  o.resonance_fraction = 0.3;  // scattering: tokens in two slots, some in one expert twice
  torch::manual_seed(seed);
  rbk::Moe moe(o);
  moe->to(torch::kDouble);
  return moe;
}

TEST(MoeGrouped, MatchesTheSumOverSlotsForEveryRouterAndTile) {
  struct Case {
    rbk::RouterKind router;
    int64_t top_k;
  };
  for (const Case& c : {Case{rbk::RouterKind::LearnedTopK, 1}, Case{rbk::RouterKind::LearnedTopK, 2},
                        Case{rbk::RouterKind::SwitchTop1, 1}, Case{rbk::RouterKind::ScatteringPhase, 2}}) {
    for (const int64_t tile_rows : {0, 1, 4, 7, 64}) {
      auto moe = make_moe(c.router, c.top_k, rbk::MoeDispatch::Gather, 21);
      const int64_t T = 41;  // not a multiple of any tile
      const auto x = torch::randn({T, 8}, torch::kDouble);
      const auto g = torch::complex(torch::randn({T}, torch::kDouble), torch::rand({T}, torch::kDouble) + 0.1);
      torch::NoGradGuard ng;
      const auto r = moe->route(x, g);
      const auto s = rbk::stack_experts(*moe);
      const auto out = rbk::grouped_expert_mlp(x, r.idx, r.w, s, 0.0, true, tile_rows);
      const auto ref = rbk::expert_mlp_reference(x, r.idx, r.w, s);
      const double err = (out - ref).abs().max().item<double>();
      std::printf("router %s top-%lld tile %lld: max |grouped - sum over slots| = %.2e (|ref| max %.2f)\n",
                  rbk::to_string(c.router).c_str(), static_cast<long long>(c.top_k), static_cast<long long>(tile_rows), err,
                  ref.abs().max().item<double>());
      EXPECT_LT(err, kFp64Tolerance);
      EXPECT_GT(ref.abs().max().item<double>(), 0.1);
      // The model's own dispatch, for the same routing (the module's forward routes again: same x,
      // same deterministic routers).
      EXPECT_LT((moe->forward(x, g) - out).abs().max().item<double>(), kFp64Tolerance);
    }
  }
}

// Experts that receive no token, and all tokens in one expert: segments of length 0 and the most
// padding tiles the bound allows.
TEST(MoeGrouped, EmptyExpertsAndOneFullExpert) {
  auto moe = make_moe(rbk::RouterKind::SwitchTop1, 1, rbk::MoeDispatch::Gather, 5);
  const int64_t T = 23;
  const auto x = torch::randn({T, 8}, torch::kDouble);
  const auto s = rbk::stack_experts(*moe);
  torch::NoGradGuard ng;
  for (const int64_t e : {0, 3}) {
    const auto idx = torch::full({T, 1}, e, torch::kInt64);
    const auto w = torch::rand({T, 1}, torch::kDouble) + 0.5;
    for (const int64_t tile_rows : {1, 5, 32}) {
      const auto err = (rbk::grouped_expert_mlp(x, idx, w, s, 0.0, true, tile_rows) - rbk::expert_mlp_reference(x, idx, w, s)).abs().max();
      EXPECT_LT(err.item<double>(), kFp64Tolerance) << "expert " << e << " tile " << tile_rows;
    }
  }
  // Two of four experts used, in alternation.
  const auto idx = (torch::arange(T, torch::kInt64).remainder(2) * 2).unsqueeze(1);
  const auto w = torch::rand({T, 1}, torch::kDouble);
  const auto err = (rbk::grouped_expert_mlp(x, idx, w, s, 0.0, true, 4) - rbk::expert_mlp_reference(x, idx, w, s)).abs().max();
  EXPECT_LT(err.item<double>(), kFp64Tolerance);
}

// Dropout draws its mask over the padded buffer: in training with p > 0 the output changes and
// stays finite; in evaluation dropout is off and the output is the definition's.
TEST(MoeGrouped, DropoutOnlyInTraining) {
  auto moe = make_moe(rbk::RouterKind::SwitchTop1, 1, rbk::MoeDispatch::Gather, 8);
  const auto x = torch::randn({30, 8}, torch::kDouble);
  torch::NoGradGuard ng;
  const auto r = moe->route(x);
  const auto s = rbk::stack_experts(*moe);
  const auto ref = rbk::expert_mlp_reference(x, r.idx, r.w, s);
  EXPECT_LT((rbk::grouped_expert_mlp(x, r.idx, r.w, s, 0.5, false) - ref).abs().max().item<double>(), kFp64Tolerance);
  const auto dropped = rbk::grouped_expert_mlp(x, r.idx, r.w, s, 0.5, true);
  EXPECT_TRUE(dropped.isfinite().all().item<bool>());
  EXPECT_GT((dropped - ref).abs().max().item<double>(), 1e-3);
}

// Dropout acts on hidden units only, never on the down projection's bias (which the dispatch folds
// into its GEMM as a column of ones beside the hidden units): with the up projection zeroed every
// hidden unit is 0, so in training with p > 0 the output is still exactly w x b_down of the chosen
// expert. Fails if the ones column is dropped or scaled by 1 / (1 - p).
TEST(MoeGrouped, DropoutLeavesTheBiasAlone) {
  auto moe = make_moe(rbk::RouterKind::SwitchTop1, 1, rbk::MoeDispatch::Gather, 9);
  const auto x = torch::randn({40, 8}, torch::kDouble);
  torch::NoGradGuard ng;
  const auto r = moe->route(x);
  auto s = rbk::stack_experts(*moe);
  s.up_weight = torch::zeros_like(s.up_weight);
  s.up_bias = torch::zeros_like(s.up_bias);
  const auto ref = rbk::expert_mlp_reference(x, r.idx, r.w, s);
  EXPECT_GT(ref.abs().max().item<double>(), 0.1);  // the down biases are not zero
  for (const int64_t tile_rows : {0, 3, 16}) {
    const auto dropped = rbk::grouped_expert_mlp(x, r.idx, r.w, s, 0.5, true, tile_rows);
    EXPECT_LT((dropped - ref).abs().max().item<double>(), kFp64Tolerance) << "tile " << tile_rows;
  }
  // The same through autograd (dropout's output is written in place to restore the ones column):
  // the down biases' gradient is the definition's.
  torch::AutoGradMode grad_on(true);
  const auto target = torch::randn({40, 8}, torch::kDouble);
  std::vector<torch::Tensor> grads;
  for (const bool grouped : {false, true}) {
    auto e = s;
    e.down_bias = s.down_bias.detach().clone().requires_grad_(true);
    const auto out = grouped ? rbk::grouped_expert_mlp(x, r.idx, r.w, e, 0.5, true, 4) : rbk::expert_mlp_reference(x, r.idx, r.w, e);
    grads.push_back(torch::autograd::grad({(out * target).sum()}, {e.down_bias})[0]);
  }
  EXPECT_GT(grads[0].abs().max().item<double>(), 0.1);
  EXPECT_LT((grads[1] - grads[0]).abs().max().item<double>(), kFp64Tolerance);
}

// The gradients of every input (tokens, routing weights, the four stacked expert tensors) against
// the definition's, in fp64: the dispatch's own backward (gathers through the layout's inverse, one
// GEMM per expert tensor) must give what autograd through the sum over slots gives, for top-1 and
// top-2 with a token in one expert twice, padding in every tile shape, and experts with no token
// (whose gradients must be exact zeros).
TEST(MoeGrouped, GradientsMatchTheSumOverSlots) {
  struct Case {
    const char* what;
    int64_t top_k;
    bool repeat_expert, skip_experts;
  };
  for (const Case& c : {Case{"top-1", 1, false, false}, Case{"top-2, a token in one expert twice", 2, true, false},
                        Case{"top-1, experts 1 and 3 empty", 1, false, true}}) {
    for (const int64_t tile_rows : {0, 1, 3, 16, 64}) {
      auto moe = make_moe(rbk::RouterKind::SwitchTop1, 1, rbk::MoeDispatch::Gather, 31);
      const int64_t T = 37;
      auto idx = torch::randint(4, {T, c.top_k}, torch::kInt64);
      if (c.repeat_expert) idx.select(1, 1).narrow(0, 0, 9).copy_(idx.select(1, 0).narrow(0, 0, 9));
      if (c.skip_experts) idx = idx.remainder(2) * 2;
      const auto x = torch::randn({T, 8}, torch::kDouble);
      const auto w = torch::rand({T, c.top_k}, torch::kDouble) + 0.25;
      const auto target = torch::randn({T, 8}, torch::kDouble);
      const auto s = rbk::stack_experts(*moe);
      std::vector<std::vector<torch::Tensor>> grads;
      for (const bool grouped : {false, true}) {
        std::vector<torch::Tensor> inputs = {x.clone().requires_grad_(true), w.clone().requires_grad_(true)};
        for (const auto& t : {s.up_weight, s.up_bias, s.down_weight, s.down_bias}) inputs.push_back(t.detach().clone().requires_grad_(true));
        const rbk::StackedExperts e{inputs[2], inputs[3], inputs[4], inputs[5]};
        const auto out = grouped ? rbk::grouped_expert_mlp(inputs[0], idx, inputs[1], e, 0.0, true, tile_rows)
                                 : rbk::expert_mlp_reference(inputs[0], idx, inputs[1], e);
        grads.push_back(torch::autograd::grad({(out * target).sum()}, inputs));
      }
      double worst = 0.0, largest = 0.0;
      for (size_t i = 0; i < grads[0].size(); ++i) {
        worst = std::max(worst, (grads[1][i] - grads[0][i]).abs().max().item<double>());
        largest = std::max(largest, grads[0][i].abs().max().item<double>());
      }
      std::printf("%s, tile %lld: max |grad grouped - grad sum over slots| = %.2e (largest |grad| %.2f)\n", c.what,
                  static_cast<long long>(tile_rows), worst, largest);
      EXPECT_LT(worst, kFp64Tolerance) << c.what << ", tile " << tile_rows;
      EXPECT_GT(largest, 0.1);
      if (c.skip_experts) {
        for (const int64_t e : {1, 3})
          for (size_t i = 2; i < 6; ++i) EXPECT_EQ(grads[1][i][e].abs().max().item<double>(), 0.0) << "expert " << e << " tensor " << i;
      }
    }
  }
}

TEST(MoeGrouped, DefaultTileRows) {
  EXPECT_EQ(rbk::default_grouped_tile_rows(32768, 4), 1024);  // S / 8E = 1024
  EXPECT_EQ(rbk::default_grouped_tile_rows(16384, 4), 512);
  EXPECT_EQ(rbk::default_grouped_tile_rows(40, 4), 16);       // clamped below
  EXPECT_EQ(rbk::default_grouped_tile_rows(1 << 22, 4), 1024);  // clamped above
  EXPECT_EQ(rbk::default_grouped_tile_rows(3000, 4), 128);    // 93.75 = 2^6.55: nearest power 2^7
}

TEST(MoeGrouped, BadArgumentsNameWhatWasExpected) {
  auto moe = make_moe(rbk::RouterKind::SwitchTop1, 1, rbk::MoeDispatch::Gather, 2);
  const auto s = rbk::stack_experts(*moe);
  const auto x = torch::randn({6, 8}, torch::kDouble);
  const auto idx = torch::zeros({6, 1}, torch::kInt64);
  const auto w = torch::ones({6, 1}, torch::kDouble);
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error (expected one naming '" << needle << "')";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { rbk::grouped_expert_mlp(x, idx.to(torch::kInt32), w, s, 0.0, true); }, "idx must be (T, k) int64");
  expect_error([&] { rbk::grouped_expert_mlp(x, idx, torch::ones({6, 2}, torch::kDouble), s, 0.0, true); }, "w must have idx's shape");
  expect_error([&] { rbk::grouped_expert_mlp(x.narrow(1, 0, 4), idx, w, s, 0.0, true); }, "up_weight must be");
  expect_error([&] { rbk::grouped_expert_mlp(x, idx, w, s, 0.0, true, -1); }, "tile_rows must be >= 0");
  auto bad = s;
  bad.down_bias = bad.down_bias.narrow(0, 0, 3);
  expect_error([&] { rbk::grouped_expert_mlp(x, idx, w, bad, 0.0, true); }, "down_bias must be");
}

}  // namespace
