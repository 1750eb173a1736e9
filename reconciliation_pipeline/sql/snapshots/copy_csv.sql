-- A snapshot's statement (a source's query within its scope's filters, in key order, values
-- bound) read as CSV: a streaming sweep parses it with Arrow column by column, where the
-- cursor builds a Python row per row. NULL is an unquoted empty field, an empty text "".
COPY ({query}) TO STDOUT (FORMAT csv)
