// Data-parallel training over c10d (issue 23; core/training/include/rbk/distributed.h), on the CPU with Gloo:
//  * launch variables: none = single process; partial or malformed = one error naming them;
//  * the per-rank shards of the train stream are disjoint and cover what one process reads;
//  * rbk_train on 2 processes (launched by scripts/launch_local.sh, as a user would) with the same
//    global batch as 1 process gives the same per-step losses, validation curve, test PPL and final
//    parameters within the fp32 all-reduce tolerance below, and rank 0 alone writes;
//  * the tolerance discriminates: one process at the per-rank batch (what a rank that skipped the
//    all-reduce would train on) is far outside it.
// The processes run the smoke preset's tiny ResNet-BK with dropout off (dropout draws differ between
// one batch of B rows and two of B/2, so only the dropout-free computation is the same).
#include "rbk/distributed.h"
#include "rbk/results.h"
#include "rbk/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

namespace {
namespace fs = std::filesystem;

// Two ranks average two half-batch means where one process takes one mean: fp32 sums in another
// order, a few ulp (~1e-7 relative) per step, which AdamW's normalisation by sqrt(v) carries through
// the 20 steps. Measured here: about 1e-6 on the losses and parameters. 1e-4 leaves margin; a wrong
// reduction (one rank's gradient, a sum instead of a mean, misaligned shards) is off by > 1e-2.
constexpr double kLossTolerance = 1e-4;       // relative, per step loss and valid/test PPL
constexpr double kParameterTolerance = 1e-4;  // absolute, every parameter element

const std::string kRepo = RBK_REPO_DIR;
const std::string kTrain = RBK_TRAIN_EXE;
const std::string kScratch = RBK_SCRATCH_DIR;

// Common options: 20 steps of the smoke model, dropout off, validation every 5 steps.
const std::string kOptions =
    " --preset smoke device=cpu threads=1 model.dropout=0 train.epochs=1 train.max_steps=20 train.eval_every=5 "
    "train.log_every=5 train.schedule=constant train.warmup_steps=0";

int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(LaunchEnv, NoneSetIsSingleProcess) {
  const auto env = rbk::parse_launch_env(nullptr, nullptr, nullptr, nullptr, nullptr);
  EXPECT_FALSE(env.active);
  EXPECT_EQ(env.world_size, 1);
}

TEST(LaunchEnv, AllSetIsParsed) {
  const auto env = rbk::parse_launch_env("1", "2", "1", "127.0.0.1", "29500");
  EXPECT_TRUE(env.active);
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.world_size, 2);
  EXPECT_EQ(env.master_port, 29500);
}

TEST(LaunchEnv, PartialOrMalformedIsAnErrorNamingTheVariable) {
  const auto message = [](const char* r, const char* w, const char* l, const char* a, const char* p) -> std::string {
    try {
      rbk::parse_launch_env(r, w, l, a, p);
    } catch (const rbk::DistributedConfigError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message("0", "2", "0", "127.0.0.1", nullptr).find("MASTER_PORT missing"), std::string::npos);
  EXPECT_NE(message("2", "2", "0", "127.0.0.1", "29500").find("RANK = '2'"), std::string::npos);
  EXPECT_NE(message("0", "two", "0", "127.0.0.1", "29500").find("WORLD_SIZE = 'two'"), std::string::npos);
  EXPECT_NE(message("0", "2", "0", "127.0.0.1", "70000").find("MASTER_PORT = '70000'"), std::string::npos);
  EXPECT_NE(message("0", "2", "0", "", "29500").find("MASTER_ADDR"), std::string::npos);
}

TEST(TrainShard, DisjointAndCoveringTheEpoch) {
  for (const int64_t tokens : {1000, 4097, 65536})
    for (const int64_t world : {1, 2, 4})
      for (const int64_t batch : {4, 8, 20}) {
        if (batch % world) continue;
        // What one process reads: batchify's B rows of floor(T/B) tokens.
        const int64_t covered = batch * (tokens / batch);
        std::vector<int> owner(static_cast<size_t>(tokens), -1);
        for (int r = 0; r < world; ++r) {
          const auto s = rbk::train_shard(tokens, batch, r, static_cast<int>(world));
          EXPECT_EQ(s.rows * world, batch);
          for (int64_t t = s.token_begin; t < s.token_end; ++t) {
            ASSERT_EQ(owner[t], -1) << "token " << t << " in the shards of ranks " << owner[t] << " and " << r;
            owner[t] = r;
          }
        }
        for (int64_t t = 0; t < tokens; ++t) EXPECT_EQ(owner[t] >= 0, t < covered) << "token " << t;
        // Rank r's rows of the global grid are the rows of its own stream: the same tokens.
        const auto ids = torch::arange(tokens, torch::kInt64);
        const auto grid = rbk::batchify(ids, batch);
        for (int r = 0; r < world; ++r) {
          const auto s = rbk::train_shard(tokens, batch, r, static_cast<int>(world));
          const auto own = rbk::batchify(ids.narrow(0, s.token_begin, s.token_end - s.token_begin), s.rows);
          EXPECT_TRUE(torch::equal(own, grid.narrow(0, s.row_begin, s.rows)));
        }
      }
}

TEST(TrainShard, RefusesABatchThatDoesNotSplit) {
  EXPECT_THROW(rbk::train_shard(1000, 6, 0, 4), rbk::DistributedConfigError);
  rbk::TrainOptions o;
  o.batch_size = 4;
  o.layout = rbk::BatchLayout::UpstreamTimeMajor;
  EXPECT_THROW(rbk::check_data_parallel_options(o, 2), rbk::DistributedConfigError);
  o.layout = rbk::BatchLayout::Correct;
  EXPECT_NO_THROW(rbk::check_data_parallel_options(o, 2));
  o.batch_size = 5;
  EXPECT_THROW(rbk::check_data_parallel_options(o, 2), rbk::DistributedConfigError);
}

TEST(TrainSync, NoneInstalledByDefault) { EXPECT_EQ(rbk::active_train_sync(), nullptr); }

// Bad launches exit 2 with one message naming the variable or key, before anything is written.
TEST(DataParallel, BadLaunchesExitTwoWritingNothing) {
  const std::string dir = kScratch + "/bad-launch";
  rbk::remove_directory_tree(dir);
  fs::create_directories(kScratch);
  const std::string vars = "RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" RBK_TEST_PORT " ";
  const struct {
    std::string env, args, expected;
  } cases[] = {
      {"env -u LOCAL_RANK -u MASTER_ADDR -u MASTER_PORT RANK=0 WORLD_SIZE=2 ", "", "LOCAL_RANK, MASTER_ADDR, MASTER_PORT missing"},
      {"env RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=99999 ", "", "MASTER_PORT = '99999'"},
      {"env " + vars, " dist.backend=nccl", "dist.backend = nccl needs a CUDA device"},
      {"env " + vars, " train.batch_size=5", "train.batch_size = 5"},
      {"env " + vars, " train.layout=upstream_time_major", "train.layout = upstream_time_major"},
  };
  for (const auto& c : cases) {
    const std::string log = kScratch + "/bad-launch.log";
    EXPECT_EQ(run(c.env + "'" + kTrain + "' --preset smoke device=cpu --out " + dir + c.args + " > " + log + " 2>&1"), 2)
        << c.env << c.args << "\n" << slurp(log);
    EXPECT_NE(slurp(log).find(c.expected), std::string::npos) << slurp(log);
    EXPECT_FALSE(fs::exists(dir)) << c.env << c.args;
  }
}

// The GPU scaling presets of scripts/run_device.sh's distributed stage (not run here) parse and
// validate: with the CPU and fp32 swapped in, the only error left is the missing corpus.
TEST(DataParallel, GpuScalingPresetsValidate) {
  for (const std::string model : {"resnet_bk", "transformer"}) {
    const std::string log = kScratch + "/preset-" + model + ".log", dir = kScratch + "/preset-" + model;
    fs::create_directories(kScratch);
    EXPECT_EQ(run("'" + kTrain + "' --preset dp_scaling_" + model + " device=cpu train.precision=fp32 " +
                  "data.data_dir=/nonexistent-rbk-corpus --out " + dir + " > " + log + " 2>&1"),
              2);
    EXPECT_NE(slurp(log).find("data.data_dir"), std::string::npos) << slurp(log);
    EXPECT_FALSE(fs::exists(dir));
  }
}

// The reducer itself, two ranks as two threads of this process (each its own TCPStore client and
// Gloo group): rank 0's parameters reach rank 1; every gradient becomes the mean over ranks, also
// for a parameter only rank 1 used (rank 0 contributes zeros); a parameter no rank used keeps no
// gradient, as in one process. One bucket per parameter, so the in-order launch is exercised: rank 0
// lacks the second bucket's gradient, rank 1 has it.
TEST(GradientReducer, MeanOverRanksIncludingUnusedParameters) {
  if (!rbk::c10d_backend_compiled("gloo")) GTEST_SKIP() << "this build has no c10d gloo";
  for (const bool overlap : {true, false}) {
    SCOPED_TRACE(overlap ? "overlap" : "no overlap");
    std::vector<std::vector<torch::Tensor>> initial(2), after(2), grads(2);
    std::vector<nlohmann::json> stats(2);
    std::vector<std::string> errors(2);
    auto rank_body = [&](int rank) {
      try {
        rbk::LaunchEnv env;
        env.active = true;
        env.rank = rank;
        env.world_size = 2;
        env.master_addr = "127.0.0.1";
        env.master_port = std::atoi(RBK_TEST_PORT) + 30 + (overlap ? 1 : 0);
        rbk::DistributedOptions o;
        o.timeout_s = 30;
        o.bucket_mib = 1e-6;  // one parameter per bucket
        o.overlap = overlap;
        auto ctx = rbk::DistributedContext::connect(env, o, "gloo");
        auto reducer = rbk::make_gradient_reducer(ctx, torch::kCPU);
        torch::manual_seed(100 + rank);  // different initial values: the broadcast must win
        const auto rg = torch::TensorOptions().requires_grad(true);
        std::vector<torch::Tensor> params{torch::randn({4}, rg), torch::randn({2, 2}, rg), torch::randn({3}, rg)};
        for (const auto& p : params) initial[rank].push_back(p.detach().clone());
        reducer->prepare(params);
        for (const auto& p : params) after[rank].push_back(p.detach().clone());
        const auto x = torch::tensor({1.0f, 2.0f, 3.0f}) * static_cast<float>(rank + 1);
        auto loss = (params[2] * x).sum();
        if (rank == 1) loss = loss + params[1].pow(2).sum();
        reducer->before_backward(0, true);
        loss.backward();
        reducer->reduce_gradients(0);
        for (const auto& p : params) grads[rank].push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
        stats[rank] = reducer->stats();
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    };
    std::thread t0(rank_body, 0), t1(rank_body, 1);
    t0.join();
    t1.join();
    ASSERT_EQ(errors[0], "");
    ASSERT_EQ(errors[1], "");
    const auto x = torch::tensor({1.0f, 2.0f, 3.0f});
    for (int r = 0; r < 2; ++r) {
      for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(torch::equal(after[r][i], initial[0][i])) << "rank " << r << " param " << i;
      EXPECT_FALSE(grads[r][0].defined()) << "rank " << r << ": the parameter no rank used got a gradient";
      ASSERT_TRUE(grads[r][1].defined()) << "rank " << r;
      EXPECT_TRUE(torch::allclose(grads[r][1], initial[0][1], 1e-6, 1e-6)) << grads[r][1];  // (0 + 2 p) / 2
      EXPECT_TRUE(torch::allclose(grads[r][2], 1.5 * x, 1e-6, 1e-6)) << grads[r][2];       // (x + 2 x) / 2
      EXPECT_EQ(stats[r].at("buckets"), 3);
    }
    // Rank 1 had the first two buckets' gradients during backward; rank 0 only the first.
    EXPECT_EQ(stats[1].at("buckets_launched_in_backward"), overlap ? 2 : 0);
    EXPECT_EQ(stats[0].at("buckets_launched_in_backward"), overlap ? 1 : 0);
  }
}

double max_param_diff(const std::string& a, const std::string& b) {
  const auto ma = rbk::load_model_from_checkpoint(a), mb = rbk::load_model_from_checkpoint(b);
  const auto pa = ma->named_parameters(), pb = mb->named_parameters();
  EXPECT_EQ(pa.size(), pb.size());
  double worst = 0.0;
  for (const auto& p : pa) {
    const auto* q = pb.find(p.key());
    EXPECT_NE(q, nullptr) << p.key();
    if (q == nullptr) continue;
    worst = std::max(worst, (p.value() - *q).abs().max().item<double>());
  }
  return worst;
}

double max_rel_loss_diff(const nlohmann::json& a, const nlohmann::json& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i].get<double>() - b[i].get<double>()) / std::abs(b[i].get<double>()));
  return worst;
}

nlohmann::json row_of(const std::string& dir) { return rbk::read_json_file(dir + "/rbk_train.smoke.json").at("rows").at(0); }

TEST(DataParallel, TwoRanksEqualOneRankAtTheSameGlobalBatch) {
  if (!rbk::c10d_backend_compiled("gloo")) GTEST_SKIP() << "this build has no c10d gloo";
  const std::string dir = kScratch + "/equivalence";
  rbk::remove_directory_tree(dir);
  fs::create_directories(dir);
  const std::string one = dir + "/one", two = dir + "/two", half = dir + "/half";
  ASSERT_EQ(run("'" + kTrain + "'" + kOptions + " --out " + one + " > " + dir + "/one.log 2>&1"), 0) << slurp(dir + "/one.log");
  ASSERT_EQ(run("'" + kRepo + "/scripts/launch_local.sh' --nproc-per-node 2 --master-port " RBK_TEST_PORT " '" + kTrain + "'" +
                kOptions + " dist.timeout_s=60 --out " + two + " > " + dir + "/two.log 2>&1"),
            0)
      << slurp(dir + "/two.log");
  // Falsifier of the tolerance: one process on the per-rank batch (2 of the 4 rows).
  ASSERT_EQ(run("'" + kTrain + "'" + kOptions + " train.batch_size=2 --out " + half + " > " + dir + "/half.log 2>&1"), 0)
      << slurp(dir + "/half.log");

  const auto r1 = row_of(one), r2 = row_of(two), rh = row_of(half);
  ASSERT_EQ(r1.at("status"), "ok");
  ASSERT_EQ(r2.at("status"), "ok");
  EXPECT_EQ(r2.at("steps"), r1.at("steps"));
  EXPECT_EQ(r2.at("tokens"), r1.at("tokens"));
  const double loss_diff = max_rel_loss_diff(r2.at("step_losses"), r1.at("step_losses"));
  const double param_diff = max_param_diff(two + "/model.pt", one + "/model.pt");
  const double ppl_diff = std::abs(r2["test"]["ppl"].get<double>() / r1["test"]["ppl"].get<double>() - 1.0);
  std::vector<double> curve1, curve2;
  for (const auto& p : r1.at("valid_curve")) curve1.push_back(p.at("valid_loss"));
  for (const auto& p : r2.at("valid_curve")) curve2.push_back(p.at("valid_loss"));
  const double curve_diff = max_rel_loss_diff(nlohmann::json(curve2), nlohmann::json(curve1));
  const double half_loss_diff = max_rel_loss_diff(rh.at("step_losses"), r1.at("step_losses"));
  const double half_param_diff = max_param_diff(half + "/model.pt", one + "/model.pt");
  std::printf("2 ranks vs 1 process over %zu steps: step loss max rel diff %.3g, valid curve %.3g, test PPL %.3g, "
              "parameters max abs diff %.3g (tolerances %.0e / %.0e)\n"
              "1 process at the per-rank batch vs 1 process: loss %.3g, parameters %.3g (must exceed them)\n",
              r1.at("step_losses").size(), loss_diff, curve_diff, ppl_diff, param_diff, kLossTolerance,
              kParameterTolerance, half_loss_diff, half_param_diff);
  EXPECT_LE(loss_diff, kLossTolerance);
  EXPECT_LE(curve_diff, kLossTolerance);
  EXPECT_LE(ppl_diff, kLossTolerance);
  EXPECT_LE(param_diff, kParameterTolerance);
  EXPECT_GT(half_loss_diff, kLossTolerance);
  EXPECT_GT(half_param_diff, kParameterTolerance);

  // The shards the record lists: disjoint, together what one process reads; rank 1 trained on its own.
  const auto& shards = r2.at("distributed").at("train_shards");
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_EQ(shards[0].at("token_end"), shards[1].at("token_begin"));
  EXPECT_EQ(shards[0].at("token_begin"), 0);
  EXPECT_EQ(shards[1].at("token_end").get<int64_t>(),
            shards[1].at("global_batch").get<int64_t>() * shards[1].at("columns").get<int64_t>());
  const std::string log = slurp(dir + "/two.log");
  EXPECT_NE(log.find("rbk_train[rank 1]: train shard " + shards[1].dump()), std::string::npos) << log;
  EXPECT_GT(r2.at("distributed").at("reducer").at("steps_reduced").get<int64_t>(), 0);

  // Rank 0 alone writes: the files of one process, no more (rank 1 would add its own temporaries,
  // checkpoint or result), and one writer of the metrics log.
  std::set<std::string> files1, files2;
  for (const auto& e : fs::recursive_directory_iterator(one)) files1.insert(fs::relative(e.path(), one).string());
  for (const auto& e : fs::recursive_directory_iterator(two)) files2.insert(fs::relative(e.path(), two).string());
  EXPECT_EQ(files1, files2);
  EXPECT_EQ(slurp(one + "/metrics.jsonl").size() > 0, true);
  std::ifstream metrics(two + "/metrics.jsonl");
  int steps_logged = 0;
  for (std::string line; std::getline(metrics, line);)
    if (nlohmann::json::parse(line).value("event", "") == "step") ++steps_logged;
  EXPECT_EQ(steps_logged, 4);  // 20 steps, log_every 5, one writer

  // Resume refuses another world size (exit 2, one message), and nothing is written.
  const auto before = slurp(two + "/rbk_train.smoke.json");
  EXPECT_EQ(run("'" + kTrain + "'" + kOptions + " --out " + two + " > " + dir + "/resume.log 2>&1"), 2);
  EXPECT_NE(slurp(dir + "/resume.log").find("WORLD_SIZE = 2"), std::string::npos) << slurp(dir + "/resume.log");
  EXPECT_EQ(slurp(two + "/rbk_train.smoke.json"), before);
  rbk::remove_directory_tree(dir);
}

// Stopped at step 15 and relaunched at the same world size: the run resumes from rank 0's checkpoint
// and ends bit-identical to an uninterrupted 2-rank run (every rank reads the same checkpoint).
TEST(DataParallel, ResumeAtTheSameWorldSizeIsExact) {
  if (!rbk::c10d_backend_compiled("gloo")) GTEST_SKIP() << "this build has no c10d gloo";
  const std::string dir = kScratch + "/resume";
  rbk::remove_directory_tree(dir);
  fs::create_directories(dir);
  const std::string launch = "'" + kRepo + "/scripts/launch_local.sh' --nproc-per-node 2 --master-port ";
  const std::string opts = "'" + kTrain + "'" + kOptions + " train.max_steps=0 train.epochs=2 train.checkpoint_every=5 dist.timeout_s=60";
  const int port = std::atoi(RBK_TEST_PORT);
  ASSERT_EQ(run(launch + std::to_string(port + 40) + " " + opts + " --out " + dir + "/straight > " + dir + "/a.log 2>&1"), 0)
      << slurp(dir + "/a.log");
  ASSERT_EQ(run(launch + std::to_string(port + 41) + " " + opts + " train.max_steps=15 --out " + dir + "/restarted > " + dir +
                "/b.log 2>&1"),
            0)
      << slurp(dir + "/b.log");
  ASSERT_EQ(run(launch + std::to_string(port + 42) + " " + opts + " --out " + dir + "/restarted > " + dir + "/c.log 2>&1"), 0)
      << slurp(dir + "/c.log");
  EXPECT_NE(slurp(dir + "/c.log").find("resumed from"), std::string::npos);
  const auto a = row_of(dir + "/straight"), b = row_of(dir + "/restarted");
  for (const char* key : {"status", "steps", "tokens", "step_losses", "valid_curve", "valid", "test"})
    EXPECT_EQ(a.at(key), b.at(key)) << key;
  rbk::remove_directory_tree(dir);
}

}  // namespace
