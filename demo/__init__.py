"""The embedded demo: a local PostgreSQL and Redis, the SalesFlow demo data and its workload."""
