COPY focus_sessions (id, user_id, started_at, ended_at, received_at) FROM STDIN
