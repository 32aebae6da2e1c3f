// V consecutive values of one array moved as one access: with V * sizeof(T) = 16 (float4 / int4) a warp's loads
// and stores are 16 bytes per thread, the widest the hardware has. The pointer must then be 16-byte aligned:
// launchers check cuda::aligned16 on every pointer a kernel would use so and fall back to V = 1 otherwise.
// Device code only (the batch-norm and pooling kernels); the alignas makes nvcc emit one vector instruction.
#pragma once

namespace graft::cuda {

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
__device__ __forceinline__ Pack<T, V> load(const T* p) {
  return *reinterpret_cast<const Pack<T, V>*>(p);
}

template <int V, typename T>
__device__ __forceinline__ void store(T* p, const Pack<T, V>& x) {
  *reinterpret_cast<Pack<T, V>*>(p) = x;
}

// load<V>(p), or V copies of `fallback` when p is null (an optional operand such as gamma or a residual).
template <int V, typename T>
__device__ __forceinline__ Pack<T, V> load_or(const T* p, T fallback) {
  if (p != nullptr) return load<V>(p);
  Pack<T, V> x;
#pragma unroll
  for (int k = 0; k < V; ++k) x.v[k] = fallback;
  return x;
}

}  // namespace graft::cuda
