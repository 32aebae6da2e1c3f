// graft_demo: a 2-layer MLP learns a synthetic task end to end (forward, fused softmax-cross-entropy, backward,
// plain SGD), printing the loss per step. The task: classify points of the plane by which of 3 circles' rings
// they fall in - not linearly separable, so the hidden layer has to earn its keep.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"

using namespace graft;

int main(int argc, char** argv) {
  try {
    Device device = argc > 1 ? parse_device(argv[1]) : kCPU;
    if (device.is_cuda() && !cuda_available()) GRAFT_FAIL("demo: ", cuda_unavailable_reason());
    const std::int64_t n = 512, hidden = 64, classes = 3;
    const int steps = 200;
    const float lr = 0.5f;

    Generator gen(42);
    Tensor points = Tensor::uniform({n, 2}, gen, -1.f, 1.f);
    std::vector<float> xy = points.to_vector();
    std::vector<std::int32_t> labels(n);
    for (std::int64_t i = 0; i < n; ++i) {
      float r = std::sqrt(xy[2 * i] * xy[2 * i] + xy[2 * i + 1] * xy[2 * i + 1]);
      labels[i] = r < 0.5f ? 0 : (r < 0.9f ? 1 : 2);
    }
    Tensor x = points.to(device), y = Tensor::from_vector(labels, {n}, device);

    Tensor w1 = mul(Tensor::randn({hidden, 2}, gen, device), std::sqrt(2.f / 2)).set_requires_grad(true);
    Tensor b1 = Tensor::zeros({hidden}, device).set_requires_grad(true);
    Tensor w2 = mul(Tensor::randn({classes, hidden}, gen, device), std::sqrt(1.f / hidden)).set_requires_grad(true);
    Tensor b2 = Tensor::zeros({classes}, device).set_requires_grad(true);
    std::vector<Tensor*> params{&w1, &b1, &w2, &b2};

    float loss_value = 0;
    for (int step = 1; step <= steps; ++step) {
      Tensor logits = linear(relu(linear(x, w1, b1)), w2, b2);
      Tensor loss = softmax_cross_entropy(logits, y);
      loss.backward();
      {
        NoGradGuard no_grad;
        for (Tensor* p : params) {
          Tensor updated = sub(*p, mul(p->grad(), lr));
          *p = updated.set_requires_grad(true);
        }
      }
      loss_value = loss.item();
      if (step == 1 || step % 10 == 0) std::printf("step %3d  loss %.4f\n", step, loss_value);
    }
    NoGradGuard no_grad;
    std::vector<float> logits = linear(relu(linear(x, w1, b1)), w2, b2).to_vector();
    int correct = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      int best = 0;
      for (int c = 1; c < classes; ++c)
        if (logits[i * classes + c] > logits[i * classes + best]) best = c;
      correct += best == labels[i];
    }
    std::printf("final loss %.4f, training accuracy %.1f%% on %s\n", loss_value, 100.0 * correct / n,
                device.str().c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "graft_demo: %s\n", e.message().c_str());
    return 1;
  }
}
