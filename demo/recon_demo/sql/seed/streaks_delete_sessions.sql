DELETE FROM focus_sessions WHERE user_id BETWEEN :first_user_id AND :last_user_id
