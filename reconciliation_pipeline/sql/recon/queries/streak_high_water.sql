-- The newest change the streak sensor can see: where its cursor starts.
SELECT greatest((SELECT max(updated_at) FROM user_streaks), (SELECT max(received_at) FROM focus_sessions))
