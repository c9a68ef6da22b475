// Paired sweep designs (sweep.h): the arms of one seed start from the same initial weights where
// names and shapes allow. The seed's reference arm saves its parameters; later arms copy the ones
// that match, and the cell records which were shared.
#include "rbk/results.h"
#include "rbk/sweep.h"
#include "rbk/generator_state.h"

#include <filesystem>
#include <fstream>
#include <iterator>

namespace rbk {

void save_parameter_file(const std::string& path, const torch::nn::Module& module) {
  // Parameter names hold dots, which archive keys may not; a pickled name -> tensor dict keeps
  // them as they are, and the bytes go through the atomic writer.
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    dict.insert(p.key(), p.value().detach().to(torch::kCPU).clone());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_text_atomic(path, std::string(bytes.begin(), bytes.end()));
}

std::map<std::string, torch::Tensor> load_parameter_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SweepError("parameter file '" + path + "': cannot open");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, torch::Tensor> out;
  try {
    const c10::IValue value = torch::pickle_load(bytes);
    if (!value.isGenericDict()) throw SweepError("parameter file '" + path + "': not a name -> tensor dictionary");
    for (const auto& entry : value.toGenericDict())
      out.emplace(entry.key().toStringRef(), entry.value().toTensor());
  } catch (const SweepError&) {
    throw;
  } catch (const std::exception& e) {
    // Keep LibTorch's multi-line trace out of the message: its first line says enough.
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw SweepError("parameter file '" + path + "': not readable (" + what + ")");
  }
  return out;
}

nlohmann::json apply_paired_init(const SweepCell& cell, const std::string& sweep_dir, torch::nn::Module& model,
                                 const std::function<std::shared_ptr<torch::nn::Module>()>& build_reference) {
  const std::string path = sweep_init_path(sweep_dir, cell.seed);
  if (!std::filesystem::exists(path)) {
    if (cell.id == cell.reference_cell) {
      save_parameter_file(path, model);
    } else {
      const torch::Tensor saved_state = generator_state(torch::kCPU);
      const auto reference = build_reference();
      if (!reference) throw SweepError("cell " + cell.id + ": no model to build the shared init of " + cell.reference_cell);
      save_parameter_file(path, *reference);
      set_generator_state(torch::kCPU, saved_state);
    }
  }
  nlohmann::json record = copy_matching_parameters(model, load_parameter_file(path)).to_json();
  record["reference_cell"] = cell.reference_cell;
  record["init_file"] = std::filesystem::path(path).filename().string();
  return record;
}

}  // namespace rbk
