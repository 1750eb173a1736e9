COPY user_streaks (user_id, current_streak, longest_streak, last_qualified_date, qualified_days, updated_at) FROM STDIN
