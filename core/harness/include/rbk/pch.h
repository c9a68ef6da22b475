// Precompiled header for every rbk target: LibTorch's headers dominate compile time on 2 cores.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
