// Ctrl-C (SIGINT) as a request to stop at the next safe point, for loops that must end cleanly: the trainer saves a
// checkpoint, graft predict and graft features remove their unfinished output. While an InterruptScope lives, the
// first SIGINT only sets a flag that the loop polls (interrupted()); a second one gets the default action (the
// process ends, as the user insists). The previous handler is restored when the scope ends. A process that was
// started with SIGINT ignored (a background job of a shell without job control, which is how the shell keeps the
// terminal's Ctrl-C away from it) keeps ignoring it. Scopes do not nest: one loop at a time owns Ctrl-C.
#pragma once
#include <csignal>

namespace graft {

class InterruptScope {
 public:
  InterruptScope();  // clears the flag and installs the handler
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  struct sigaction previous_ {};
};

// True once SIGINT arrived inside the current InterruptScope.
bool interrupted();

}  // namespace graft
