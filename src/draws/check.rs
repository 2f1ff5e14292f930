//! `mask-reservation draw-verify ID`: recomputes a done draw from what it
//! published and compares every step with what the run recorded — the
//! revealed secret against the commitment, the registrations' digest, the
//! seed, each registration's place in the order, each outcome by the rule of
//! `allocate.rs` (from each window's free places when the draw was frozen and
//! what each person could take at each choice at their turn), and each reservation won.
//! Any difference is one line of the answer.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::db::schema::{draw_entries, draws, reservations};
use crate::db::{self, DbConnection};
use crate::draws::allocate::{Entrant, allocate};
use crate::draws::order::permutation;
use crate::draws::run::{free_at_start, registrations};
use crate::draws::seed::{self, Secret};

type Recorded = (
    i64,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// A draw's secret, commitment, digest, seed and state.
type Published = (String, String, Option<String>, Option<String>, String);

/// The differences between draw `draw_id` as recorded and as recomputed;
/// empty when they agree. `Err` only when the database cannot be read.
pub fn differences(conn: &mut DbConnection, draw_id: i64) -> QueryResult<Vec<String>> {
    let mut found = Vec::new();
    let draw: Option<Published> = draws::table
        .find(draw_id)
        .select((
            draws::secret,
            draws::commitment,
            draws::digest,
            draws::seed,
            draws::state,
        ))
        .first(conn)
        .optional()?;
    let Some((secret, commitment, digest, stored_seed, state)) = draw else {
        return Ok(vec![format!("no draw {draw_id}")]);
    };
    if state != "done" {
        return Ok(vec![format!("draw {draw_id} is not done ({state})")]);
    }
    let Some(secret) = Secret::parse_hex(&secret) else {
        return Ok(vec!["the revealed secret is not 64 hex digits".to_owned()]);
    };
    if !secret.matches_commitment(&commitment) {
        found.push("the revealed secret does not give the commitment".to_owned());
    }
    let list = registrations(conn, draw_id)?;
    let digest_now = seed::registrations_digest(&list);
    if digest.as_deref() != Some(seed::to_hex(&digest_now).as_str()) {
        found.push("the registrations do not give the published digest".to_owned());
    }
    let seed_now = seed::seed(&secret, &digest_now);
    if stored_seed.as_deref() != Some(seed::to_hex(&seed_now).as_str()) {
        found.push("the secret and the digest do not give the published seed".to_owned());
    }
    let order = permutation(&seed_now, list.len());

    let recorded: HashMap<i64, Recorded> = draw_entries::table
        .filter(draw_entries::draw_id.eq(draw_id))
        .select((
            draw_entries::id,
            draw_entries::position,
            draw_entries::quota_left1,
            draw_entries::quota_left2,
            draw_entries::quota_left3,
            draw_entries::outcome,
            draw_entries::won_window_id,
            draw_entries::reservation_id,
        ))
        .load::<Recorded>(conn)?
        .into_iter()
        .map(|r| (r.0, r))
        .collect();
    let mut drawn = Vec::with_capacity(order.len());
    for (k, i) in order.iter().enumerate() {
        let registration = &list[*i];
        let Some(r) = recorded.get(&registration.id) else {
            found.push(format!("registration {} is not recorded", registration.id));
            continue;
        };
        if r.1 != i32::try_from(k + 1).ok() {
            found.push(format!(
                "registration {} is at place {:?}, the order gives {}",
                registration.id,
                r.1,
                k + 1
            ));
        }
        let may_take = registration
            .choices
            .iter()
            .zip([r.2, r.3, r.4])
            .map(|(window, left)| (*window, left.unwrap_or(0)))
            .collect();
        drawn.push(Entrant {
            registration: registration.clone(),
            may_take,
        });
    }
    let capacity = free_at_start(conn, draw_id)?;
    let quantity: HashMap<i64, i32> = list.iter().map(|r| (r.id, r.quantity)).collect();
    let won: Vec<i64> = recorded.values().filter_map(|r| r.7).collect();
    let booked: HashMap<i64, (i64, i32)> = db::read_by_ids(&won, |chunk| {
        reservations::table
            .filter(reservations::id.eq_any(chunk))
            .select((
                reservations::id,
                reservations::window_id,
                reservations::quantity,
            ))
            .load::<(i64, i64, i32)>(conn)
    })?
    .into_iter()
    .map(|(id, w, q)| (id, (w, q)))
    .collect();
    for outcome in allocate(&drawn, &capacity) {
        let Some(r) = recorded.get(&outcome.registration_id) else {
            continue;
        };
        let recorded_window = match r.5.as_deref() {
            Some("won") => r.6,
            _ => None,
        };
        let rule_window = outcome.result.ok();
        if recorded_window != rule_window {
            found.push(format!(
                "registration {} got {:?}, the rule gives {:?}",
                outcome.registration_id, recorded_window, rule_window
            ));
            continue;
        }
        if let (Some(window), Some(reservation)) = (recorded_window, r.7) {
            let wanted = quantity.get(&outcome.registration_id).copied();
            let found_booked = booked.get(&reservation).copied();
            if found_booked.map(|b| b.0) != Some(window) || found_booked.map(|b| b.1) != wanted {
                found.push(format!(
                    "registration {}'s reservation {reservation} is not of {:?} in window {window}",
                    outcome.registration_id, wanted
                ));
            }
        }
    }
    Ok(found)
}
