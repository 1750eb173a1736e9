COPY coverage_seen (entity_type, entity_id, checked) FROM STDIN
