//! The line itself, without I/O or clocks of its own: who is in flight, who
//! waits in which order, how fast the line moves, and what each arrival is
//! told. Every method takes the time as milliseconds since the epoch, so the
//! rules are tested with plain numbers.

use std::collections::{HashMap, HashSet, VecDeque};

use super::ticket::{LIFETIME_MS, Ticket};

/// The most tickets one instance keeps in its line. Each costs about 40 bytes,
/// so the line stays under 10 MB; a ticket younger than all of them is not
/// kept (it is told it is at the back, and comes back later).
pub const MAX_WAITING: usize = 200_000;

/// The longest a waiting visitor is told to stay away.
pub const MAX_RETRY_SECS: u64 = 30;

/// New tickets one client address may be given per second. A browser needs
/// one; a carrier's NAT puts many people behind one address, so the number is
/// high; a script that throws away its cookie and asks again is stopped by it.
pub const NEW_TICKETS_PER_CLIENT_PER_SEC: u32 = 50;

/// How long a free slot may go unclaimed by the head of the line (its
/// holders told to come back in a second, and a second of slack) before
/// whoever comes next takes it: holders who walked away must not keep the
/// server idle until they are dropped, so when the rush ends the room lets
/// everyone in within a couple of seconds.
pub const IDLE_SLOT_MS: i64 = 2000;

/// Client addresses counted per second; past it, new addresses are not
/// counted (the map stays bounded whatever a flood of addresses does).
const MAX_CLIENTS_COUNTED: usize = 100_000;

/// Answers to a holder who came back before half of their wait was over:
/// after this many in a row, the answer is 429 instead of the waiting page.
pub const EARLY_STRIKES: u8 = 3;

/// What an arrival is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A slot is theirs; the ticket (if any) now has a request in flight.
    Admit {
        ticket: Option<Ticket>,
    },
    Wait(Wait),
    /// A flood: too many new tickets from one address, or a holder who keeps
    /// coming back before their time. Their place (if any) is kept.
    TooMany {
        retry_after_secs: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub ticket: Ticket,
    /// The ticket was issued by this answer (the cookie is to be set).
    pub new_ticket: bool,
    /// 1 for the head of the line.
    pub position: usize,
    /// When to come back.
    pub retry_after_secs: u64,
    /// The expected wait until admission.
    pub wait_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    ticket: Ticket,
    last_seen_ms: i64,
    /// When the holder was last told to come back, and after how long.
    told_ms: i64,
    retry_secs: u64,
    early: u8,
}

impl Waiter {
    /// A holder who stopped coming back for three of their waits (and two
    /// seconds of slack) has left the line.
    fn stale(&self, now_ms: i64) -> bool {
        let gone_for = 3 * self.retry_secs as i64 * 1000 + 2000;
        now_ms - self.last_seen_ms > gone_for || now_ms - self.ticket.issued_ms >= LIFETIME_MS
    }
}

/// Completions per second, as an exponentially weighted average over the
/// seconds in which somebody waited (when nobody waits, the server is not
/// saturated and its completions say nothing about how fast the line moves).
#[derive(Debug)]
struct Rate {
    per_sec: f64,
    second: i64,
    count: u32,
    busy: bool,
}

impl Rate {
    fn roll(&mut self, now_ms: i64, busy: bool) {
        let second = now_ms.div_euclid(1000);
        if second > self.second {
            if self.busy {
                self.per_sec = 0.7 * self.per_sec + 0.3 * f64::from(self.count);
            }
            self.second = second;
            self.count = 0;
            self.busy = busy;
        } else {
            self.busy |= busy;
        }
    }
}

/// New tickets per client address in the current second.
#[derive(Debug, Default)]
struct Issued {
    second: i64,
    counts: HashMap<String, u32>,
}

impl Issued {
    fn allow(&mut self, client: &str, now_ms: i64) -> bool {
        let second = now_ms.div_euclid(1000);
        if second != self.second {
            self.counts.clear();
            self.second = second;
        }
        if let Some(n) = self.counts.get_mut(client) {
            *n += 1;
            return *n <= NEW_TICKETS_PER_CLIENT_PER_SEC;
        }
        if self.counts.len() < MAX_CLIENTS_COUNTED {
            self.counts.insert(client.to_owned(), 1);
        }
        true
    }
}

#[derive(Debug)]
pub struct Line {
    capacity: usize,
    in_flight: usize,
    /// Sorted by ticket: the head of the line first.
    waiting: VecDeque<Waiter>,
    /// Tickets with a request in flight: one slot per ticket at a time.
    holding: HashSet<Ticket>,
    rate: Rate,
    issued: Issued,
    next_sweep_ms: i64,
    max_waiting: usize,
    issued_seq: u64,
    /// Since when a slot has been free while somebody waits and nobody whose
    /// turn it was has taken one.
    idle_since_ms: Option<i64>,
}

impl Line {
    pub fn new(capacity: usize) -> Line {
        Line::with_max_waiting(capacity, MAX_WAITING)
    }

    pub fn with_max_waiting(capacity: usize, max_waiting: usize) -> Line {
        Line {
            capacity,
            in_flight: 0,
            waiting: VecDeque::new(),
            holding: HashSet::new(),
            rate: Rate {
                // Until measured: each slot frees once a second.
                per_sec: capacity as f64,
                second: 0,
                count: 0,
                busy: false,
            },
            issued: Issued::default(),
            next_sweep_ms: 0,
            max_waiting,
            issued_seq: 0,
            idle_since_ms: None,
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// How many from the head of the line may take a free slot: the slots, or
    /// as many as the line moves in a second if more. Holders come back at
    /// best once a second (`Retry-After` counts whole seconds), so a line
    /// that let only the first `free` slots' worth in would leave slots idle
    /// between their visits. Order is thus kept to within one second of
    /// service: everyone in the window came before everyone behind it.
    fn window(&self) -> usize {
        self.capacity.max(self.rate.per_sec.ceil() as usize)
    }

    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.in_flight)
    }

    /// Whether a slot has been left free for [`IDLE_SLOT_MS`] while somebody
    /// waits: then it goes to whoever asks.
    fn idle(&self, now_ms: i64) -> bool {
        self.free() > 0
            && self
                .idle_since_ms
                .is_some_and(|since| now_ms - since >= IDLE_SLOT_MS)
    }

    /// Notes, after every change, whether a slot is free while somebody waits.
    /// The clock restarts only when someone whose turn it was took a slot (or
    /// nobody waits): while the head stays away, slots keep going to whoever
    /// comes, at full speed.
    fn note_idle(&mut self, now_ms: i64, taken_in_turn: bool) {
        if taken_in_turn || self.waiting.is_empty() {
            self.idle_since_ms = None;
        }
        if self.free() > 0 && !self.waiting.is_empty() {
            self.idle_since_ms.get_or_insert(now_ms);
        }
    }

    fn tick(&mut self, now_ms: i64) {
        self.rate.roll(now_ms, !self.waiting.is_empty());
        if now_ms >= self.next_sweep_ms {
            self.waiting.retain(|w| !w.stale(now_ms));
            self.next_sweep_ms = now_ms + 1000;
        }
    }

    /// Takes a slot as a visitor without a ticket would: when one is free and
    /// the line is short enough that nobody waiting is passed.
    pub fn hold(&mut self, now_ms: i64) -> bool {
        self.tick(now_ms);
        let in_turn = self.waiting.len() < self.window();
        let taken = self.free() > 0 && (in_turn || self.idle(now_ms));
        if taken {
            self.in_flight += 1;
        }
        self.note_idle(now_ms, taken && in_turn);
        taken
    }

    /// A slot is given back (its request answered or abandoned).
    pub fn leave(&mut self, ticket: Option<Ticket>, now_ms: i64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(t) = ticket {
            self.holding.remove(&t);
        }
        self.tick(now_ms);
        self.rate.count = self.rate.count.saturating_add(1);
        self.note_idle(now_ms, false);
    }

    /// A guarded request arrives with the ticket it holds (if valid); `nonce`
    /// (its low 32 bits: random) makes the ticket it is given if it needs one.
    pub fn arrive(
        &mut self,
        held: Option<Ticket>,
        client: &str,
        now_ms: i64,
        nonce: u64,
    ) -> Outcome {
        self.tick(now_ms);
        let Some(ticket) = held else {
            if self.hold(now_ms) {
                return Outcome::Admit { ticket: None };
            }
            if !self.issued.allow(client, now_ms) {
                return Outcome::TooMany {
                    retry_after_secs: 1,
                };
            }
            // Tickets issued here in one millisecond keep their order: the
            // nonce's high half counts them, its low half is random.
            self.issued_seq = self.issued_seq.wrapping_add(1);
            let ticket = Ticket {
                issued_ms: now_ms,
                nonce: (self.issued_seq << 32) | (nonce & 0xffff_ffff),
            };
            let wait = self.wait(ticket, true, now_ms);
            self.note_idle(now_ms, false);
            return Outcome::Wait(wait);
        };
        let (rank, kept) = self.place(ticket, now_ms);
        let in_turn = rank < self.window();
        if self.free() > 0 && (in_turn || self.idle(now_ms)) && !self.holding.contains(&ticket) {
            if kept {
                self.waiting.remove(rank);
            }
            self.in_flight += 1;
            self.holding.insert(ticket);
            self.note_idle(now_ms, in_turn);
            return Outcome::Admit {
                ticket: Some(ticket),
            };
        }
        self.note_idle(now_ms, false);
        if kept && let Some(w) = self.waiting.get_mut(rank) {
            w.last_seen_ms = now_ms;
            let early = now_ms - w.told_ms < w.retry_secs as i64 * 500;
            if early {
                w.early = w.early.saturating_add(1);
                if w.early >= EARLY_STRIKES {
                    let left = w.told_ms + w.retry_secs as i64 * 1000 - now_ms;
                    return Outcome::TooMany {
                        retry_after_secs: (left.max(0) as u64).div_ceil(1000).max(1),
                    };
                }
            } else {
                w.early = 0;
            }
        }
        Outcome::Wait(self.wait(ticket, false, now_ms))
    }

    /// The answer to a holder who waits, and their place noted.
    fn wait(&mut self, ticket: Ticket, new_ticket: bool, now_ms: i64) -> Wait {
        let (rank, kept) = self.place(ticket, now_ms);
        let retry_after_secs = if self.holding.contains(&ticket) {
            1
        } else {
            self.retry_after(rank)
        };
        if kept && let Some(w) = self.waiting.get_mut(rank) {
            let early = w.early > 0;
            // An early visit does not move the time they were told to come.
            if !early || new_ticket {
                w.told_ms = now_ms;
                w.retry_secs = retry_after_secs;
            }
        }
        Wait {
            ticket,
            new_ticket,
            position: rank + 1,
            retry_after_secs,
            wait_secs: self.wait_secs(rank),
        }
    }

    /// The ticket's index in the line (the number of holders before it), and
    /// whether it is kept there; put in at its time if it is not yet.
    fn place(&mut self, ticket: Ticket, now_ms: i64) -> (usize, bool) {
        match self.waiting.binary_search_by(|w| w.ticket.cmp(&ticket)) {
            Ok(i) => (i, true),
            Err(i) => {
                if self.waiting.len() >= self.max_waiting {
                    if i >= self.waiting.len() {
                        return (i, false);
                    }
                    self.waiting.pop_back();
                }
                self.waiting.insert(
                    i,
                    Waiter {
                        ticket,
                        last_seen_ms: now_ms,
                        // Never told here: its first visit is not early.
                        told_ms: 0,
                        retry_secs: 1,
                        early: 0,
                    },
                );
                (i, true)
            }
        }
    }

    fn per_sec(&self) -> f64 {
        self.rate.per_sec.max(1.0)
    }

    /// Within the window: a second. Behind it: half the time the window needs
    /// to reach them (so they come back before their turn, not after it).
    fn retry_after(&self, rank: usize) -> u64 {
        let window = self.window();
        if rank < window {
            return 1;
        }
        let behind = (rank + 1 - window) as f64;
        ((behind / self.per_sec() / 2.0).ceil() as u64).clamp(1, MAX_RETRY_SECS)
    }

    fn wait_secs(&self, rank: usize) -> u64 {
        ((rank + 1) as f64 / self.per_sec()).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_583_971_200_000;

    fn wait(o: Outcome) -> Wait {
        match o {
            Outcome::Wait(w) => w,
            other => panic!("expected to wait, got {other:?}"),
        }
    }

    fn full_line(capacity: usize) -> Line {
        let mut line = Line::new(capacity);
        for _ in 0..capacity {
            assert!(line.hold(T0));
        }
        line
    }

    #[test]
    fn visitors_pass_straight_in_while_slots_are_free_and_nobody_waits() {
        let mut line = Line::new(2);
        assert_eq!(
            line.arrive(None, "a", T0, 1),
            Outcome::Admit { ticket: None }
        );
        assert_eq!(
            line.arrive(None, "a", T0, 2),
            Outcome::Admit { ticket: None }
        );
        let w = wait(line.arrive(None, "a", T0, 3));
        assert!(w.new_ticket);
        assert_eq!(w.position, 1);
        assert_eq!(w.ticket.issued_ms, T0);
        assert_eq!(line.in_flight(), 2);
        line.leave(None, T0 + 10);
        assert_eq!(line.in_flight(), 1);
    }

    #[test]
    fn holders_keep_their_number_across_refreshes() {
        let mut line = full_line(1);
        let a = wait(line.arrive(None, "a", T0, 1)).ticket;
        let b = wait(line.arrive(None, "b", T0 + 1, 2)).ticket;
        let c = wait(line.arrive(None, "c", T0 + 2, 3)).ticket;
        for at in [T0 + 1000, T0 + 2000, T0 + 3000] {
            assert_eq!(wait(line.arrive(Some(c), "c", at, 9)).position, 3);
            assert_eq!(wait(line.arrive(Some(a), "a", at, 9)).position, 1);
            assert_eq!(wait(line.arrive(Some(b), "b", at, 9)).position, 2);
        }
    }

    #[test]
    fn the_oldest_ticket_goes_first_even_when_a_younger_one_comes_back_first() {
        let mut line = full_line(1);
        let older = wait(line.arrive(None, "a", T0, 1)).ticket;
        let younger = wait(line.arrive(None, "b", T0 + 5, 2)).ticket;
        line.leave(None, T0 + 10);
        assert_eq!(
            wait(line.arrive(Some(younger), "b", T0 + 1000, 9)).position,
            2
        );
        assert_eq!(
            line.arrive(Some(older), "a", T0 + 1000, 9),
            Outcome::Admit {
                ticket: Some(older)
            }
        );
        assert_eq!(
            wait(line.arrive(Some(younger), "b", T0 + 1001, 9)).position,
            1,
            "the slot is taken again"
        );
        line.leave(Some(older), T0 + 1100);
        assert_eq!(
            line.arrive(Some(younger), "b", T0 + 2100, 9),
            Outcome::Admit {
                ticket: Some(younger)
            }
        );
        assert_eq!(line.waiting(), 0);
    }

    #[test]
    fn a_ticket_from_another_instance_takes_its_place_by_time() {
        let mut line = full_line(1);
        let here = wait(line.arrive(None, "a", T0 + 100, 1)).ticket;
        let elsewhere = Ticket {
            issued_ms: T0,
            nonce: 7,
        };
        assert_eq!(
            wait(line.arrive(Some(elsewhere), "b", T0 + 200, 9)).position,
            1
        );
        assert_eq!(wait(line.arrive(Some(here), "a", T0 + 1200, 9)).position, 2);
    }

    #[test]
    fn slots_left_free_by_absent_holders_go_to_whoever_comes_until_the_head_is_back() {
        let mut line = Line::new(2);
        line.hold(T0);
        line.hold(T0);
        let head = wait(line.arrive(None, "a", T0, 1)).ticket;
        let _also_away = wait(line.arrive(None, "b", T0, 2));
        let behind = wait(line.arrive(None, "c", T0, 3)).ticket;
        line.leave(None, T0 + 100);
        assert!(matches!(
            line.arrive(Some(behind), "c", T0 + 1100, 9),
            Outcome::Wait(_)
        ));
        let idle = T0 + 100 + IDLE_SLOT_MS;
        assert_eq!(
            line.arrive(Some(behind), "c", idle, 9),
            Outcome::Admit {
                ticket: Some(behind)
            }
        );
        line.leave(Some(behind), idle + 10);
        assert_eq!(
            line.arrive(None, "new", idle + 20, 4),
            Outcome::Admit { ticket: None },
            "still nobody from the head: the next one goes in at once"
        );
        line.leave(None, idle + 30);
        // The head comes back and takes a slot in turn: the order holds again.
        assert_eq!(
            line.arrive(Some(head), "a", idle + 40, 9),
            Outcome::Admit { ticket: Some(head) }
        );
        assert!(matches!(
            line.arrive(None, "late", idle + 50, 5),
            Outcome::Wait(_)
        ));
    }

    #[test]
    fn a_new_visitor_never_passes_those_waiting() {
        let mut line = full_line(1);
        let a = wait(line.arrive(None, "a", T0, 1)).ticket;
        line.leave(None, T0 + 1);
        let newcomer = wait(line.arrive(None, "n", T0 + 2, 2));
        assert_eq!(newcomer.position, 2);
        assert_eq!(
            line.arrive(Some(a), "a", T0 + 1000, 9),
            Outcome::Admit { ticket: Some(a) }
        );
    }

    #[test]
    fn one_ticket_has_one_request_in_flight_at_a_time() {
        let mut line = Line::new(3);
        for _ in 0..3 {
            line.hold(T0);
        }
        let t = wait(line.arrive(None, "a", T0, 1)).ticket;
        line.leave(None, T0 + 1);
        line.leave(None, T0 + 1);
        assert_eq!(
            line.arrive(Some(t), "a", T0 + 1000, 9),
            Outcome::Admit { ticket: Some(t) }
        );
        let again = wait(line.arrive(Some(t), "copy", T0 + 1001, 9));
        assert_eq!((again.position, again.retry_after_secs), (1, 1));
        line.leave(Some(t), T0 + 1002);
        assert_eq!(
            line.arrive(Some(t), "copy", T0 + 2002, 9),
            Outcome::Admit { ticket: Some(t) }
        );
    }

    #[test]
    fn holders_who_stop_coming_back_leave_the_line() {
        let mut line = full_line(1);
        let gone = wait(line.arrive(None, "a", T0, 1));
        let stays = wait(line.arrive(None, "b", T0 + 1, 2)).ticket;
        assert_eq!(gone.retry_after_secs, 1);
        let mut at = T0;
        for _ in 0..6 {
            at += 1000;
            line.arrive(Some(stays), "b", at, 9);
        }
        assert_eq!(line.waiting(), 1);
        assert_eq!(
            wait(line.arrive(Some(stays), "b", at + 1000, 9)).position,
            1
        );
    }

    #[test]
    fn far_back_the_wait_grows_with_the_position_and_is_capped() {
        let mut line = full_line(2);
        let mut last = 0;
        let mut retries = Vec::new();
        for i in 0..500 {
            let w = wait(line.arrive(None, &format!("c{i}"), T0, i));
            assert_eq!(w.position, i as usize + 1);
            assert!(w.retry_after_secs >= last || w.retry_after_secs == MAX_RETRY_SECS);
            assert!((1..=MAX_RETRY_SECS).contains(&w.retry_after_secs));
            last = w.retry_after_secs;
            retries.push(w.retry_after_secs);
        }
        assert_eq!(retries[0], 1, "the head comes back every second");
        assert_eq!(*retries.last().unwrap(), MAX_RETRY_SECS);
    }

    #[test]
    fn a_client_asking_for_new_tickets_too_fast_is_told_to_stop() {
        let mut line = full_line(1);
        let mut refused = 0;
        for i in 0..(NEW_TICKETS_PER_CLIENT_PER_SEC as u64 + 5) {
            if let Outcome::TooMany { .. } = line.arrive(None, "flood", T0, i) {
                refused += 1;
            }
        }
        assert_eq!(refused, 5);
        assert!(matches!(
            line.arrive(None, "someone else", T0, 99),
            Outcome::Wait(_)
        ));
        assert!(matches!(
            line.arrive(None, "flood", T0 + 1000, 100),
            Outcome::Wait(_)
        ));
    }

    #[test]
    fn a_holder_who_keeps_coming_back_early_gets_429_and_keeps_the_place() {
        let mut line = full_line(1);
        let _ahead = wait(line.arrive(None, "x", T0, 1));
        let t = wait(line.arrive(None, "a", T0, 2)).ticket;
        assert!(matches!(
            line.arrive(Some(t), "a", T0 + 10, 9),
            Outcome::Wait(_)
        ));
        assert!(matches!(
            line.arrive(Some(t), "a", T0 + 20, 9),
            Outcome::Wait(_)
        ));
        assert_eq!(
            line.arrive(Some(t), "a", T0 + 30, 9),
            Outcome::TooMany {
                retry_after_secs: 1
            }
        );
        let on_time = wait(line.arrive(Some(t), "a", T0 + 1000, 9));
        assert_eq!(on_time.position, 2);
    }

    #[test]
    fn the_line_is_bounded_and_keeps_the_oldest() {
        let mut line = Line::with_max_waiting(1, 3);
        line.hold(T0);
        let tickets: Vec<Ticket> = (0..3)
            .map(|i| wait(line.arrive(None, &format!("c{i}"), T0 + i, i as u64)).ticket)
            .collect();
        let young = wait(line.arrive(None, "y", T0 + 10, 10));
        assert_eq!(line.waiting(), 3);
        assert_eq!(young.position, 4, "told it is at the back");
        let old = Ticket {
            issued_ms: T0 - 1,
            nonce: 1,
        };
        assert_eq!(wait(line.arrive(Some(old), "o", T0 + 20, 9)).position, 1);
        assert_eq!(line.waiting(), 3, "the youngest made room");
        assert_eq!(
            wait(line.arrive(Some(tickets[1]), "c1", T0 + 1000, 9)).position,
            3
        );
    }
}
