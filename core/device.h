// Where a tensor lives, and which element type it holds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace graft {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda"; }
};

inline constexpr Device kCPU{DeviceType::CPU};
inline constexpr Device kCUDA{DeviceType::CUDA};

// Parses "cpu" or "cuda" (throws graft::Error otherwise).
Device parse_device(const std::string& name);

// True when graft was built with CUDA and a CUDA device is present and usable.
bool cuda_available();
// Why cuda_available() is false ("built without CUDA", "no CUDA device: ..."); empty when it is true.
std::string cuda_unavailable_reason();

// float32 is implemented everywhere; int32 carries labels and indices. The dtype is part of every tensor so
// that bf16/fp16 storage can be added later without a redesign.
enum class DType { Float32, Int32 };
inline std::size_t element_size(DType) { return 4; }
inline const char* dtype_name(DType d) { return d == DType::Float32 ? "float32" : "int32"; }

}  // namespace graft
