// Unit tests of quantization.h (claim C13). Each can fail: the bounds are the grids' own (half a
// step), GPTQ must beat RTN on its calibration data, and the FP32 row is compared bit for bit.
#include "rbk/evaluator.h"
#include "rbk/quantization.h"
#include "rbk/torch_compat_lowbit.h"

#include <gtest/gtest.h>

namespace {

// Relative slack on "half a step": the division x / s and the product q s are each rounded in
// fp32 (2^-24 relative each), so an element exactly at a rounding boundary may exceed s / 2 by a
// few ulps of |x|.
constexpr double kUlpSlack = 4.0 * 1.2e-7;

void expect_within_half_step(const torch::Tensor& w, int bits, int64_t group) {
  const auto deq = rbk::fake_quantize_symmetric(w, bits, group);
  ASSERT_TRUE(torch::isfinite(deq).all().item<bool>());
  const int64_t rows = w.size(0), cols = w.size(1), g = group > 0 ? group : cols;
  const auto s = rbk::symmetric_scales(w, bits, group);  // (rows, cols / g)
  const auto step = s.repeat_interleave(g, 1);            // (rows, cols)
  const auto err = (deq - w).abs();
  const auto bound = step * 0.5 + w.abs() * kUlpSlack;
  const auto excess = (err - bound).max().item<double>();
  EXPECT_LE(excess, 0.0) << "bits " << bits << " group " << group << ": some element's error exceeds half a step";
  (void)rows;
}

TEST(Quantization, Int8PerChannelRoundTripWithinHalfStep) {
  torch::manual_seed(1);
  // Channels of very different magnitude: a per-tensor scale would fail the per-channel bound.
  auto w = torch::randn({24, 40}) * torch::logspace(-3, 2, 24).unsqueeze(1);
  expect_within_half_step(w, 8, 0);
  // And the grid has 255 levels: the largest |value| of each channel is reproduced exactly.
  const auto deq = rbk::fake_quantize_symmetric(w, 8, 0);
  const auto idx = w.abs().argmax(1);
  const auto a = w.gather(1, idx.unsqueeze(1)), b = deq.gather(1, idx.unsqueeze(1));
  EXPECT_LE(((a - b).abs() / a.abs()).max().item<double>(), 1e-6);
}

TEST(Quantization, Int4PerGroupRoundTripWithinHalfStep) {
  torch::manual_seed(2);
  auto w = torch::randn({16, 64});
  w.narrow(1, 0, 16).mul_(100.0);  // one loud group per row: groups must not share its scale
  expect_within_half_step(w, 4, 16);
  expect_within_half_step(w, 4, 0);
  // Per-group error of the quiet groups is far below the per-channel error.
  const auto e_group = (rbk::fake_quantize_symmetric(w, 4, 16) - w).narrow(1, 16, 48).abs().mean().item<double>();
  const auto e_chan = (rbk::fake_quantize_symmetric(w, 4, 0) - w).narrow(1, 16, 48).abs().mean().item<double>();
  EXPECT_LT(e_group, 0.2 * e_chan);
}

TEST(Quantization, ZeroChannelAndConstantTensorGiveNoNaN) {
  auto w = torch::randn({4, 8});
  w[2].zero_();
  for (int bits : {8, 4}) {
    for (int64_t g : {int64_t(0), int64_t(4)}) {
      const auto d = rbk::fake_quantize_symmetric(w, bits, g);
      EXPECT_TRUE(torch::isfinite(d).all().item<bool>());
      EXPECT_EQ(d[2].abs().max().item<double>(), 0.0) << "an all-zero channel must stay exactly zero";
    }
  }
  const auto c = torch::full({3, 5}, 0.37);
  EXPECT_TRUE(torch::allclose(rbk::fake_quantize_symmetric(c, 8, 0), c, 1e-6, 0));
  EXPECT_TRUE(torch::allclose(rbk::fake_quantize_symmetric(c, 4, 5), c, 1e-6, 0));
  const auto z = torch::zeros({3, 5});
  EXPECT_EQ(rbk::fake_quantize_symmetric(z, 4, 0).abs().max().item<double>(), 0.0);
  EXPECT_EQ(rbk::fake_quantize_per_token_int8(z).abs().max().item<double>(), 0.0);
  EXPECT_EQ(rbk::fake_quantize_affine_uint8_per_tensor(z).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::isfinite(rbk::fake_quantize_upstream_int4(z)).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(rbk::fake_quantize_upstream_int8_weight(z)).all().item<bool>());
}

TEST(Quantization, GptqReducesLayerOutputErrorAgainstRtn) {
  torch::manual_seed(3);
  const int64_t in = 64, out = 32, tokens = 2048;
  // Correlated inputs (a random mixing of fewer latent factors plus noise): the regime where
  // compensating a column's error with the others pays off.
  auto z = torch::randn({tokens, 16}, torch::kDouble);
  auto x = (z.matmul(torch::randn({16, in}, torch::kDouble)) + 0.1 * torch::randn({tokens, in}, torch::kDouble)).to(torch::kFloat);
  auto w = torch::randn({out, in});
  const auto h = x.to(torch::kDouble).t().matmul(x.to(torch::kDouble));
  const auto y = torch::linear(x, w);
  for (int64_t g : {int64_t(0), int64_t(16)}) {
    const auto rtn = rbk::fake_quantize_symmetric(w, 4, g);
    const auto gptq = rbk::gptq_quantize(w, h, 4, g, {0.01, 16});
    const double e_rtn = (torch::linear(x, rtn) - y).pow(2).sum().item<double>();
    const double e_gptq = (torch::linear(x, gptq) - y).pow(2).sum().item<double>();
    std::printf("group %lld: output squared error RTN %.4g, GPTQ %.4g (ratio %.3f)\n", (long long)g, e_rtn, e_gptq, e_gptq / e_rtn);
    EXPECT_LT(e_gptq, 0.8 * e_rtn) << "group " << g;
    // GPTQ's output stays on the grid: every value is an integer multiple of its row's scale.
    if (g == 0) {
      const auto s = rbk::symmetric_scales(w, 4, 0);
      const auto q = gptq / s;
      EXPECT_LE((q - q.round()).abs().max().item<double>(), 1e-4);
      EXPECT_LE(q.abs().max().item<double>(), 7.0 + 1e-4);
    }
  }
}

TEST(Quantization, HessianCaptureSeesLinearInputs) {
  torch::manual_seed(4);
  torch::nn::Linear a(8, 4), b(8, 3);
  auto x = torch::randn({2, 5, 8});
  torch::Tensor h;
  {
    rbk::HessianCapture cap({a->weight});
    torch::NoGradGuard ng;
    a->forward(x);
    b->forward(x * 2);  // not registered: must not be counted
    a->forward(x);
    h = cap.hessian(0).clone();
    EXPECT_EQ(cap.tokens(0), 20);
  }
  const auto flat = x.reshape({-1, 8}).to(torch::kDouble);
  EXPECT_TRUE(torch::allclose(h, 2 * flat.t().matmul(flat), 1e-9, 1e-9));
}

TEST(Quantization, ActivationGuardRewritesOnlyRegisteredLinears) {
  torch::manual_seed(5);
  torch::nn::Linear a(8, 4), b(8, 3);
  auto x = torch::randn({6, 8});
  torch::NoGradGuard ng;
  const auto ya = a->forward(x).clone(), yb = b->forward(x).clone();
  rbk::ActivationQuantGuard guard({a->weight}, rbk::QuantMethod::W8A8);
  const auto qa = a->forward(x), qb = b->forward(x);
  EXPECT_EQ(guard.calls(), 1);
  EXPECT_TRUE(torch::equal(qb, yb));
  EXPECT_TRUE(torch::allclose(qa, torch::linear(rbk::fake_quantize_per_token_int8(x), a->weight, a->bias), 1e-6, 1e-6));
  EXPECT_FALSE(torch::equal(qa, ya));
}

rbk::LmConfig tiny(const std::string& arch) {
  rbk::LmConfig c;
  c.arch = arch;
  c.vocab_size = 50;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_seq = 16;
  c.num_experts = 2;
  c.n_heads = 2;
  c.ffn_dim = 32;
  c.d_state = 4;
  if (arch == "resnet_bk") c.bk_context = "causal";
  return c;
}

std::set<std::string> names(rbk::LanguageModel& m, const std::string& set) {
  std::set<std::string> s;
  for (const auto& t : rbk::select_quant_targets(m, set)) s.insert(t.name);
  return s;
}

TEST(Quantization, TensorSetsSayWhatTheyHold) {
  auto mamba = rbk::make_language_model(tiny("mamba"));
  const auto lin = names(*mamba, "linear"), core = names(*mamba, "linear_core"), emb = names(*mamba, "linear_embed_head");
  EXPECT_TRUE(lin.count("block0_mixer.in_proj.weight"));
  EXPECT_TRUE(lin.count("block0_mixer.out_proj.weight"));
  EXPECT_FALSE(lin.count("block0_mixer.dt_proj.weight"));
  EXPECT_FALSE(lin.count("block0_mixer.A_log"));
  EXPECT_FALSE(lin.count("head.weight"));
  EXPECT_TRUE(core.count("block0_mixer.dt_proj.weight") && core.count("block0_mixer.A_log") && core.count("block0_mixer.D"));
  EXPECT_TRUE(emb.count("tok_emb.weight") && emb.count("head.weight"));
  EXPECT_FALSE(emb.count("block0_mixer.A_log"));
  auto bk = rbk::make_language_model(tiny("resnet_bk"));
  const auto bl = names(*bk, "linear"), bc = names(*bk, "linear_core"), ev = names(*bk, "every_linear");
  EXPECT_TRUE(bl.count("block0_moe.up.0.weight") && bl.count("block1_moe.down.1.weight") && bl.count("block0_moe.gate.weight"));
  EXPECT_FALSE(bl.count("block0_v_proj.weight"));
  EXPECT_TRUE(bc.count("block0_v_proj.weight") && bc.count("block0_out_proj.weight"));
  EXPECT_TRUE(ev.count("head.weight") && ev.count("block0_v_proj.weight") && !ev.count("tok_emb.weight"));
  for (const auto& n : names(*bk, "all")) EXPECT_EQ(n.find("bias"), std::string::npos) << n;
}

TEST(Quantization, BadFormatsSetsAndGroupsAreClearErrors) {
  EXPECT_THROW(rbk::QuantFormat::parse("int3"), rbk::QuantizationError);
  EXPECT_THROW(rbk::QuantFormat::parse("int4_g0"), rbk::QuantizationError);
  EXPECT_THROW(rbk::QuantRowSpec::parse("int8@convs"), rbk::QuantizationError);
  const auto r = rbk::QuantRowSpec::parse("int4_gptq_g64");
  EXPECT_EQ(r.format.method, rbk::QuantMethod::Gptq);
  EXPECT_EQ(r.format.group_size, 64);
  EXPECT_EQ(r.tensor_set, "linear");
  auto m = rbk::make_language_model(tiny("transformer"));
  const auto row = rbk::QuantRowSpec::parse("int4_g12@linear");
  try {
    rbk::check_group_size(row, rbk::select_quant_targets(*m, row.tensor_set));
    FAIL() << "group 12 does not divide 16";
  } catch (const rbk::QuantizationError& e) {
    EXPECT_NE(std::string(e.what()).find("does not divide the last dimension 16"), std::string::npos) << e.what();
  }
}

rbk::TokenStream random_stream(int64_t n, int64_t V) {
  rbk::TokenStream s;
  s.ids = torch::randint(0, V, {n}, torch::kLong);
  s.n_bytes = 4 * n;
  s.source = "random";
  return s;
}

TEST(Quantization, Fp32RowEqualsUnquantizedEvaluationExactly) {
  for (const std::string arch : {"resnet_bk", "mamba", "transformer"}) {
    torch::manual_seed(6);
    auto m = rbk::make_language_model(tiny(arch));
    const auto s = random_stream(400, 50);
    const auto before = rbk::evaluate_language_model(*m, s, 4, 16, rbk::BatchLayout::Correct, torch::kCPU, "fp32", 0);
    const auto rep = rbk::apply_weight_quantization(*m, rbk::QuantRowSpec::parse("fp32@linear"));
    const auto after = rbk::evaluate_language_model(*m, s, 4, 16, rbk::BatchLayout::Correct, torch::kCPU, "fp32", 0);
    EXPECT_EQ(before.mean_nll, after.mean_nll) << arch;
    EXPECT_GT(rep.quantized_tensors, 0) << arch;
    EXPECT_DOUBLE_EQ(rep.bits_per_quantized_weight, 32.0);
    // And a real format does change the evaluation (the comparison above can fail).
    rbk::apply_weight_quantization(*m, rbk::QuantRowSpec::parse("int4_channel@linear"));
    const auto q = rbk::evaluate_language_model(*m, s, 4, 16, rbk::BatchLayout::Correct, torch::kCPU, "fp32", 0);
    EXPECT_NE(before.mean_nll, q.mean_nll) << arch;
  }
}

TEST(Quantization, GptqOnAWholeModelCalibratesEveryStage) {
  torch::manual_seed(7);
  auto m = rbk::make_language_model(tiny("transformer"));
  const auto calib = random_stream(600, 50);
  int calls = 0;
  const auto rep = rbk::apply_weight_quantization(
      *m, rbk::QuantRowSpec::parse("int4_gptq_g8@linear"),
      [&](rbk::LanguageModel& mm) {
        ++calls;
        rbk::evaluate_language_model(mm, calib, 4, 16, rbk::BatchLayout::Correct, torch::kCPU, "fp32", 0);
      });
  EXPECT_EQ(calls, 2);  // one pass per block
  EXPECT_TRUE(rep.gptq_fell_back_to_rtn.empty());
  EXPECT_EQ(rep.quantized_tensors, 8);
  // bits: 4 per element + one 16-bit scale per 8 elements = 6.
  EXPECT_DOUBLE_EQ(rep.bits_per_quantized_weight, 6.0);
}

// The real low-bit matmuls run on CUDA only (tests/quantization/test_lowbit_cuda.cpp checks them
// there); on the CPU both say "skipped" and why, and nothing is timed.
TEST(LowbitMatmul, SkippedWithTheReasonOnTheCpu) {
  const auto x = torch::randn({32, 256});
  const auto w = torch::randn({128, 256});
  for (const auto& r : {rbk::time_int8_matmul(x, w, 1), rbk::time_int4_matmul(x, w, 128, 1)}) {
    EXPECT_EQ(r.at("status"), "skipped") << r.dump();
    EXPECT_FALSE(r.value("reason", "").empty()) << r.dump();
  }
}

}  // namespace
