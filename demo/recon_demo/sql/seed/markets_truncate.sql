TRUNCATE markets
