SELECT count(*) FROM streams
