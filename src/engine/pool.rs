//! The memory pool under `--memory-limit`: what a spilling operator may hold while others spill.
//!
//! DataFusion's two bounded pools both fail hhq's plans. A `GreedyMemoryPool` grants first come,
//! first served: one partition's sort fills the pool, and the other partition's sort, which has
//! just spilled, finds no room to merge what it sorted (merging needs memory of its own, which
//! cannot spill). A `FairSpillPool` splits the pool evenly between every *registered* spilling
//! consumer, and a measure's plan registers dozens of sorts at once, most of them idle: each
//! share is too small for one batch.
//!
//! [`SharePool`] splits it between the spilling consumers that hold memory *now*: a consumer
//! that asks to grow may hold at most an even share of what the consumers that cannot spill
//! leave, counting itself and every other spilling consumer holding something. One sort alone
//! may use it all; two at once half each, so each leaves room for the other's merge. Consumers
//! that cannot spill (merges, hash tables, kept blocks) are granted whatever is free, as by the
//! greedy pool.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// A pool of `size` bytes shared evenly between the spilling consumers holding memory.
#[derive(Debug)]
pub struct SharePool {
    size: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes held by consumers that cannot spill.
    unspillable: usize,
    /// Bytes held by each spilling consumer holding any, by consumer id (a consumer's
    /// reservations may be split; they count together).
    spilling: HashMap<usize, usize>,
}

impl State {
    fn spillable(&self) -> usize {
        self.spilling.values().sum()
    }

    fn used(&self) -> usize {
        self.unspillable + self.spillable()
    }
}

impl SharePool {
    pub fn new(size: usize) -> SharePool {
        SharePool {
            size,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters, still consistent enough to
        // report: take them rather than poison every later query.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Display for SharePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        write!(
            f,
            "share(used: {}, pool_size: {}, spilling consumers holding memory: {})",
            crate::plan::format_size(state.used()),
            crate::plan::format_size(self.size),
            state.spilling.len()
        )
    }
}

fn add(state: &mut State, consumer: &MemoryConsumer, bytes: usize) {
    if consumer.can_spill() {
        *state.spilling.entry(consumer.id()).or_default() += bytes;
    } else {
        state.unspillable += bytes;
    }
}

impl MemoryPool for SharePool {
    fn name(&self) -> &str {
        "share"
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        // Its reservations have been freed (a reservation shrinks to nothing when dropped);
        // forget the entry whatever it says.
        if consumer.can_spill() {
            self.lock().spilling.remove(&consumer.id());
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        add(&mut self.lock(), reservation.consumer(), additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        let consumer = reservation.consumer();
        let mut state = self.lock();
        if consumer.can_spill() {
            if let Some(held) = state.spilling.get_mut(&consumer.id()) {
                *held = held.saturating_sub(shrink);
                if *held == 0 {
                    state.spilling.remove(&consumer.id());
                }
            }
        } else {
            state.unspillable = state.unspillable.saturating_sub(shrink);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let consumer = reservation.consumer();
        let mut state = self.lock();
        let free = self.size.saturating_sub(state.used());
        let allowed = if consumer.can_spill() {
            let held = state.spilling.get(&consumer.id()).copied().unwrap_or(0);
            let others = state
                .spilling
                .keys()
                .filter(|id| **id != consumer.id())
                .count();
            let share = self.size.saturating_sub(state.unspillable) / (others + 1);
            share.saturating_sub(held).min(free)
        } else {
            free
        };
        if additional > allowed {
            drop(state);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "Failed to allocate additional {} for {} with {} already allocated for this \
                 reservation - {} remain available to it in the total memory pool: {}",
                crate::plan::format_size(additional),
                consumer.name(),
                crate::plan::format_size(reservation.size()),
                crate::plan::format_size(allowed),
                self
            )));
        }
        add(&mut state, consumer, additional);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.lock().used()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pool(size: usize) -> Arc<dyn MemoryPool> {
        Arc::new(SharePool::new(size))
    }

    #[test]
    fn a_spilling_consumer_alone_may_use_the_whole_pool() {
        let pool = pool(100);
        let a = MemoryConsumer::new("a")
            .with_can_spill(true)
            .register(&pool);
        // Registered idle consumers do not take a share.
        let _idle = MemoryConsumer::new("idle")
            .with_can_spill(true)
            .register(&pool);
        a.try_grow(100).unwrap();
        assert!(a.try_grow(1).is_err());
        assert_eq!(pool.reserved(), 100);
    }

    #[test]
    fn two_spilling_consumers_holding_memory_get_half_each() {
        let pool = pool(100);
        let a = MemoryConsumer::new("a")
            .with_can_spill(true)
            .register(&pool);
        let b = MemoryConsumer::new("b")
            .with_can_spill(true)
            .register(&pool);
        a.try_grow(10).unwrap();
        b.try_grow(10).unwrap();
        a.try_grow(40).unwrap();
        assert!(a.try_grow(1).is_err(), "a is at its half");
        b.try_grow(40).unwrap();
        assert!(b.try_grow(1).is_err());
        // When b spills (frees), a may grow into the whole pool again.
        b.free();
        a.try_grow(50).unwrap();
    }

    #[test]
    fn what_a_spiller_frees_stays_for_the_merge_that_cannot_spill() {
        let pool = pool(100);
        let a = MemoryConsumer::new("sort a")
            .with_can_spill(true)
            .register(&pool);
        let b = MemoryConsumer::new("sort b")
            .with_can_spill(true)
            .register(&pool);
        let merge_b = MemoryConsumer::new("merge b").register(&pool);
        a.try_grow(50).unwrap();
        b.try_grow(50).unwrap();
        // b sorts what it holds and spills: frees it, and its merge takes memory that cannot
        // spill. a, holding its share, may not take what b freed.
        b.shrink(30);
        assert!(a.try_grow(10).is_err());
        merge_b.try_grow(30).unwrap();
        assert!(merge_b.try_grow(1).is_err(), "the pool is full");
    }

    #[test]
    fn split_reservations_count_as_their_consumer() {
        let pool = pool(100);
        let a = MemoryConsumer::new("a")
            .with_can_spill(true)
            .register(&pool);
        let b = MemoryConsumer::new("b")
            .with_can_spill(true)
            .register(&pool);
        b.try_grow(1).unwrap();
        a.try_grow(30).unwrap();
        let part = a.split(20);
        // a holds 30 across two reservations; its share is 50.
        part.try_grow(20).unwrap();
        assert!(a.try_grow(1).is_err());
        drop(part);
        a.try_grow(20).unwrap();
        drop(a);
        drop(b);
        assert_eq!(pool.reserved(), 0);
    }
}
