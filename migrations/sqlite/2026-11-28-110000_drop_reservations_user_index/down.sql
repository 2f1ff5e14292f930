CREATE INDEX reservations_user ON reservations (user_id, created_at);
