DELETE FROM user_streaks WHERE user_id BETWEEN :first_user_id AND :last_user_id
