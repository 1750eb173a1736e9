COPY reputation (address, score, updated_at) FROM STDIN
