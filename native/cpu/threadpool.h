// The CPU backend's own thread pool. Sized from the CPUs this process may run on;
// KFAC_NUM_THREADS overrides. The calling thread is member 0 of every team, so a team
// of one runs inline with no synchronisation at all.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

namespace kfac::cpu {

// A reusable spin-then-yield barrier for one team.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait();

 private:
  int n_;
  std::atomic<int> count_{0};
  std::atomic<int> phase_{0};
};

// fn(tid, nthreads, barrier): every member runs it once with its own tid.
using TeamFn = std::function<void(int, int, Barrier&)>;

// Threads the pool uses by default (KFAC_NUM_THREADS or the CPUs available).
int default_threads();
// Threads in use now (>= 1).
int num_threads();
// Sets the thread count (1..256); 0 restores the default.
void set_num_threads(int n);

// Runs fn on a team of min(want, num_threads()) threads and waits for all of them.
// A call made from inside a team runs with a team of one.
void run_team(int want, const TeamFn& fn);

// Like run_team, but members that have not started by the time member 0 returns are not
// waited for (a member descheduled by other load holds nobody up). Only for jobs whose
// members claim work dynamically until none is left: no Barrier, no fixed share per tid
// (tid stays unique, e.g. to index per-member buffers).
void run_team_elastic(int want, const TeamFn& fn);

// Splits [0, n) into contiguous chunks of at least `grain` items over the pool and
// calls fn(begin, end) for each.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace kfac::cpu
