//! Allocation of pickup windows to registrations in drawn order.
//!
//! This module owns the rule, and is the reference the database run must
//! agree with and the computation `draw-verify` repeats:
//!
//! Walk the registrations in drawn order (position 1 first). Each gets the
//! first of its choices, in rank order, whose window still has
//! `free >= quantity` and for which what the person may take there is `>= quantity`;
//! that window's `free` drops by `quantity`. A registration with no such
//! choice is "not drawn" and takes nothing. A registration with
//! `quantity < 1` is never drawn (it would otherwise take a window for free).
//!
//! What a person may take is given per registration per window
//! (`draw_entries.quota_left1`…`3`, recorded by the run at the
//! registration's turn): their quota left for that window's week, or 0 when
//! the booking's rules refuse them that window at all (the store stopped
//! sales, the rotation day, an account that can no longer book). It is not
//! looked up per person: a person has at most one registration per draw and
//! a registration gets at most one window, so nothing allocated in this draw
//! changes what any registration may take. If a person could ever hold two
//! registrations in one draw, this model would be wrong.
//!
//! [`Places`] is the rule for one registration at its turn, used by the run
//! as it settles and by [`allocate`] as `draw-verify` replays it.

use super::seed::Registration;
use std::collections::HashMap;

/// A registration in drawn order, with what its person may still take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrant {
    pub registration: Registration,
    /// Window id -> what the person may take there at their turn (see the
    /// module's doc). A window missing here counts as 0, so a gap in the
    /// data refuses rather than over-allocates.
    pub may_take: HashMap<i64, i32>,
}

/// The registration got none of its choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotDrawn;

/// One registration's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub registration_id: i64,
    /// 1-based place in the drawn order.
    pub position: usize,
    /// The window allocated, or [`NotDrawn`].
    pub result: Result<i64, NotDrawn>,
}

/// The free places of a draw's windows as its registrations take them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    free: HashMap<i64, i32>,
}

impl Places {
    /// Each window's free places; a window missing has none.
    pub fn new(free: HashMap<i64, i32>) -> Places {
        Places { free }
    }

    /// The rule at a registration's turn, for its `quantity` and its
    /// `choices` in rank order: the first with room for the quantity and
    /// where `may_take` (what its person may take at that window) allows
    /// it; that window's places are taken. `None`: not drawn, nothing taken.
    pub fn grant(
        &mut self,
        quantity: i32,
        choices: &[i64],
        may_take: impl Fn(i64) -> i32,
    ) -> Option<i64> {
        if quantity < 1 {
            return None;
        }
        let window = choices.iter().copied().find(|window| {
            self.free.get(window).copied().unwrap_or(0) >= quantity && may_take(*window) >= quantity
        })?;
        // `find` checked this entry exists and holds >= quantity, so the
        // subtraction cannot underflow.
        if let Some(room) = self.free.get_mut(&window) {
            *room -= quantity;
        }
        Some(window)
    }
}

/// Allocates in drawn order. `capacity` is each window's free places at the
/// start of the draw; a window missing from it has none. Returns one
/// outcome per entrant, in the same order.
pub fn allocate(drawn: &[Entrant], capacity: &HashMap<i64, i32>) -> Vec<Outcome> {
    let mut places = Places::new(capacity.clone());
    drawn
        .iter()
        .enumerate()
        .map(|(k, entrant)| {
            let r = &entrant.registration;
            let granted = places.grant(r.quantity, &r.choices, |window| {
                entrant.may_take.get(&window).copied().unwrap_or(0)
            });
            Outcome {
                registration_id: entrant.registration.id,
                position: k + 1,
                result: granted.ok_or(NotDrawn),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::order::Stream;
    use super::*;

    fn entrant(id: i64, quantity: i32, choices: &[i64], quota: &[(i64, i32)]) -> Entrant {
        Entrant {
            registration: Registration {
                id,
                pseudonym: format!("P{id}"),
                quantity,
                choices: choices.to_vec(),
            },
            may_take: quota.iter().copied().collect(),
        }
    }

    fn results(outcomes: &[Outcome]) -> Vec<Result<i64, NotDrawn>> {
        outcomes.iter().map(|o| o.result).collect()
    }

    fn cap(pairs: &[(i64, i32)]) -> HashMap<i64, i32> {
        pairs.iter().copied().collect()
    }

    const AMPLE: [(i64, i32); 3] = [(1, 9), (2, 9), (3, 9)];

    #[test]
    fn ranked_choice_respected() {
        let drawn = [
            entrant(10, 1, &[2, 1, 3], &AMPLE),
            entrant(11, 1, &[2, 3], &AMPLE),
            entrant(12, 1, &[2, 3, 1], &AMPLE),
            entrant(13, 1, &[3, 1], &AMPLE),
        ];
        let out = allocate(&drawn, &cap(&[(1, 5), (2, 2), (3, 1)]));
        // Window 2 fills after two, window 3 after one.
        assert_eq!(results(&out), vec![Ok(2), Ok(2), Ok(3), Ok(1)]);
    }

    #[test]
    fn outcomes_follow_drawn_order_with_positions() {
        let drawn = [
            entrant(30, 1, &[1], &AMPLE),
            entrant(10, 1, &[1], &AMPLE),
            entrant(20, 1, &[1], &AMPLE),
        ];
        let out = allocate(&drawn, &cap(&[(1, 1)]));
        let ids: Vec<(i64, usize)> = out
            .iter()
            .map(|o| (o.registration_id, o.position))
            .collect();
        assert_eq!(ids, vec![(30, 1), (10, 2), (20, 3)]);
        assert_eq!(results(&out), vec![Ok(1), Err(NotDrawn), Err(NotDrawn)]);
    }

    #[test]
    fn quantity_must_fit_whole() {
        // 3 wanted, 2 free: skip to the next choice, and leave the 2 for a
        // later, smaller registration.
        let drawn = [
            entrant(1, 3, &[1, 2], &AMPLE),
            entrant(2, 2, &[1], &AMPLE),
            entrant(3, 1, &[1], &AMPLE),
        ];
        let out = allocate(&drawn, &cap(&[(1, 2), (2, 3)]));
        assert_eq!(results(&out), vec![Ok(2), Ok(1), Err(NotDrawn)]);
    }

    #[test]
    fn quota_respected_per_window() {
        // Quota 1 for window 1's week, 2 for window 2's: a quantity of 2
        // skips window 1 even though it has room.
        let drawn = [entrant(1, 2, &[1, 2], &[(1, 1), (2, 2)])];
        let out = allocate(&drawn, &cap(&[(1, 9), (2, 9)]));
        assert_eq!(results(&out), vec![Ok(2)]);
        // Refused for quota, the place stays free for the next one.
        let drawn = [entrant(1, 2, &[1], &[(1, 1)]), entrant(2, 2, &[1], &AMPLE)];
        let out = allocate(&drawn, &cap(&[(1, 2)]));
        assert_eq!(results(&out), vec![Err(NotDrawn), Ok(1)]);
    }

    #[test]
    fn missing_quota_or_capacity_counts_as_zero() {
        let drawn = [
            entrant(1, 1, &[1, 2], &[(2, 1)]),
            entrant(2, 1, &[3], &AMPLE),
        ];
        let out = allocate(&drawn, &cap(&[(1, 5), (2, 5)]));
        assert_eq!(results(&out), vec![Ok(2), Err(NotDrawn)]);
    }

    #[test]
    fn non_positive_quantity_is_not_drawn() {
        let drawn = [entrant(1, 0, &[1], &AMPLE), entrant(2, -1, &[1], &AMPLE)];
        let out = allocate(&drawn, &cap(&[(1, 0)]));
        assert_eq!(results(&out), vec![Err(NotDrawn), Err(NotDrawn)]);
    }

    #[test]
    fn empty_draw() {
        assert!(allocate(&[], &cap(&[(1, 3)])).is_empty());
    }

    /// A random small instance: few windows and tight capacity so that
    /// every branch (room, no room, no quota) is common.
    fn random_instance(s: &mut Stream) -> (Vec<Entrant>, HashMap<i64, i32>) {
        let windows = 1 + s.below(4) as i64;
        let capacity: HashMap<i64, i32> = (1..=windows).map(|w| (w, s.below(7) as i32)).collect();
        let count = s.below(13) as i64;
        let drawn = (0..count)
            .map(|id| {
                let mut pool: Vec<i64> = (1..=windows).collect();
                let n_choices = 1 + s.below(pool.len().min(3) as u64) as usize;
                let choices: Vec<i64> = (0..n_choices)
                    .map(|_| pool.remove(s.below(pool.len() as u64) as usize))
                    .collect();
                let quota: Vec<(i64, i32)> =
                    choices.iter().map(|&w| (w, s.below(5) as i32)).collect();
                entrant(id, 1 + s.below(3) as i32, &choices, &quota)
            })
            .collect();
        (drawn, capacity)
    }

    /// Replays an allocation independently of `allocate` and checks every
    /// property the rule promises.
    fn check_properties(drawn: &[Entrant], capacity: &HashMap<i64, i32>, out: &[Outcome]) {
        assert_eq!(out.len(), drawn.len());
        let mut free = capacity.clone();
        for (k, (e, o)) in drawn.iter().zip(out).enumerate() {
            let r = &e.registration;
            assert_eq!(o.registration_id, r.id);
            assert_eq!(o.position, k + 1);
            let fits = |w: i64, free: &HashMap<i64, i32>| {
                free.get(&w).copied().unwrap_or(0) >= r.quantity
                    && e.may_take.get(&w).copied().unwrap_or(0) >= r.quantity
            };
            match o.result {
                Ok(w) => {
                    let rank = r.choices.iter().position(|&c| c == w);
                    let rank = rank.unwrap_or_else(|| panic!("{w} not a choice of {r:?}"));
                    // Given choice `rank`: it fitted, and every better one
                    // lacked room or quota at this turn.
                    assert!(fits(w, &free), "{r:?} given {w} without room/quota");
                    for &better in &r.choices[..rank] {
                        assert!(!fits(better, &free), "{r:?} skipped {better}");
                    }
                    // Quota respected.
                    assert!(e.may_take[&w] >= r.quantity);
                    *free.get_mut(&w).unwrap() -= r.quantity;
                }
                Err(NotDrawn) => {
                    // A choice with room and quota is never skipped.
                    for &c in &r.choices {
                        assert!(!fits(c, &free), "{r:?} not drawn though {c} fitted");
                    }
                }
            }
        }
        // Capacity never exceeded.
        for (w, &c) in capacity {
            let taken: i32 = drawn
                .iter()
                .zip(out)
                .filter(|(_, o)| o.result == Ok(*w))
                .map(|(e, _)| e.registration.quantity)
                .sum();
            assert!(taken <= c, "window {w}: {taken} > {c}");
            assert_eq!(free[w], c - taken);
        }
    }

    #[test]
    fn random_instances_satisfy_the_rule() {
        let mut s = Stream::new(&[7; 32]);
        let (mut given, mut refused) = (0, 0);
        for _ in 0..2000 {
            let (drawn, capacity) = random_instance(&mut s);
            let out = allocate(&drawn, &capacity);
            check_properties(&drawn, &capacity, &out);
            given += out.iter().filter(|o| o.result.is_ok()).count();
            refused += out.iter().filter(|o| o.result.is_err()).count();
        }
        // Guard against a generator that never exercises one of the branches.
        assert!(
            given > 1000 && refused > 1000,
            "given {given}, refused {refused}"
        );
    }
}
