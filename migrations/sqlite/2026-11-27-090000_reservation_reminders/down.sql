DROP INDEX pickup_windows_holding_by_start;
DROP INDEX pickup_windows_holding_by_end;
DELETE FROM settings WHERE key = 'reminder_lead_minutes';
ALTER TABLE reservations DROP COLUMN reminded_at;
