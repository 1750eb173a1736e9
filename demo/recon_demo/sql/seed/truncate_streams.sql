TRUNCATE streams
