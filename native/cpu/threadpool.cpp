// Optimised even when the build passes no -O flag (the kernels are useless at -O0).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "threadpool.h"

#include <sched.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KFAC_PAUSE() _mm_pause()
#else
#define KFAC_PAUSE() std::this_thread::yield()
#endif

namespace kfac::cpu {

namespace {

thread_local bool t_in_team = false;

int detect_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? int(hc) : 1;
}

int env_threads() {
  const char* s = std::getenv("KFAC_NUM_THREADS");
  if (!s || !*s) return 0;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 1) return 0;  // ignore malformed values
  return int(std::min<long>(v, 256));
}

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  // elastic: members that have not joined by the time member 0 is done are not waited for
  // (the job must not need them: no Barrier, work claimed dynamically).
  void run(int team, const TeamFn& fn, bool elastic) {
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one team at a time
    Barrier barrier(team);
    job_ = &fn;
    barrier_ = &barrier;
    team_ = team;
    elastic_ = elastic;
    pending_.store(team - 1, std::memory_order_relaxed);
    const uint64_t g = gen_.load(std::memory_order_relaxed) + 1;  // only run() and ~Pool bump it
    entry_.store((g & kTagMask) << 32, std::memory_order_relaxed);  // open, nobody inside
    {
      std::lock_guard<std::mutex> lk(mu_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    t_in_team = true;
    fn(0, team, barrier);
    t_in_team = false;
    if (!elastic) spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
    // Close the job, then wait for whoever joined it to leave.
    entry_.fetch_or(kClosed, std::memory_order_acq_rel);
    spin_until([&] { return (entry_.load(std::memory_order_acquire) & kCountMask) == 0; });
    job_ = nullptr;
  }

 private:
  void loop(int id) {
    t_in_team = true;
    uint64_t seen = 0;
    for (;;) {
      // Spin briefly for the next job (GEMMs come in bursts), then sleep.
      uint64_t g = gen_.load(std::memory_order_acquire);
      for (int spins = 0; g == seen && spins < 20000; ++spins) {
        KFAC_PAUSE();
        g = gen_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
        g = gen_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_) return;
      // Join job g unless it is closed or already replaced; the job's fields are stable
      // while we are inside.
      uint64_t e = entry_.load(std::memory_order_acquire);
      bool joined = false;
      while ((e >> 32) == (g & kTagMask) && !(e & kClosed)) {
        if (entry_.compare_exchange_weak(e, e + 1, std::memory_order_acq_rel)) {
          joined = true;
          break;
        }
      }
      if (!joined) continue;
      if (id < team_) {
        (*job_)(id, team_, *barrier_);
        if (!elastic_) pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
      entry_.fetch_sub(1, std::memory_order_release);
    }
  }

  template <class Done>
  static void spin_until(Done done) {
    for (int spins = 0; !done(); ++spins) {
      if (spins < 4096) KFAC_PAUSE(); else std::this_thread::yield();
    }
  }

  static constexpr uint64_t kTagMask = 0xffffffffu;
  static constexpr uint64_t kClosed = uint64_t(1) << 31;
  static constexpr uint64_t kCountMask = kClosed - 1;

  int n_;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  // Generation tag (high 32 bits) | closed bit | members inside the current job.
  std::atomic<uint64_t> entry_{kClosed};
  const TeamFn* job_ = nullptr;
  bool elastic_ = false;
  Barrier* barrier_ = nullptr;
  int team_ = 1;
  bool stop_ = false;
};

std::mutex g_pool_mu;
std::unique_ptr<Pool> g_pool;
int g_threads = 0;

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (g_threads == 0) g_threads = default_threads();
  if (!g_pool || g_pool->size() != g_threads) {
    g_pool.reset();
    g_pool = std::make_unique<Pool>(g_threads);
  }
  return *g_pool;
}

}  // namespace

void Barrier::wait() {
  if (n_ <= 1) return;
  int phase = phase_.load(std::memory_order_acquire);
  if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    count_.store(0, std::memory_order_relaxed);
    phase_.fetch_add(1, std::memory_order_release);
    return;
  }
  for (int spins = 0; phase_.load(std::memory_order_acquire) == phase; ++spins) {
    if (spins < 4096) KFAC_PAUSE(); else std::this_thread::yield();
  }
}

int default_threads() {
  int e = env_threads();
  return e ? e : std::min(detect_cpus(), 256);
}

int num_threads() {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (g_threads == 0) g_threads = default_threads();
  return g_threads;
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  g_threads = n <= 0 ? default_threads() : std::min(n, 256);
}

namespace {

void run_team_impl(int want, const TeamFn& fn, bool elastic) {
  int team = std::max(1, want);
  if (t_in_team) team = 1;
  if (team > 1) team = std::min(team, num_threads());
  if (team == 1) {
    Barrier b(1);
    fn(0, 1, b);
    return;
  }
  pool().run(team, fn, elastic);
}

}  // namespace

void run_team(int want, const TeamFn& fn) { run_team_impl(want, fn, false); }

void run_team_elastic(int want, const TeamFn& fn) { run_team_impl(want, fn, true); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, num_threads());
  if (chunks <= 1 || t_in_team) {
    fn(0, n);
    return;
  }
  // A body that throws (an allocation failing inside a unit of work, say) must not end the
  // process on a worker thread nor leave the team open: the first exception is kept, every
  // member finishes its range, and it is rethrown here on the caller's thread. (parallel_for's
  // members share no Barrier, so one that stops early cannot strand the others.)
  std::exception_ptr err;
  std::mutex err_mu;
  run_team(int(chunks), [&](int tid, int nt, Barrier&) {
    int64_t b = n * tid / nt, e = n * (tid + 1) / nt;
    if (b >= e) return;
    try {
      fn(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu);
      if (!err) err = std::current_exception();
    }
  });
  if (err) std::rethrow_exception(err);
}

}  // namespace kfac::cpu
