// Checkpoint files of the LM trainer: writing, exact-resume reading, and the one-line errors for
// files that are not checkpoints (see lm_checkpoint.h and trainer.h; claim C05, issue 17).
#include "lm_checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <filesystem>

namespace rbk {
namespace detail {
namespace {

torch::Tensor string_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  if (!s.empty()) std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}

std::string tensor_string(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

// One line naming the file for anything LibTorch or the JSON reader throws while a checkpoint is
// opened or read: a c10::Error's what() carries a C++ stack trace, which is not a user message.
[[noreturn]] void throw_checkpoint_error(const std::string& path, const std::string& what) {
  throw CheckpointError(path + ": not a readable rbk checkpoint (" + what + ")");
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Runs f (which reads `path`) and turns every failure into a CheckpointError.
template <class F>
auto with_checkpoint_errors(const std::string& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const CheckpointError&) {
    throw;
  } catch (const c10::Error& e) {
    throw_checkpoint_error(path, first_line(e.what_without_backtrace()));
  } catch (const nlohmann::json::exception& e) {
    throw_checkpoint_error(path, std::string("bad meta record: ") + e.what());
  } catch (const std::exception& e) {
    throw_checkpoint_error(path, first_line(e.what()));
  }
}

void open_checkpoint_archive(const std::string& path, torch::serialize::InputArchive& ar, torch::Device device) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw CheckpointError(path + ": checkpoint not found");
  if (!std::filesystem::is_regular_file(path, ec)) throw CheckpointError(path + ": not a regular file, so not a checkpoint");
  if (std::filesystem::file_size(path, ec) == 0) throw CheckpointError(path + ": empty file, not a checkpoint");
  with_checkpoint_errors(path, [&] { ar.load_from(path, device); });
}

nlohmann::json archive_meta(const std::string& path, torch::serialize::InputArchive& ar) {
  return with_checkpoint_errors(path, [&] {
    torch::Tensor meta_t;
    if (!ar.try_read("meta", meta_t)) throw CheckpointError(path + ": a torch archive without an rbk \"meta\" record, not an rbk checkpoint");
    auto meta = nlohmann::json::parse(tensor_string(meta_t));
    if (!meta.is_object() || !meta.contains("model_config"))
      throw CheckpointError(path + ": the meta record has no model_config, not an rbk checkpoint");
    return meta;
  });
}

}  // namespace

nlohmann::json epoch_json(const EpochStats& e) {
  return {{"epoch", e.epoch}, {"steps", e.steps}, {"mean_loss", e.mean_loss}, {"train_ppl", e.train_ppl}, {"seconds", e.seconds}};
}

void save_checkpoint(const std::string& path, LanguageModel& model, torch::optim::Optimizer& optim, const TrainState& st,
                     const nlohmann::json& extra) {
  nlohmann::json meta{{"schema", "rbk.lm_checkpoint/1"}, {"model_config", model.config().to_json()}, {"extra", extra},
                      {"epoch", st.epoch}, {"chunk", st.chunk}, {"step", st.step}, {"epoch_loss_sum", st.epoch_loss_sum},
                      {"epoch_micro", st.epoch_micro}, {"epoch_steps", st.epoch_steps}, {"epoch_seconds", st.epoch_seconds},
                      {"total_seconds", st.total_seconds}, {"ema", st.ema}, {"tokens", st.tokens},
                      {"eval_seconds", st.eval_seconds}, {"divergence_state", st.divergence_state},
                      {"peak_memory", st.peak.to_json()}};
  meta["epochs"] = nlohmann::json::array();
  for (const auto& e : st.epochs) meta["epochs"].push_back(epoch_json(e));
  meta["valid_curve"] = nlohmann::json::array();
  for (const auto& v : st.valid_curve) meta["valid_curve"].push_back(v.to_json());
  torch::serialize::OutputArchive ar, ma, oa;
  model.save(ma);
  optim.save(oa);
  ar.write("model", ma);
  ar.write("optimizer", oa);
  ar.write("meta", string_tensor(meta.dump()));
  ar.write("step_losses", torch::tensor(st.step_losses.empty() ? std::vector<double>{} : st.step_losses, torch::kDouble));
  ar.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  const std::string tmp = path + ".tmp";
  ar.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

void load_checkpoint(const std::string& path, LanguageModel& model, torch::optim::Optimizer& optim, TrainState& st,
                     torch::Device device) {
  torch::serialize::InputArchive ar, ma, oa;
  open_checkpoint_archive(path, ar, device);
  torch::Tensor losses, rng;
  const auto meta = archive_meta(path, ar);
  if (meta.at("model_config") != model.config().to_json())
    throw std::runtime_error(path + ": checkpoint model_config differs from the model being trained; delete it or use "
                             "another checkpoint path");
  with_checkpoint_errors(path, [&] {
    ar.read("model", ma);
    model.load(ma);
    ar.read("optimizer", oa);
    optim.load(oa);
    ar.read("step_losses", losses);
    ar.read("rng_cpu", rng);
  });
  auto gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng.to(torch::kCPU));
  st.epoch = meta.at("epoch");
  st.chunk = meta.at("chunk");
  st.step = meta.at("step");
  st.epoch_loss_sum = meta.at("epoch_loss_sum");
  st.epoch_micro = meta.at("epoch_micro");
  st.epoch_steps = meta.at("epoch_steps");
  st.epoch_seconds = meta.at("epoch_seconds");
  st.total_seconds = meta.at("total_seconds");
  st.ema = meta.at("ema");
  st.tokens = meta.at("tokens");
  st.epochs.clear();
  for (const auto& e : meta.at("epochs"))
    st.epochs.push_back({e.at("epoch"), e.at("steps"), e.at("mean_loss"), e.at("train_ppl"), e.at("seconds")});
  auto l = losses.to(torch::kCPU).contiguous();
  st.step_losses.assign(l.data_ptr<double>(), l.data_ptr<double>() + l.numel());
  // Checkpoints written before validation and the divergence rule existed have none of these.
  st.eval_seconds = meta.value("eval_seconds", 0.0);
  st.divergence_state = meta.value("divergence_state", nlohmann::json());
  st.peak = PeakMemory::from_json(meta.value("peak_memory", nlohmann::json::object()));
  st.valid_curve.clear();
  for (const auto& v : meta.value("valid_curve", nlohmann::json::array()))
    st.valid_curve.push_back({v.at("step"), v.at("tokens"), v.at("valid_loss"), v.at("valid_ppl")});
}

}  // namespace detail

nlohmann::json read_checkpoint_meta(const std::string& path) {
  torch::serialize::InputArchive ar;
  detail::open_checkpoint_archive(path, ar, torch::kCPU);
  return detail::archive_meta(path, ar);
}

std::shared_ptr<LanguageModel> load_model_from_checkpoint(const std::string& path, torch::Device device) {
  torch::serialize::InputArchive ar, ma;
  detail::open_checkpoint_archive(path, ar, device);
  const auto meta = detail::archive_meta(path, ar);
  return detail::with_checkpoint_errors(path, [&] {
    auto model = make_language_model(LmConfig::from_json(meta.at("model_config")));
    ar.read("model", ma);
    model->load(ma);
    model->to(device);
    return model;
  });
}

}  // namespace rbk
