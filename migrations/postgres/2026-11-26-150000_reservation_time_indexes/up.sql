-- The dashboard counts today's reservations made and pickups confirmed per
-- hour; without these, each load scans every reservation ever made.
CREATE INDEX reservations_created_at ON reservations (created_at);
CREATE INDEX reservations_picked_up_at ON reservations (picked_up_at);
