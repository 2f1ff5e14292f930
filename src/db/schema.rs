// The one schema for both backends, written with the SQL types the two have in
// common. `tests/schema.rs` checks it against the migrated databases.

diesel::table! {
    account_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        purpose -> Text,
        token_hash -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        actor_user_id -> Nullable<BigInt>,
        action -> Text,
        entity -> Text,
        entity_id -> Text,
        before_json -> Nullable<Text>,
        after_json -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    dependants (id) {
        id -> BigInt,
        guardian_user_id -> BigInt,
        person_id -> BigInt,
        name -> Text,
        created_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        end_reason -> Nullable<Text>,
    }
}

diesel::table! {
    draw_entries (id) {
        id -> BigInt,
        draw_id -> BigInt,
        user_id -> BigInt,
        person_id -> BigInt,
        dependant_id -> Nullable<BigInt>,
        quantity -> Integer,
        choice1 -> BigInt,
        choice2 -> Nullable<BigInt>,
        choice3 -> Nullable<BigInt>,
        pseudonym -> Text,
        mail_lang -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        position -> Nullable<Integer>,
        quota_left1 -> Nullable<Integer>,
        quota_left2 -> Nullable<Integer>,
        quota_left3 -> Nullable<Integer>,
        outcome -> Nullable<Text>,
        won_window_id -> Nullable<BigInt>,
        reservation_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    draw_windows (draw_id, window_id) {
        draw_id -> BigInt,
        window_id -> BigInt,
        free_at_start -> Nullable<Integer>,
    }
}

diesel::table! {
    draws (id) {
        id -> BigInt,
        name -> Text,
        region -> Nullable<Text>,
        first_day -> Date,
        last_day -> Date,
        opens_at -> Timestamp,
        closes_at -> Timestamp,
        results_at -> Timestamp,
        secret -> Text,
        commitment -> Text,
        digest -> Nullable<Text>,
        seed -> Nullable<Text>,
        state -> Text,
        claimed_at -> Nullable<Timestamp>,
        drawn -> Integer,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    import_previews (admin_id, kind, file_hash) {
        admin_id -> BigInt,
        kind -> Text,
        file_hash -> Text,
        file_name -> Text,
        content -> Text,
        seen -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> BigInt,
        recipient -> Text,
        kind -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    people (id) {
        id -> BigInt,
        national_id_hash -> Text,
        birth_date -> Date,
        national_id_masked -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    pickup_windows (id) {
        id -> BigInt,
        store_day_id -> BigInt,
        store_id -> BigInt,
        day -> Date,
        starts_at -> Timestamp,
        ends_at -> Timestamp,
        capacity -> Integer,
        reserved -> Integer,
        picked_up -> Integer,
        draw_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    quota_usage (person_id, period_start) {
        person_id -> BigInt,
        period_start -> Date,
        used -> Integer,
    }
}

diesel::table! {
    rate_limits (bucket, window_start) {
        bucket -> Text,
        window_start -> BigInt,
        hits -> Integer,
    }
}

diesel::table! {
    reservations (id) {
        id -> BigInt,
        user_id -> BigInt,
        person_id -> BigInt,
        window_id -> BigInt,
        store_id -> BigInt,
        quantity -> Integer,
        period_start -> Date,
        status -> Text,
        pickup_code -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        cancelled_at -> Nullable<Timestamp>,
        expired_at -> Nullable<Timestamp>,
        picked_up_at -> Nullable<Timestamp>,
        picked_up_by -> Nullable<BigInt>,
        reminded_at -> Nullable<Timestamp>,
        request_id -> Nullable<Text>,
        mail_lang -> Text,
        dependant_id -> Nullable<BigInt>,
        proxy_checked_at -> Nullable<Timestamp>,
        offer_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
        updated_at -> Timestamp,
        updated_by -> Nullable<BigInt>,
    }
}

diesel::table! {
    stock_ledger (id) {
        id -> BigInt,
        store_day_id -> BigInt,
        window_id -> Nullable<BigInt>,
        reservation_id -> Nullable<BigInt>,
        walk_in_sale_id -> Nullable<BigInt>,
        kind -> Text,
        supply_delta -> Integer,
        capacity_delta -> Integer,
        reserved_delta -> Integer,
        picked_up_delta -> Integer,
        walk_in_delta -> Integer,
        actor_user_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    signup_notices (person_id, day) {
        person_id -> BigInt,
        day -> Date,
    }
}

diesel::table! {
    store_days (id) {
        id -> BigInt,
        store_id -> BigInt,
        day -> Date,
        supply -> Integer,
        window_capacity -> Integer,
        reserved -> Integer,
        picked_up -> Integer,
        walk_in -> Integer,
        no_show -> Integer,
        stock_changed_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    stores (id) {
        id -> BigInt,
        code -> Text,
        name -> Text,
        addr -> Text,
        store_type -> Text,
        region -> Text,
        lat -> Double,
        lng -> Double,
        suspended -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        phone -> Nullable<Text>,
        search_text -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        role -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        person_id -> Nullable<BigInt>,
        store_id -> Nullable<BigInt>,
        email_verified_at -> Nullable<Timestamp>,
        disabled_at -> Nullable<Timestamp>,
        session_epoch -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        confirm_on_scan -> Bool,
    }
}

diesel::table! {
    waitlist (id) {
        id -> BigInt,
        window_id -> BigInt,
        user_id -> BigInt,
        person_id -> BigInt,
        dependant_id -> Nullable<BigInt>,
        quantity -> Integer,
        mail_lang -> Text,
        created_at -> Timestamp,
        offer_id -> Nullable<BigInt>,
        whole_day -> Bool,
    }
}

diesel::table! {
    walk_in_sales (id) {
        id -> BigInt,
        store_day_id -> BigInt,
        store_id -> BigInt,
        person_id -> BigInt,
        quantity -> Integer,
        period_start -> Date,
        sold_by -> BigInt,
        created_at -> Timestamp,
        undone_at -> Nullable<Timestamp>,
        proxy_person_id -> Nullable<BigInt>,
    }
}

diesel::joinable!(account_tokens -> users (user_id));
diesel::joinable!(dependants -> people (person_id));
diesel::joinable!(dependants -> users (guardian_user_id));
diesel::joinable!(pickup_windows -> store_days (store_day_id));
diesel::joinable!(pickup_windows -> stores (store_id));
diesel::joinable!(quota_usage -> people (person_id));
diesel::joinable!(reservations -> dependants (dependant_id));
diesel::joinable!(reservations -> pickup_windows (window_id));
diesel::joinable!(reservations -> people (person_id));
diesel::joinable!(reservations -> stores (store_id));
diesel::joinable!(draw_entries -> draws (draw_id));
diesel::joinable!(draw_entries -> people (person_id));
diesel::joinable!(draw_windows -> draws (draw_id));
diesel::joinable!(draw_windows -> pickup_windows (window_id));
diesel::joinable!(import_previews -> users (admin_id));
diesel::joinable!(signup_notices -> people (person_id));
diesel::joinable!(store_days -> stores (store_id));
diesel::joinable!(users -> people (person_id));
diesel::joinable!(users -> stores (store_id));
diesel::joinable!(waitlist -> pickup_windows (window_id));
diesel::joinable!(waitlist -> people (person_id));
diesel::joinable!(waitlist -> users (user_id));
diesel::joinable!(waitlist -> dependants (dependant_id));
diesel::joinable!(walk_in_sales -> people (person_id));
diesel::joinable!(walk_in_sales -> store_days (store_day_id));
diesel::joinable!(walk_in_sales -> stores (store_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_tokens,
    audit_log,
    dependants,
    draw_entries,
    draw_windows,
    draws,
    import_previews,
    mail_outbox,
    people,
    pickup_windows,
    quota_usage,
    rate_limits,
    reservations,
    settings,
    signup_notices,
    stock_ledger,
    store_days,
    stores,
    users,
    waitlist,
    walk_in_sales,
);
