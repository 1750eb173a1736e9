-- Statistics for the planner: a sweep's million rows want a hash join, an increment's few an index lookup.
ANALYZE coverage_seen
