#ifndef GITFLEET_COMMON_SYNC_H_
#define GITFLEET_COMMON_SYNC_H_

// The project's mutex, with absl::Mutex's shape and thread-safety annotations, built on
// std::mutex and std::condition_variable.
//
// Why not absl::Mutex: Debian's Abseil is not built for ThreadSanitizer, so TSAN cannot
// see absl::Mutex lock and unlock and reports every contended guarded member as a race.
// std::mutex goes through pthread, which TSAN intercepts, so --config=tsan checks the
// same locking that runs in production.
//
//   Mutex mu;
//   int value ABSL_GUARDED_BY(mu);
//   { MutexLock lock(&mu); ++value; }
//   mu.Lock(); mu.Await([&] { return value > 0; }); mu.Unlock();
//
// Thread-safe. As in absl::Mutex, the thread that unlocks evaluates the waiters'
// conditions (under the lock) and wakes them only when one holds: a mutex taken by
// thousands of callers a second does not wake its idle waiters each time to look.

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gitfleet {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    // Notified under the lock: a waiter that wakes for another reason and returns cannot
    // destroy the mutex between this thread's unlock and its notify.
    if (AnyWaiterReady()) changed_.notify_all();
    mu_.unlock();
  }

  // Waits, with the lock held on entry and on return, until `condition` holds.
  void Await(const std::function<bool()>& condition) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    if (condition()) return;  // the lock is kept: nothing to wake anyone for
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    WakeReady();
    Waiter self(this, &condition);
    changed_.wait(lock, condition);
    lock.release();
  }
  // As Await, giving up at `deadline` of the wall clock. Returns whether `condition` holds.
  bool AwaitWithDeadline(const std::function<bool()>& condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    if (condition()) return true;
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    WakeReady();
    Waiter self(this, &condition);
    bool result = changed_.wait_until(lock, absl::ToChronoTime(deadline), condition);
    lock.release();
    return result;
  }
  // As Await, giving up after `timeout` of steady time: a step of the wall clock neither
  // shortens nor stretches it.
  bool AwaitWithTimeout(const std::function<bool()>& condition, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    if (timeout >= absl::Hours(24 * 365)) {  // as good as forever, and no overflow
      Await(condition);
      return true;
    }
    if (condition()) return true;
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    WakeReady();
    Waiter self(this, &condition);
    bool result = changed_.wait_for(
        lock, absl::ToChronoNanoseconds(std::max(timeout, absl::ZeroDuration())), condition);
    lock.release();
    return result;
  }

 private:
  // A thread in Await*, linked (with the lock held) for as long as it waits. Its condition
  // is only ever evaluated with the lock held, by it or by an unlocking thread.
  struct Waiter {
    Waiter(Mutex* mu, const std::function<bool()>* condition)
        : mu(mu), condition(condition), next(mu->waiters_) {
      if (next != nullptr) next->prev = this;
      mu->waiters_ = this;
    }
    ~Waiter() {
      if (prev != nullptr) prev->next = next;
      if (next != nullptr) next->prev = prev;
      if (mu->waiters_ == this) mu->waiters_ = next;
    }
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;
    Mutex* const mu;
    const std::function<bool()>* const condition;
    Waiter* prev = nullptr;
    Waiter* next;
  };

  // Waiting lets the lock go as Unlock does, so it wakes those whose conditions what this
  // thread did under the lock made true (else they would sleep until this one is done).
  // Only a thread that is about to wait calls it: one whose condition holds keeps the
  // lock, and waking the others then would only make them contend for it.
  void WakeReady() {
    if (AnyWaiterReady()) changed_.notify_all();
  }

  bool AnyWaiterReady() {
    for (Waiter* w = waiters_; w != nullptr; w = w->next) {
      if ((*w->condition)()) return true;
    }
    return false;
  }

  std::mutex mu_;
  std::condition_variable changed_;
  Waiter* waiters_ = nullptr;  // guarded by mu_ (not annotated: the analysis cannot see it)
};

// Holds a Mutex for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A one-shot event.
class Notification {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
  }
  bool HasBeenNotified() {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() {
    MutexLock lock(&mu_);
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return notified_; });
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return notified_; },
                                timeout);
  }

 private:
  Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_SYNC_H_
