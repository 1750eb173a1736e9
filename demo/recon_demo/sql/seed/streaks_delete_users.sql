DELETE FROM users WHERE id BETWEEN :first_user_id AND :last_user_id
